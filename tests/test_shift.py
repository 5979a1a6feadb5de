"""``metrics.json["shift"]`` (issue 30, part 5): AUROC on the same test cases with their cues
reversed, agreeing as in training and by chance, and the worst-group AUROC, with known answers
on hand-built models that read only the cue or only the finding."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ctbench.evaluate.shift import shift_scores, worst_group_auroc

LABELS = ["cued", "plain"]


def split(truth: np.ndarray, cue: np.ndarray, reads: str) -> SimpleNamespace:
    """Outputs of a model that scores each case by its cue (``reads="cue"``) or by its
    finding (``"finding"``); label ``plain`` has no cue and is read from its finding."""
    scores = np.stack([cue if reads == "cue" else truth[:, 0], truth[:, 1]], axis=1)
    return SimpleNamespace(
        truth=truth.astype(bool), logits=scores.astype(float), cues={"cued": cue}
    )


def splits_of(reads: str):
    rng = np.random.default_rng(0)
    truth = rng.random((200, 2)) < 0.5
    out = {}
    for kind, agree in (("iid", 0.9), ("balanced", 0.5), ("reversed", 0.1)):
        cue = np.where(rng.random(200) < agree, truth[:, 0], ~truth[:, 0])
        out[kind] = split(truth, cue, reads)
    return out


def test_a_model_that_reads_only_the_cue():
    splits = splits_of("cue")
    cued = shift_scores(splits, LABELS, ("cued",))["cued"]
    # the cue agrees with the label 90%, 50% and 10% of the time: AUROC follows it
    assert cued["iid"] > 0.85 and cued["reversed"] < 0.15
    assert cued["balanced"] == pytest.approx(0.5, abs=0.1)
    assert cued["worst_group"] == 0.0  # every positive without the cue under every negative with it


def test_a_model_that_reads_only_the_finding():
    splits = splits_of("finding")
    scores = shift_scores(splits, LABELS, ("cued",))
    assert scores["cued"] == {"iid": 1.0, "balanced": 1.0, "reversed": 1.0, "worst_group": 1.0}
    assert scores["plain"] == {"iid": 1.0, "balanced": 1.0, "reversed": 1.0}  # no cue: no group


def test_worst_group_needs_both_groups():
    truth = np.array([True, True, False])
    assert (
        worst_group_auroc(truth, np.array([0.1, 0.2, 0.9]), np.array([True, True, False])) is None
    )
    assert worst_group_auroc(truth, np.array([0.9, 0.2, 0.1]), np.array([False, True, True])) == 1.0


def test_the_phantoms_shifted_splits_change_only_the_cues(tmp_path):
    """The same test cases (ids, labels, findings, every seed), with the cues drawn to agree as
    in training (iid), by chance (balanced) or reversed (the run's own test split)."""
    from ctbench.plugins.datasets.phantom import PhantomSource
    from ctbench.plugins.datasets.phantom.findings import plan_case

    source = PhantomSource("tiny", confounders=True, cache_dir=tmp_path)
    shifted = {kind: source.shift_source(kind) for kind in ("iid", "balanced")}
    assert all(s.case_ids("train") == [] and s.case_ids("valid") == [] for s in shifted.values())
    for other in shifted.values():
        assert other.case_ids("test") == source.case_ids("test")
        for case_id in source.case_ids("test"):
            a, b = source.plan(case_id), other.plan(case_id)
            assert (a.labels, a.seeds) == (b.labels, b.seeds)
            assert [f.details for f in a.findings] == [f.details for f in b.findings]
    # agreement rates over many plans (no voxel rendered): 0.9, 0.5 and 0.1
    label = "lung_consolidation"
    for config, want in (
        (shifted["iid"].config, 0.9),
        (shifted["balanced"].config, 0.5),
        (source.config, 0.1),
    ):
        plans = [plan_case(config, "test", i) for i in range(2000)]
        agree = np.mean([p.arms == p.labels[label] for p in plans])
        assert agree == pytest.approx(want, abs=0.03)
    # the run's phantom keeps its cache folder: an unset test_agreement is not in its key
    assert "test_agreement" not in source.config.to_json()
    with pytest.raises(ValueError, match="unknown shift 'ood'"):
        source.shift_source("ood")


def test_a_confounded_run_records_the_shift(tmp_path, tiny_phantom, monkeypatch):
    from ctbench.experiments.run_config import RunConfig
    from ctbench.experiments.runs import execute_run

    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    config = RunConfig(
        arch="axialnet", preset="tiny", confounders=True, explainers=(), overlays=0,
        head_epochs=2,
    )  # fmt: skip
    metrics = execute_run(config, tmp_path / "run", progress=False, log=lambda _: None)
    shift = metrics["shift"]
    assert set(shift) == set(metrics["auroc"])
    for label, row in shift.items():
        # the reversed split is the run's own test split
        assert row["reversed"] == pytest.approx(metrics["auroc"][label], nan_ok=True) or (
            row["reversed"] is None and metrics["auroc"][label] != metrics["auroc"][label]
        )
        assert ("worst_group" in row) == (
            label in ("h_great_vessel_calcification", "lung_consolidation")
        )
    confounded = ("h_great_vessel_calcification", "lung_consolidation")
    assert set(metrics["shortcut"]) == set(confounded)
    truth = {label: metrics["cases"]["test"] for label in confounded}
    for label, row in metrics["shortcut"].items():
        assert row["n"] == truth[label] and 0 < row["n_positive"] < row["n"]
        assert row["cue_effect"] >= 0 and row["finding_effect"] >= 0
        assert row["ratio"] == pytest.approx(row["cue_effect"] / row["finding_effect"])
        assert row["allowed_share"] is None  # no explainer, no allowed regions in this run
    plain = execute_run(
        RunConfig(arch="axialnet", preset="tiny", explainers=(), overlays=0, head_epochs=2),
        tmp_path / "plain",
        progress=False,
        log=lambda _: None,
    )
    assert "shift" not in plain
