"""Evaluation with known answers: hand-built maps, regions, lesions and logits, scored through
``predict_and_explain``, ``score_run`` and the run folder, against numbers derived by hand.

Every map is a 1 x 2 x 2 grid (one slice group, cells c0 c1 / c2 c3) already in [0, 1] with
min 0 and max 1, so the display post-processing leaves it unchanged. Lesions live on a
3 x 4 x 4 CT grid: each cell covers 2 x 2 voxels in-plane. Trilinear upsampling of 2 -> 4 along
an axis (align_corners=False) weighs the first cell by [1, .75, .25, 0]; the derivations below
use that and nothing of the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from ctbench.evaluate.evaluation import predict_and_explain, score_run
from ctbench.experiments.comparison import compare_runs
from ctbench.experiments.results import write_results
from torch.utils.data import Dataset

LABELS = ["a", "b"]
CT = (3, 4, 4)
TOP_LEFT = (slice(None), slice(0, 2), slice(0, 2))  # the voxels of cell c0
BOTTOM_RIGHT = (slice(None), slice(2, 4), slice(2, 4))  # the voxels of cell c3


def grid(c0, c1, c2, c3) -> np.ndarray:
    return np.array([[[c0, c1], [c2, c3]]], dtype=np.float32)  # [H=1, 2, 2]


def cells(*names: str) -> np.ndarray:
    out = np.zeros((1, 2, 2), bool)
    for name in names:
        index = int(name[1])
        out[0, index // 2, index % 2] = True
    return out


def lesion(*blocks) -> np.ndarray:
    out = np.zeros(CT, bool)
    for block in blocks:
        out[block] = True
    return out


NONE = np.zeros((1, 2, 2), bool)
NO_LESION = np.zeros(CT, bool)

# case: truth, logits, maps, allowed regions and lesion masks per label (a, b)
VALID = [
    {
        "truth": [1, 1],
        "logits": [3.0, 0.2],
        "maps": [grid(1, 0.51, 0, 0), grid(0, 0.05, 0, 1)],
        "allowed": [cells("c0"), cells("c1", "c3")],
        "lesions": [lesion(TOP_LEFT), NO_LESION],
    },
    {
        "truth": [1, 0],
        "logits": [2.0, 0.1],
        "maps": [grid(1, 0, 0.3, 0), grid(1, 1, 1, 1)],
        "allowed": [cells("c0", "c2"), NONE],
        "lesions": [NO_LESION, NO_LESION],
    },
]
TEST = [
    {
        "truth": [1, 0],
        "logits": [50.0, 1.0],
        "maps": [grid(1, 0.6, 0.2, 0), grid(1, 0, 0, 0)],
        "allowed": [cells("c0"), NONE],
        "lesions": [lesion(TOP_LEFT), NO_LESION],
    },
    {
        "truth": [1, 1],
        "logits": [45.0, 2.0],
        # b's raw map has negative evidence (c1); the displayed map is ReLU'd, so unchanged
        "maps": [grid(0, 0, 1, 0.7), grid(0.003, -1, 0, 1)],
        "allowed": [cells("c2", "c3"), cells("c0")],
        "lesions": [lesion(BOTTOM_RIGHT), NO_LESION],
    },
    {
        "truth": [0, 1],
        "logits": [38.0, -1.0],
        # label a is absent: its map, region and lesion must not count anywhere
        "maps": [grid(1, 1, 1, 1), grid(0.5, 0, 0, 1)],
        "allowed": [NONE, cells("c0", "c3")],
        "lesions": [lesion(TOP_LEFT), NO_LESION],
    },
]


class HandBuiltSplit(Dataset):
    """Samples as VolumeDataset gives them; x carries the case's index for the stubs."""

    def __init__(self, split: str, cases: list[dict]) -> None:
        self.split, self.cases = split, cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        case = self.cases[index]
        x = torch.zeros(1, 3, 4, 4)
        x[0, 0, 0, 0] = index
        return {
            "x": x,
            "y": torch.tensor(case["truth"], dtype=torch.float32),
            "case_id": f"{self.split}{index}",
            "index": index,
            "allowed": torch.from_numpy(np.stack(case["allowed"])),
            "findings": torch.from_numpy(np.stack(case["lesions"])),
        }


class FixedExplainer:
    """Returns the hand-built maps and logits of the cases in the batch."""

    def __init__(self, cases: list[dict]) -> None:
        self.cases = cases

    def explain(self, model, x):
        chosen = [self.cases[int(i)] for i in x[:, 0, 0, 0, 0]]
        maps = torch.from_numpy(np.stack([np.stack(c["maps"]) for c in chosen]))
        logits = torch.tensor([c["logits"] for c in chosen], dtype=torch.float32)
        return maps, logits


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    model = torch.nn.Identity()
    evaluated = {
        split: predict_and_explain(
            model, HandBuiltSplit(split, cases), {"fixed": FixedExplainer(cases)}, progress=False
        )
        for split, cases in (("valid", VALID), ("test", TEST))
    }
    metrics, table = score_run(evaluated["valid"], evaluated["test"], LABELS)
    metrics["timing"] = {"total": 0.0}
    folder = tmp_path_factory.mktemp("run")
    write_results(folder, metrics, table, evaluated, LABELS)
    return folder, evaluated


