"""The phantom's counterfactual cases: one cue toggled or one finding removed, nothing else.

``metrics.json["shortcut"]`` compares a model's logit on a case with its logit on the same
case with only the cue, or only the finding, changed; that is a fair comparison only if the
voxels differ nowhere else (same anatomy, texture, noise and every other finding).
"""

from __future__ import annotations

import numpy as np
import pytest
from ctbench.plugins.datasets.phantom import PhantomSource

CONFOUNDED = ("h_great_vessel_calcification", "lung_consolidation")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return PhantomSource(
        "tiny",
        seed=5,
        confounders=True,
        n_test=16,
        cache_dir=tmp_path_factory.mktemp("counterfactual"),
        prevalence={label: 0.6 for label in CONFOUNDED},
        cues="fat:h_great_vessel_calcification,marker:lung_consolidation",
    )


def _organs_equal(a, b) -> bool:
    return set(a.organs) == set(b.organs) and all(
        np.array_equal(a.organs[name], b.organs[name]) for name in a.organs
    )


def test_a_toggled_marker_changes_only_the_markers_voxels(source):
    label = "lung_consolidation"
    for case_id in source.case_ids("test"):
        case = source.load(case_id)
        other = source.counterfactual(case_id, label, "cue")
        assert source.cue_present(case_id, label) != bool(other.meta["marker"])
        changed = case.volume != other.volume
        with_marker = case if case.meta["marker"] else other
        assert changed.any()
        assert not (changed & ~(with_marker.volume > 1200)).any()  # only the bright bead
        assert _organs_equal(case, other)
        assert np.array_equal(case.labels, other.labels)


def test_toggled_fat_changes_only_the_body_wall_outside_every_organ(source):
    label = "h_great_vessel_calcification"
    for case_id in source.case_ids("test"):
        case = source.load(case_id)
        other = source.counterfactual(case_id, label, "cue")
        assert (case.meta["fat_mm"] >= 18) != (other.meta["fat_mm"] >= 18)
        changed = case.volume != other.volume
        inside = np.logical_or.reduce([mask for mask in case.organs.values()])
        assert changed.any() and not (changed & inside).any()
        assert _organs_equal(case, other)
        for a, b in zip(case.findings, other.findings, strict=True):
            assert np.array_equal(a.mask, b.mask)


@pytest.mark.parametrize("label", CONFOUNDED)
def test_a_removed_finding_changes_only_its_own_voxels(source, label):
    k = source.label_names.index(label)
    positives = [c for c in source.case_ids("test") if source.plan(c).labels[label]]
    assert len(positives) >= 4
    for case_id in positives:
        case = source.load(case_id)
        other = source.counterfactual(case_id, label, "finding")
        own = np.logical_or.reduce([f.mask for f in case.findings if f.label == label])
        changed = case.volume != other.volume
        assert changed.any() and not (changed & ~own).any()
        assert not other.labels[k] and case.labels[k]
        rest = [f for f in case.findings if f.label != label]
        assert [f.label for f in rest] == [f.label for f in other.findings]
        assert all(
            np.array_equal(a.mask, b.mask) for a, b in zip(rest, other.findings, strict=True)
        )
        assert _organs_equal(case, other)


def test_a_counterfactual_needs_a_planted_cue_and_a_present_finding(source):
    negative = next(c for c in source.case_ids("test") if not source.plan(c).labels["lung_mass"])
    with pytest.raises(ValueError, match="has no planted cue"):
        source.counterfactual(negative, "lung_mass", "cue")
    with pytest.raises(ValueError, match="no lung_mass to remove"):
        source.counterfactual(negative, "lung_mass", "finding")
    with pytest.raises(ValueError, match="unknown counterfactual"):
        source.counterfactual(negative, "lung_consolidation", "both")


def test_arms_down_change_only_voxels_outside_the_body(tmp_path):
    source = PhantomSource(
        "tiny", seed=5, confounders=True, n_test=6, cache_dir=tmp_path,
        cues="arms:lung_atelectasis",
    )  # fmt: skip
    for case_id in source.case_ids("test"):
        case = source.load(case_id)
        other = source.counterfactual(case_id, "lung_atelectasis", "cue")
        assert case.meta["arms_down"] != other.meta["arms_down"]
        with_arms, without = (case, other) if case.meta["arms_down"] else (other, case)
        changed = case.volume != other.volume
        assert changed.any() and _organs_equal(case, other)
        # only air became arm: the body, the table and every organ are as they were
        assert np.all(without.volume[changed] < -850) and np.all(with_arms.volume[changed] > -400)
