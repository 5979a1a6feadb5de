"""The phantom: anatomy, findings in their organs, reports that agree, confounders, cache."""

from __future__ import annotations

import re

import ctbench
import numpy as np
import pytest
from ctbench.core.cases import InvalidCaseError
from ctbench.plugins.datasets.phantom import (
    FINDING_LABELS,
    PhantomConfig,
    PhantomSource,
    generate_case,
)
from ctbench.vocabulary import ORGANS, output_labels
from sklearn.metrics import roc_auc_score


def test_registered_as_the_phantom_dataset(tmp_path):
    source = ctbench.create_dataset("phantom", preset="tiny", cache_dir=tmp_path)
    assert isinstance(source, PhantomSource)
    assert source.volume_shape == (27, 64, 64)
    assert set(source.label_names) <= set(output_labels())
    assert len(source.label_names) == 12
    assert [len(source.case_ids(s)) for s in ("train", "valid", "test")] == [24, 12, 12]


def test_generation_is_deterministic_and_per_case_independent():
    config = PhantomConfig.from_preset("tiny")
    first, again = generate_case(config, "train", 3), generate_case(config, "train", 3)
    assert np.array_equal(first.volume, again.volume)
    assert first.report == again.report
    for a, b in zip(first.findings, again.findings, strict=True):
        assert np.array_equal(a.mask, b.mask)
    other = generate_case(config, "train", 4)
    assert not np.array_equal(first.volume, other.volume)
    reseeded = generate_case(PhantomConfig.from_preset("tiny", seed=1), "train", 3)
    assert not np.array_equal(first.volume, reseeded.volume)


def test_materialising_in_two_processes_writes_the_same_cases(tmp_path):
    """Each case comes from its own seed: two generating processes write the bytes one does."""
    from ctbench.plugins.datasets.phantom import PhantomSource

    options = {"n_train": 4, "n_valid": 2, "n_test": 2}
    serial = PhantomSource("tiny", cache_dir=tmp_path / "one", **options)
    parallel = PhantomSource("tiny", cache_dir=tmp_path / "two", **options)
    assert serial.materialise(progress=False, processes=1) == 8
    assert parallel.materialise(progress=False, processes=2) == 8
    assert parallel.materialise(progress=False, processes=2) == 0  # all cached now
    for cid in [c for split in ("train", "valid", "test") for c in serial.case_ids(split)]:
        for one, two in zip(serial.store.paths(cid), parallel.store.paths(cid), strict=True):
            assert one.read_bytes() == two.read_bytes(), cid


def test_volume_is_int16_hu_with_plausible_tissues(tiny_cases):
    for case in tiny_cases[:6]:
        assert case.volume.dtype == np.int16
        lung = case.volume[case.organs["right_lung"] | case.organs["left_lung"]]
        assert -920 < np.median(lung) < -760, case.case_id
        heart = case.volume[case.organs["heart"]]
        assert -60 < np.median(heart) < 80, case.case_id
        assert (case.volume <= -950).mean() > 0.2  # air around the body


def test_every_finding_mask_lies_inside_its_organ(tiny_cases):
    for case in tiny_cases:
        for finding in case.findings:
            organ = np.logical_or.reduce([case.organs[o] for o in finding.organs])
            assert finding.mask.any(), (case.case_id, finding.label)
            assert not (finding.mask & ~organ).any(), (case.case_id, finding.label)


def test_organ_masks_are_consistent(tiny_cases):
    for case in tiny_cases:
        organs = case.organs
        assert set(organs) == set(ORGANS)
        assert not (organs["right_lung"] & organs["left_lung"]).any()
        assert not (organs["heart"] & ~organs["mediastinum"]).any()
        assert not (organs["great_vessel"] & ~organs["mediastinum"]).any()
        lungs = organs["right_lung"] | organs["left_lung"]
        assert not (lungs & organs["mediastinum"]).any()


def _centroid(mask):
    return np.argwhere(mask).mean(axis=0)


def test_orientation_heart_left_right_lung_at_low_x(tiny_cases):
    for case in tiny_cases:
        organs = case.organs
        x_mid = case.volume.shape[2] / 2
        assert _centroid(organs["heart"])[2] > x_mid, case.case_id  # patient's left
        assert _centroid(organs["right_lung"])[2] < x_mid < _centroid(organs["left_lung"])[2]
        assert organs["right_lung"].sum() > organs["left_lung"].sum()
        # Superior first: the lung apices come before the heart along S.
        first_lung_slice = np.flatnonzero(organs["right_lung"].any(axis=(1, 2)))[0]
        assert first_lung_slice < _centroid(organs["heart"])[0]


