"""Known answers of ``metrics.json["shortcut"]`` (ctbench.evaluate.shortcut).

A hand-built source plants a cue block and a finding block of the same size and contrast in
two known cells; hand-built models read the cue, the finding, or both with known weights, and
explain themselves exactly (each cell's contribution), so every number has a known value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctbench.core.cases import Case
from ctbench.data.loader import VolumeDataset
from ctbench.data.preprocess import Preprocessing
from ctbench.evaluate.shortcut import shortcut_scores

SHAPE = (27, 64, 64)
LABELS = ("cued", "other")
CUE_CELL, FINDING_CELL = (4, 0, 0), (4, 2, 2)  # (slice group, row, column) of a 4x4 grid


def _block(volume: np.ndarray, cell) -> None:
    h, r, c = cell
    volume[3 * h : 3 * h + 3, 16 * r + 4 : 16 * r + 12, 16 * c + 4 : 16 * c + 12] += 400


class Planted:
    """Cases whose cue and finding are blocks at known cells; counterfactuals flip one."""

    name, label_names, volume_shape, spacing = "planted", LABELS, SHAPE, (1.0, 1.0, 1.0)

    def __init__(self, n: int = 8) -> None:
        rng = np.random.default_rng(0)
        self.cases = {f"tst{i:05d}": (bool(rng.random() < 0.5), i % 2 == 0) for i in range(n)}
        self.confounded_labels = ("cued",)

    def case_ids(self, split: str) -> list[str]:
        return list(self.cases) if split == "test" else []

    def _render(self, case_id: str, cue: bool, finding: bool) -> Case:
        volume = np.full(SHAPE, -200, np.int16)
        volume[:, -4:] = -1000  # air under the patient, as a chest CT has
        if cue:
            _block(volume, CUE_CELL)
        if finding:
            _block(volume, FINDING_CELL)
        labels = np.array([finding, False])
        return Case(case_id, volume, self.spacing, labels, "report", None, [], {})

    def load(self, case_id: str) -> Case:
        return self._render(case_id, *self.cases[case_id])

    def counterfactual(self, case_id: str, label: str, change: str) -> Case:
        cue, finding = self.cases[case_id]
        if change == "finding":
            assert finding
            return self._render(case_id, cue, False)
        return self._render(case_id, not cue, finding)


class CellReader(torch.nn.Module):
    """logit(cued) = a * mean(cue cell) + b * mean(finding cell); map = each cell's term."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.weights = torch.zeros(len(LABELS), 9, 4, 4, dtype=torch.float64)
        self.weights[(0, *CUE_CELL)] = a
        self.weights[(0, *FINDING_CELL)] = b

    def contributions(self, x: torch.Tensor) -> torch.Tensor:
        cells = x.double().mean(2).unflatten(-1, (4, 16)).unflatten(-3, (4, 16)).mean((-3, -1))
        return self.weights[None] * cells[:, None]  # [B, M, 9, 4, 4]

    def forward(self, x):
        return self.contributions(x).sum((-3, -2, -1))


class Exact:
    def explain(self, model, x):
        maps = model.contributions(x)
        return maps, maps.sum((-3, -2, -1))


def _scores(model, allowed_cell=FINDING_CELL):
    source = Planted()
    test = VolumeDataset(source, "test", preprocessing=Preprocessing(volume_shape=SHAPE))
    allowed = np.zeros((len(LABELS), 9, 4, 4), bool)
    allowed[(0, *allowed_cell)] = True
    scores = shortcut_scores(model, Exact(), test, list(LABELS), ("cued",), lambda _: allowed)
    return source, scores["cued"]


def test_a_model_that_reads_only_the_finding_has_no_cue_effect():
    source, row = _scores(CellReader(0.0, 1.0))
    positives = sum(f for _, f in source.cases.values())
    assert row["n"] == len(source.cases) and row["n_positive"] == positives
    assert row["cue_effect"] == 0.0 and row["ratio"] == 0.0
    assert row["finding_effect"] > 0
    assert row["allowed_share"] is None  # the cue moved nothing on the map


def test_a_model_that_reads_only_the_cue_has_no_finding_effect():
    _, row = _scores(CellReader(1.0, 0.0))
    assert row["cue_effect"] > 0 and row["finding_effect"] == 0.0
    assert row["ratio"] is None  # no finding effect to divide by
    assert row["allowed_share"] == 0.0  # every change outside the label's allowed cell


def test_the_ratio_and_the_allowed_share_have_their_known_values():
    # cue and finding blocks have the same size and contrast: the ratio is the weights' ratio
    _, row = _scores(CellReader(2.0, 1.0))
    assert row["ratio"] == pytest.approx(2.0, rel=1e-9)
    assert row["cue_effect"] == pytest.approx(2 * row["finding_effect"], rel=1e-9)
    _, inside = _scores(CellReader(2.0, 1.0), allowed_cell=CUE_CELL)
    assert inside["allowed_share"] == pytest.approx(1.0)
    per_case = row["per_case"]
    assert per_case["cue"] == pytest.approx([row["cue_effect"]] * row["n"])
    assert [v is None for v in per_case["finding"]] == [not f for _, f in Planted().cases.values()]