def test_auroc_from_logits_with_delong_ci(scored):
    folder, _ = scored
    metrics = json.loads((folder / "metrics.json").read_text())
    # a: positives 50, 45 over the negative 38 -> 1.0 (their float64 probabilities all
    # round to 1.0, which would tie them at 0.5). b: positive 2.0 over 1.0, -1.0 under: 0.5.
    assert metrics["auroc"] == {"a": 1.0, "b": 0.5}
    assert metrics["auroc_median"] == 0.75 and metrics["auroc_mean"] == 0.75
    assert metrics["auroc_iqr"] == pytest.approx(0.875 - 0.625)
    # DeLong for b: V10 = [1, 0] over m = 2 positives, var 0.5 / 2; V01 has n = 1: no term.
    # se = 0.5, half-width 1.96 * 0.5 = 0.98 -> [-0.48, 1.48] clipped to [0, 1]. For a, se = 0.
    assert metrics["auroc_ci"] == {"a": [1.0, 1.0], "b": [0.0, 1.0]}
    # validation: a has no negative (undefined); b: 0.2 over 0.1
    assert metrics["valid_auroc"] == {"a": None, "b": 1.0}
    assert metrics["valid_auroc_mean"] == 1.0  # over the labels that have an AUROC


def test_organiou_thresholds_chosen_on_validation_and_reused_on_test(scored):
    folder, _ = scored
    metrics = json.loads((folder / "metrics.json").read_text())
    # Validation a: v0 is 1 only once c1 (0.51) is off, v1 is 1 everywhere -> the smallest grid
    # threshold above 0.51 is 0.52. b: v0 is 1 at every threshold (tie) -> 0.004; v1 is absent.
    assert metrics["organiou_thresholds"]["fixed"] == {"a": 0.52, "b": 0.004}
    # Test at those thresholds. a: t0 has c0 (in) and c1 (out) above 0.52 -> 1/2 (chosen on test,
    # 0.6 would give 1); t1 has c2, c3 both allowed: b = 0 -> 1; t2 is absent, not scored.
    # b: t1 has only c3 above 0.004 (0.003 is not), outside -> 0; t2 has c0, c3 inside -> 1.
    assert metrics["organiou_per_label"]["fixed"] == {"a": 0.75, "b": 0.5}
    # headline: the mean over the four (scan, present label) pairs, not over labels
    assert metrics["organiou"]["fixed"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert metrics["valid_organiou"]["fixed"] == 1.0


def test_pointing_game_and_lesion_iou_on_the_ct_grid(scored):
    folder, _ = scored
    metrics = json.loads((folder / "metrics.json").read_text())
    # Validation v0, a: upsampled, the top-left lesion voxels hold 1, .8775, .75, .658125 and
    # the highest voxel outside is .6325, so only the grid threshold 0.64 gives IoU 1.
    # Test t0, a: voxels above 0.64 are the 4 lesion voxels (1, .9, .8, .7125) and
    # (y0, x2) = .7, per slice -> 4 / 5. t1, a: above 0.64 are (y2: .75, .69375) and
    # (y3: 1, .925, .775, .7); its lesion (y, x in {2, 3}) has (y3, x2), (y3, x3) of them
    # -> 2 / (6 + 4 - 2). The pointing game: t0's top cell c0 is its lesion cell (hit), t1's top
    # cell c2 is not c3 (miss). t2's label a is absent: its lesion does not count.
    lesion = metrics["explanation_metrics"]["lesion"]["fixed"]
    assert lesion["pointing_game"]["mean"] == 0.5
    assert lesion["iou_ct"]["mean"] == pytest.approx((0.8 + 0.25) / 2)
    assert lesion["iou_ct"]["pairs"] == 2 and lesion["pointing_game"]["pairs"] == 2
    # the family is held once: no block repeats it (schema 2)
    assert "localisation" not in metrics and "localisation_per_label" not in metrics


def test_per_label_csv_and_predictions_carry_the_same_numbers(scored):
    folder, evaluated = scored
    table = pd.read_csv(folder / "per_label.csv").set_index("label")
    assert table.loc["a", "test_positives"] == 2 and table.loc["b", "test_positives"] == 2
    assert table.loc["a", "test_positives_pct"] == pytest.approx(200 / 3)
    assert table["auroc"].tolist() == [1.0, 0.5]
    assert table["auroc_ci_low"].tolist() == [1.0, 0.0]
    assert table["organiou_fixed"].tolist() == [0.75, 0.5]
    assert table["threshold_fixed"].tolist() == [0.52, 0.004]
    assert table.loc["a", "lesion_pointing_game_fixed"] == 0.5
    assert table.loc["a", "lesion_iou_ct_fixed"] == pytest.approx(0.525)
    assert np.isnan(table.loc["b", "lesion_iou_ct_fixed"])  # b has no lesion
    predictions = pd.read_csv(folder / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    assert test[test["label"] == "a"]["logit"].tolist() == [50.0, 45.0, 38.0]
    assert (test[test["label"] == "a"]["probability"] == 1.0).all()  # why ranks use logits
    # the lesion grid of each case: the cells that hold lesion voxels
    assert evaluated["test"].lesion_grid[1, 0].tolist() == cells("c3").tolist()


def test_compare_ranks_logits_that_round_to_the_same_probability(tmp_path):
    """Two runs whose large logits are all 1.0 as probabilities still differ in DeLong."""
    truth = np.array([1, 1, 1, 0, 0, 0])
    runs = {"a": [60.0, 55.0, 50.0, 45.0, 40.0, 38.0], "b": [38.0, 40.0, 60.0, 45.0, 55.0, 50.0]}
    for name, logits in runs.items():
        (tmp_path / name).mkdir()
        pd.DataFrame(
            {
                "split": "test",
                "case_id": [f"c{i}" for i in range(6)],
                "label": "x",
                "truth": truth,
                "logit": logits,
                "probability": 1 / (1 + np.exp(-np.array(logits))),
            }
        ).to_csv(tmp_path / name / "predictions.csv", index=False)
    row = compare_runs(tmp_path / "a", tmp_path / "b").iloc[0]
    # a ranks every positive above every negative; b: 38 and 40 lose to all 3 negatives, 60
    # beats them all -> 3 of 9 pairs
    assert row["auroc_a"] == 1.0 and row["auroc_b"] == pytest.approx(3 / 9)
    assert row["p_value"] < 0.05


def test_localisation_family_against_organs_and_lesions(scored):
    """The present test pairs against their allowed regions: t0 a (c0; map 1 .6 .2 0), t1 a
    (c2 c3; 0 0 1 .7), t1 b (c0; .003 0 0 1), t2 b (c0 c3; .5 0 0 1)."""
    folder, _ = scored
    metrics = json.loads((folder / "metrics.json").read_text())
    organ = metrics["explanation_metrics"]["organ"]
    fixed = organ["fixed"]
    # top cells: c0 in, c2 in, c3 out, c3 in
    assert fixed["pointing_game"]["mean"] == 0.75
    assert fixed["pointing_game"]["pairs"] == 4 and fixed["pointing_game"]["volumes"] == 3
    assert fixed["mass_inside"]["mean"] == pytest.approx((1 / 1.8 + 1 + 0.003 / 1.003 + 1) / 4)
    # the signed mass reads the raw map: t1 b's -1 counts in the total, not inside
    assert fixed["mass_inside_signed"]["mean"] == pytest.approx(
        (1 / 1.8 + 1 + 0.003 / 2.003 + 1) / 4
    )
    # t1 b: its one allowed cell (.003) beats two of the three others
    assert fixed["auroc"]["mean"] == pytest.approx((1 + 1 + 2 / 3 + 1) / 4)
    assert fixed["pointing_game"]["low"] <= 0.75 <= fixed["pointing_game"]["high"]
    for metric in ("pointing_game", "mass_inside", "rank_accuracy", "auroc", "average_precision"):
        assert organ["ideal"][metric]["mean"] == 1.0, metric  # the truth scores perfectly
    # against lesions: t0 a's lesion is c0 (hit), t1 a's is c3 (its top cell is c2: miss)
    lesion = metrics["explanation_metrics"]["lesion"]["fixed"]
    assert lesion["pointing_game"]["mean"] == 0.5
    # instance F1 at a's tuned threshold, 0.52 (valid: map 1 .51 0 0, lesion c0): t0 a cuts to
    # {c0 c1}, one component, Dice 2/3 with c0; t1 a to {c2 c3}, Dice 2/3 with c3: two found
    assert lesion["instance_f1"]["mean"] == 1.0 and lesion["instance_f1"]["pairs"] == 2
    table = pd.read_csv(folder / "per_label.csv").set_index("label")
    assert table["organ_pointing_game_fixed"].tolist() == [1.0, 0.5]
    assert table["lesion_instance_f1_fixed"].iloc[0] == 1.0
    assert np.isnan(table["lesion_instance_f1_fixed"].iloc[1])  # b has no lesion


def test_organiou_of_a_random_map_is_the_chance_level(scored):
    """The seeded random map's OrganIoU (the chance level of docs/metrics.md) is recorded once
    per run, the same every time, and here below the explainer's perfect validation score."""
    folder, evaluated = scored
    metrics = json.loads((folder / "metrics.json").read_text())
    chance = metrics["organiou_reference"]["random"]
    assert 0.0 <= chance <= 1.0
    again, _ = score_run(evaluated["valid"], evaluated["test"], LABELS)
    assert again["organiou_reference"]["random"] == chance