def test_effusions_are_dependent_and_pneumothoraces_anterior(tiny_cases):
    seen = set()
    for case in tiny_cases:
        for finding in case.findings:
            lung_y = _centroid(case.organs[finding.organs[0]])[1]
            if finding.label == "lung_pleural_effusion":
                assert _centroid(finding.mask)[1] > lung_y, case.case_id
                seen.add(finding.label)
            if finding.label == "lung_pneumothorax":
                assert _centroid(finding.mask)[1] < lung_y, case.case_id
                seen.add(finding.label)
    assert seen == {"lung_pleural_effusion", "lung_pneumothorax"}


KEYWORDS = {
    "lung_nodule": r"nodule",
    "lung_mass": r"\bmass\b",
    "lung_pleural_effusion": r"pleural effusion",
    "lung_consolidation": r"consolidation",
    "lung_groundglass": r"ground[- ]?glass",
    "lung_emphysema": r"emphysem",
    "lung_pneumothorax": r"pneumothorax",
    "lung_atelectasis": r"atelectasis",
    "heart_cardiomegaly": r"cardiomegaly|heart is enlarged|heart size",
    "heart_pericardial_effusion": r"pericardial effusion",
    "h_great_vessel_calcification": r"calcific|aorta is normal",
    "h_mediastinum_lymphadenopathy": r"lymph|adenopathy",
}
NEGATED = re.compile(
    r"^(no |negative for |heart size is normal|normal heart size|the thoracic aorta is normal)",
    re.I,
)


def _sentences(report: str) -> list[str]:
    text = re.sub(r"(FINDINGS|IMPRESSION):", "", report)
    text = re.sub(r"\b\d+\. ", "", text)
    return [s.strip() for s in re.split(r"(?<=\.)\s+(?=[A-Z])", text) if s.strip()]


def test_labels_masks_and_report_agree(tiny_cases):
    for case in tiny_cases:
        present = {f.label for f in case.findings}
        assert {n for n, v in zip(FINDING_LABELS, case.labels, strict=True) if v} == present
        sentences = _sentences(case.report)
        for label, pattern in KEYWORDS.items():
            hits = [s for s in sentences if re.search(pattern, s, re.I)]
            positives = [s for s in hits if not NEGATED.match(s)]
            if label in present:
                assert positives, (case.case_id, label, case.report)
            else:
                assert not positives, (case.case_id, label, positives)
        for finding in case.findings:
            if finding.label.startswith("lung_"):
                side_words = {
                    "right": r"right|bilateral|both",
                    "left": r"left|lingula|bilateral|both",
                }
                said = [
                    s
                    for s in sentences
                    if re.search(KEYWORDS[finding.label], s, re.I) and not NEGATED.match(s)
                ]
                assert any(re.search(side_words[finding.details["side"]], s, re.I) for s in said), (
                    case.case_id,
                    finding.label,
                    said,
                )


def test_findings_vary_and_co_occur(tiny_cases):
    labels = np.array([case.labels for case in tiny_cases])
    assert labels.sum(axis=1).max() >= 3  # several findings per volume
    assert (labels.sum(axis=1) == 0).any() or labels.sum(axis=1).min() <= 1
    assert labels.any(axis=0).all(), "every finding appears somewhere in the tiny preset"


def test_prevalence_is_configurable():
    config = PhantomConfig.from_preset("tiny", n_train=200, prevalence={"lung_nodule": 0.0})
    from ctbench.plugins.datasets.phantom.findings import plan_case

    plans = [plan_case(config, "train", i) for i in range(200)]
    assert not any(p.labels["lung_nodule"] for p in plans)
    with pytest.raises(ValueError, match="unknown labels"):
        PhantomConfig.from_preset("tiny", prevalence={"lung_nodul": 0.5})


# --- confounders ------------------------------------------------------------------------


def _anterior_fat_mm(case) -> float:
    """Subcutaneous fat thickness measured from the voxels along the anterior midline."""
    volume, (_, dy, _) = case.volume, case.spacing
    runs = []
    for s in range(volume.shape[0] // 3, 2 * volume.shape[0] // 3):
        column = volume[s, :, volume.shape[2] // 2]
        start = int(np.argmax(column > -500))  # skin
        fat = (column[start:] > -160) & (column[start:] < -40)
        runs.append(int(np.argmin(fat)) if not fat.all() else len(fat))
    return float(np.median(runs) * dy)


def _marker_voxels(case) -> int:
    return int((case.volume > 1200).sum())


@pytest.fixture(scope="module")
def confounded(tmp_path_factory):
    source = PhantomSource(
        "tiny",
        seed=3,
        confounders=True,
        n_train=40,
        n_test=40,
        n_valid=4,
        cache_dir=tmp_path_factory.mktemp("confounded"),
        prevalence={"h_great_vessel_calcification": 0.5, "lung_consolidation": 0.5},
        cues="fat:h_great_vessel_calcification,marker:lung_consolidation",
    )
    return {s: [source.load(c) for c in source.case_ids(s)] for s in ("train", "test")}


def _auroc(cases, label, cue) -> float:
    k = FINDING_LABELS.index(label)
    return roc_auc_score([c.labels[k] for c in cases], [cue(c) for c in cases])


def test_fat_cue_predicts_calcification_in_train_and_reverses_in_test(confounded):
    label = "h_great_vessel_calcification"
    assert _auroc(confounded["train"], label, _anterior_fat_mm) > 0.8
    assert _auroc(confounded["test"], label, _anterior_fat_mm) < 0.3


def test_marker_cue_predicts_consolidation_in_train_and_reverses_in_test(confounded):
    label = "lung_consolidation"
    assert _auroc(confounded["train"], label, _marker_voxels) > 0.8
    assert _auroc(confounded["test"], label, _marker_voxels) < 0.3
    for case in confounded["train"]:  # the marker is outside the lungs
        lungs = case.organs["right_lung"] | case.organs["left_lung"]
        assert not (lungs & (case.volume > 1200)).any()


def test_cue_pairings_are_configurable(tmp_path):
    """cues= moves a cue to another label (one spelling per place a user writes it); a
    pairing the phantom cannot plant is one clear error."""
    for spelling in ("marker:lung_atelectasis", {"marker": "lung_atelectasis"}):
        source = PhantomSource("tiny", confounders=True, cues=spelling, cache_dir=tmp_path)
        assert source.confounded_labels == ("lung_atelectasis",)
        plans = [source.plan(c) for c in source.case_ids("train")]
        assert np.mean([p.marker == p.labels["lung_atelectasis"] for p in plans]) > 0.75
    assert PhantomSource("tiny", cache_dir=tmp_path).confounded_labels == ()
    for bad, why in (
        ("glow:lung_mass", "cues are fat, marker, arms"),
        ("fat:lung_masss", "unknown label"),
        ("fat:lung_mass,fat:lung_nodule", "at most once"),
        ("fat", "CUE:LABEL"),
    ):
        with pytest.raises(ValueError, match=why):
            PhantomSource("tiny", confounders=True, cues=bad, cache_dir=tmp_path)


def test_fat_stays_in_the_normal_range_and_toggles_within_it():
    from ctbench.plugins.datasets.phantom.findings import toggle_fat

    for fat in (5.0, 9.0, 13.0, 22.0, 27.5, 32.0):
        assert toggle_fat(toggle_fat(fat)) == pytest.approx(fat)
        assert (toggle_fat(fat) >= 18.0) != (fat >= 18.0)
    with pytest.raises(ValueError, match="neither cue range"):
        toggle_fat(17.0)


def test_confounders_are_off_unless_asked(tiny_cases):
    assert all(_marker_voxels(c) == 0 for c in tiny_cases)
    assert all(not c.meta["marker"] for c in tiny_cases)


# --- cache ------------------------------------------------------------------------------


def test_cache_is_reused_and_keyed_by_configuration(tmp_path):
    source = PhantomSource("tiny", cache_dir=tmp_path)
    case = source.load("trn00002")
    npz, _ = source.store.paths("trn00002")
    stamp = npz.stat().st_mtime_ns
    again = PhantomSource("tiny", cache_dir=tmp_path).load("trn00002")
    assert npz.stat().st_mtime_ns == stamp
    assert np.array_equal(case.volume, again.volume)
    assert case.report == again.report and case.locations() == again.locations()
    for name in ORGANS:
        assert np.array_equal(case.organs[name], again.organs[name])
    for a, b in zip(case.findings, again.findings, strict=True):
        assert a.label == b.label and np.array_equal(a.mask, b.mask)
    assert (source.folder / "index.csv").read_text().splitlines()[0].startswith("case_id,split,")
    other = PhantomSource("tiny", seed=5, cache_dir=tmp_path)
    assert other.folder != source.folder
    assert not list(source.folder.glob("cases/*.tmp"))


def test_corrupt_cached_case_is_one_clear_error(tmp_path):
    source = PhantomSource("tiny", cache_dir=tmp_path)
    source.load("trn00001")
    npz, _ = source.store.paths("trn00001")
    npz.write_bytes(b"garbage")
    with pytest.raises(InvalidCaseError, match=r"trn00001: .*trn00001\.npz: unreadable"):
        source.load("trn00001")
    with pytest.raises(InvalidCaseError, match="not a case of phantom"):
        source.load("trn99999")
