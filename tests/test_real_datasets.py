"""Real chest CT formats without the data: RAD-ChestCT, CT-RATE (both releases) and ``folder``.

Each layout is written by the test (``tests/real_layouts.py``) from the real CT in
``shared/data`` (TotalSegmentator's example: lung bases, liver, spleen) and read back through the
dataset plugin: the volume must come back on ctbench's axes, voxel for voxel, and the anatomy
(from TotalSegmentator's own segmentation of the same scan) must sit where it belongs: the right
lung and the liver on the patient's right (low X), the lungs above the liver.
"""

from __future__ import annotations

import re
import shutil

import ctbench
import numpy as np
import pytest
from ctbench.core.cases import InvalidCaseError
from ctbench.data.io import (
    check_hu,
    check_lungs,
    read_nifti,
    resample,
    to_hu_int16,
)

from tests.real_layouts import (
    CT_RATE_LABELS,
    SHARED_CT,
    SHARED_DATA,
    write_ct_rate,
    write_folder,
    write_nifti,
    write_rad_chestct,
)

needs_shared = pytest.mark.skipif(
    not SHARED_CT.exists(), reason=f"shared test data not found at {SHARED_DATA}"
)
TINY = (5.0, 5.0, 5.0)  # the real-data tiny preset's spacing


@pytest.fixture(scope="module")
def shared_ct():
    """The shared CT on ctbench's axes and its spacing: tests/test_io_checkpoints.py checks
    that its anatomy lands where it belongs (right lung and liver at low X, lungs on top)."""
    volume, spacing, _ = read_nifti(SHARED_CT)
    return volume, spacing


def expected_tiny(volume, spacing, clip=None):
    source = np.clip(volume, *clip) if clip else volume
    return to_hu_int16(resample(source, spacing, TINY))


@needs_shared
@pytest.mark.parametrize(
    "layout", ["rad-chestct", "ct-rate-fixed", "ct-rate-first", "nifti", "dicom"]
)
def test_every_layout_loads_the_shared_ct_unchanged(layout, shared_ct, tmp_path):
    volume, spacing = shared_ct
    cache = {"cache_dir": tmp_path / "cache"}
    if layout == "rad-chestct":
        write_rad_chestct(tmp_path, {"trn00001": volume}, {"trn00001": {("nodule", "right_lung")}})
        source = ctbench.create_dataset(
            "rad-chestct", data_root=tmp_path, preset="tiny", spacing_mm=3.0, **cache
        )
        case, clip = source.load("trn00001"), (-1000, 1000)
    elif layout.startswith("ct-rate"):
        name = "train_7_a_1.nii.gz"
        write_ct_rate(tmp_path, {name: volume}, spacing, release=layout.split("-")[-1])
        source = ctbench.create_dataset("ct-rate", data_root=tmp_path, preset="tiny", **cache)
        case, clip = source.load("train_7_a_1"), None
        assert case.meta["release"] == layout.split("-")[-1]
    else:
        dicom = ("ct",) if layout == "dicom" else ()
        write_folder(
            tmp_path, {"ct": volume}, spacing, dicom=dicom, labels={"ct": {"lung_nodule": 1}}
        )
        source = ctbench.create_dataset("folder", data_root=tmp_path, preset="tiny", **cache)
        case, clip = source.load("ct"), None
    assert case.spacing == TINY and case.volume.dtype == np.int16
    assert np.array_equal(case.volume, expected_tiny(volume, spacing, clip))
    assert case.meta["original_spacing"] == [3.0, 3.0, 3.0]


def test_ct_rate_hu_is_judged_per_file(tmp_path):
    """The _fixed release's header scaling is HU already; the first release's raw values take
    the metadata CSV's scaling; a file scaled twice, or raw with no metadata row, is refused
    with the file named."""
    from ctbench.plugins.datasets.ct_rate import read_volume

    volume = chest_volume()
    meta = {"slope": 1.0, "intercept": -1024.0, "spacing": (5.0, 5.0, 5.0)}
    fixed = write_nifti(tmp_path / "fixed.nii.gz", volume, TINY, release="fixed")
    first = write_nifti(tmp_path / "first.nii.gz", volume, TINY, release="first")
    for path, source in ((fixed, "header"), (first, "metadata CSV")):
        hu, spacing, info = read_volume(path, meta)
        assert np.array_equal(hu, volume) and source in info["hu_from"] and spacing == TINY
    with pytest.raises(
        InvalidCaseError, match=r"first\.nii\.gz: no air near -1000 HU.*no metadata"
    ):
        read_volume(first, None)
    twice = write_nifti(tmp_path / "twice.nii.gz", volume - 1024, TINY, release="fixed")
    with pytest.raises(InvalidCaseError, match=r"twice\.nii\.gz.*air lies at -20\d\d"):
        read_volume(twice, meta)


def chest_volume(seed: int = 0) -> np.ndarray:
    """A small chest-like HU volume on the tiny grid: air outside, a body, two lungs."""
    from ctbench.plugins.datasets.phantom import generate_case
    from ctbench.plugins.datasets.phantom.config import PhantomConfig

    config = PhantomConfig.from_preset("tiny", seed=seed, field_of_view_mm=(135.0, 320.0, 320.0))
    assert config.spacing_mm == TINY
    return generate_case(config, "train", 0).volume.astype(np.int16)


def test_hu_and_lung_checks_name_the_problem():
    volume = chest_volume()
    check_hu(volume, "ok")
    assert check_lungs(volume, TINY, "ok") > 1000  # litres of lung
    with pytest.raises(InvalidCaseError, match=r"raw\.nii: no air near -1000 HU"):
        check_hu(volume + 1024, "raw.nii")
    head = np.full((27, 64, 64), -1000, np.int16)
    z, y, x = np.ogrid[:27, :64, :64]
    head[(z - 13) ** 2 / 144 + ((y - 32) ** 2 + (x - 32) ** 2) / 625 < 1] = 40  # brain
    head[(z - 13) ** 2 + (y - 14) ** 2 + (x - 32) ** 2 < 4] = -1000  # a sinus
    with pytest.raises(InvalidCaseError, match=r"head\.nii: no lungs \(only \d+ mL"):
        check_lungs(head, TINY, "head.nii")


def test_rad_chestct_columns_map_onto_the_80_outputs_and_their_organs():
    from ctbench.plugins.datasets.rad_chestct import organ_labels

    located = organ_labels(
        {
            ("nodule", "right_upper"),
            ("nodulegr1cm", "left_lower"),
            ("cardiomegaly", "heart"),
            ("lymphadenopathy", "hilum"),
            ("atherosclerosis", "aorta"),
            ("atelectasis", "lung"),  # a lung-only pathology, side unknown
            ("mass", "liver"),  # no organ of the five
            ("calcification", "mitral_valve"),
        }
    )
    assert located == {
        "h_great_vessel_atherosclerosis": ["great_vessel"],
        "h_mediastinum_lymphadenopathy": ["mediastinum"],
        "heart_calcification": ["heart"],
        "heart_cardiomegaly": ["heart"],
        "lung_atelectasis": ["right_lung", "left_lung"],
        "lung_nodule": ["right_lung"],
        "lung_nodulegr1cm": ["left_lung"],
    }


def test_rad_chestct_index_lists_what_is_wrong(tmp_path):
    volume = chest_volume()
    write_rad_chestct(
        tmp_path,
        {"trn00001": volume, "trn00002": volume, "val00001": volume, "tst00001": volume},
        {"trn00001": {("cardiomegaly", "heart")}, "val00001": {("nodule", "left_lung")}},
    )
    (tmp_path / "volumes" / "trn00003.npz").write_bytes(b"PK\x03\x04 truncated")  # no row
    (tmp_path / "volumes" / "trn00002.npz").write_bytes(b"PK\x03\x04 truncated")
    source = ctbench.create_dataset(
        "rad-chestct", data_root=tmp_path, preset="tiny", spacing_mm=5.0, cache_dir=tmp_path / "c"
    )
    assert source.case_ids("train") == ["trn00001", "trn00002"]
    assert source.case_ids("valid") == ["val00001"] and source.case_ids("test") == ["tst00001"]
    assert source.record["label_rows_without_volume"] == 1  # tst99999: not in the subset
    (problem,) = source.problems
    assert problem["case_id"] == "trn00003" and "no row in any label CSV" in problem["error"]
    case = source.load("trn00001")
    assert case.labels[source.label_names.index("heart_cardiomegaly")]
    assert case.located == {"heart_cardiomegaly": ["heart"]} and case.report is None
    with pytest.raises(InvalidCaseError, match=r"trn00002\.npz: unreadable npz"):
        source.load("trn00002")
    bad = tmp_path / "imgtrain_Abnormality_and_Location_Labels.csv"
    bad.write_text("NoteAcc_DEID,nodule_right_lung\ntrn00001,1\n")
    with pytest.raises(
        ValueError, match=r"imgtrain_.*'nodule_right_lung' is not named abnormality\*location"
    ):
        ctbench.create_dataset("rad-chestct", data_root=tmp_path, preset="tiny")


def test_ct_rate_splits_by_patient_and_places_labels_from_reports(tmp_path):
    volume = chest_volume()
    names = [f"train_{p}_{s}_{r}.nii.gz" for p in range(1, 41) for s in "ab" for r in (1, 2)]
    names += ["valid_900_a_1.nii.gz", "valid_900_a_2.nii.gz"]
    volumes = dict.fromkeys(names, volume)
    write_ct_rate(
        tmp_path,
        volumes,
        TINY,
        positives={names[0]: {"Lung nodule", "Cardiomegaly", "Hiatal hernia"}},
        reports={names[0]: "Cardiomegaly. A 5 mm nodule in the left lower lobe. No effusion."},
    )
    source = ctbench.create_dataset(
        "ct-rate", data_root=tmp_path, preset="tiny", cache_dir=tmp_path / "c"
    )
    assert source.label_names == tuple(CT_RATE_LABELS)
    assert source.case_ids("test") == ["valid_900_a_1", "valid_900_a_2"]
    patients = {
        split: {c.rsplit("_", 2)[0] for c in source.case_ids(split)} for split in ("train", "valid")
    }
    assert patients["valid"] and not patients["train"] & patients["valid"]
    assert len(source.case_ids("train")) + len(source.case_ids("valid")) == 160
    assert "made" in source.record["splits"]["valid"] and "given" in source.record["splits"]["test"]
    entry = source.entries["train_1_a_1"]
    assert entry.report.startswith("Cardiomegaly.")  # "Not given." sections are empty
    assert entry.located == {
        "Cardiomegaly": ["heart"],
        "Hiatal hernia": ["mediastinum"],  # not in the report: every organ it may lie in
        "Lung nodule": ["left_lung"],
    }
    again = ctbench.create_dataset(
        "ct-rate", data_root=tmp_path, preset="tiny", cache_dir=tmp_path / "c"
    )
    assert again.case_ids("valid") == source.case_ids("valid")  # deterministic


def test_patient_split_is_stable_when_patients_are_added():
    from ctbench.data.disk_source import split_patients

    patients = [f"p{i}" for i in range(2000)]
    held = split_patients(patients, 0.15, "ctbench-valid")
    assert 0.12 < len(held) / len(patients) < 0.18
    more = split_patients([*patients, *(f"q{i}" for i in range(500))], 0.15, "ctbench-valid")
    assert more & set(patients) == held


BAD_KINDS = {
    "truncated": "unreadable NIfTI",
    "raw_units": "no air near -1000 HU",
    "head": "no lungs",
    "twin": "several volumes",
    "no_volume": "a row but no volume",
    "orphan": "no row in labels.csv",
    "latin1": "not UTF-8",
}


def bad_folder(root, n_good: int = 6):
    """A folder dataset with ``n_good`` chest volumes and one case of every kind of bad input
    (BAD_KINDS); labels.csv, per-case report files."""
    good = {f"good{i}": chest_volume(i) for i in range(n_good)}
    labels = {
        cid: {"lung_pleural_effusion": i % 2, "heart_cardiomegaly": (i // 2) % 2}
        for i, cid in enumerate(good)
    }
    write_folder(
        root,
        {**good, "raw_units": good["good0"] + 1024, "twin": good["good0"]},
        TINY,
        labels=labels,
    )
    (root / "volumes" / "truncated.nii.gz").write_bytes(
        (root / "volumes" / "good0.nii.gz").read_bytes()[:300]
    )
    head = np.full((27, 64, 64), -1000, np.int16)
    z, y, x = np.ogrid[:27, :64, :64]
    head[(z - 13) ** 2 / 144 + ((y - 32) ** 2 + (x - 32) ** 2) / 625 < 1] = 40
    write_nifti(root / "volumes" / "head.nii.gz", head, TINY)
    write_nifti(root / "volumes" / "orphan.nii.gz", good["good0"], TINY)
    write_folder(root / "more", {"twin": good["good1"]}, TINY, dicom=("twin",))
    (root / "volumes" / "latin1.nii.gz").write_bytes(
        (root / "volumes" / "good1.nii.gz").read_bytes()
    )
    (root / "reports").mkdir()
    for cid in good:
        (root / "reports" / f"{cid}.txt").write_text("FINDINGS: Small right pleural effusion.")
    (root / "reports" / "latin1.txt").write_bytes("Épanchement pleural.".encode("latin-1"))
    rows = (root / "labels.csv").read_text().splitlines()
    extra = [
        f"{cid},0,0" for cid in ("truncated", "raw_units", "head", "twin", "no_volume", "latin1")
    ]
    (root / "labels.csv").write_text("\n".join([*rows, *extra]) + "\n")
    return root


def test_folder_lists_every_bad_input_once(tmp_path):
    from ctbench.data.checks import check_cases
    from ctbench.data.loader import VolumeDataset

    source = ctbench.create_dataset(
        "folder", data_root=bad_folder(tmp_path / "data"), preset="tiny", cache_dir=tmp_path / "c"
    )
    datasets = {split: VolumeDataset(source, split) for split in ("train", "valid", "test")}
    problems = {p["case_id"]: p["error"] for p in check_cases(datasets, progress=False)}
    assert set(problems) == set(BAD_KINDS)
    for case_id, words in BAD_KINDS.items():
        assert words in problems[case_id], (case_id, problems[case_id])
    assert "truncated.nii.gz" in problems["truncated"] and "latin1.txt" in problems["latin1"]
    good = [cid for d in datasets.values() for cid in d.case_ids]
    assert sorted(good) == [f"good{i}" for i in range(6)]


def test_data_check_cli_lists_problems_and_exits_nonzero(tmp_path):
    from click.testing import CliRunner
    from ctbench.cli import main

    root = bad_folder(tmp_path / "data", n_good=2)
    env = {"CTBENCH_CACHE_DIR": str(tmp_path / "c")}
    result = CliRunner(env=env).invoke(
        main, ["data", "check", "folder", "--data-root", str(root), "--preset", "tiny", "--quiet"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [
        line for line in result.output.splitlines() if re.match(r"(-|train|valid|test) ", line)
    ]
    assert len(lines) == len(BAD_KINDS) and "7 with problems" in result.output
    missing = CliRunner(env=env).invoke(main, ["data", "check", "ct-rate", "--preset", "tiny"])
    assert missing.exit_code == 2 and "reads a folder: give --data-root" in missing.output


def test_run_on_a_folder_dataset_skips_and_lists_bad_cases(tmp_path):
    """``ctbench run --dataset folder --data-root``: trains, scores and explains the good cases;
    every bad input is skipped and listed in metrics.json; config.json says how the splits
    were made."""
    import json

    from click.testing import CliRunner
    from ctbench.cli import main

    root = bad_folder(tmp_path / "data", n_good=12)
    args = ["run", "--arch", "axialnet", "--explainer", "hirescam", "--dataset", "folder"]
    args += ["--data-root", str(root), "--preset", "tiny", "--start", "random", "--epochs", "1"]
    args += ["--overlays", "0", "--quiet", "--out", str(tmp_path / "runs"), "--name", "r"]
    env = {"CTBENCH_CACHE_DIR": str(tmp_path / "cache")}
    result = CliRunner(env=env).invoke(main, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert {case["case_id"] for case in metrics["skipped_cases"]} == set(BAD_KINDS)
    assert 0 < sum(metrics["n_cases"].values()) < 12
    assert np.isfinite(metrics["organiou"]["hirescam"])
    config = json.loads((tmp_path / "runs" / "r" / "config.json").read_text())
    assert config["run"]["data_root"] == str(root.resolve())
    assert "made" in config["dataset_index"]["splits"]["valid"]
    assert config["dataset_config"]["spacing_mm"] == 5.0


def test_run_options_for_datasets_read_from_disk(tmp_path):
    from click.testing import CliRunner
    from ctbench.cli import main
    from ctbench.experiments.run_config import RunConfig

    runs = tmp_path / "runs"
    missing = CliRunner().invoke(
        main, ["run", "--arch", "axialnet", "--dataset", "rad-chestct", "--out", str(runs)]
    )
    assert missing.exit_code != 0 and "reads a folder: give --data-root" in missing.output
    phantom = CliRunner().invoke(
        main, ["run", "--arch", "axialnet", "--data-root", str(tmp_path), "--out", str(runs)]
    )
    assert phantom.exit_code != 0 and "phantom takes no --data-root" in phantom.output
    assert not runs.exists() or not any(runs.iterdir())  # no empty run folder left behind
    real = RunConfig(arch="axialnet", dataset="folder", preset="tiny").resolved()
    assert real.start == "imagenet"  # no pretext pool for real data
    assert RunConfig(arch="axialnet", preset="tiny").resolved().start == "pretext"


def test_torch_and_scipy_resampling_agree():
    rng = np.random.default_rng(0)
    volume = rng.normal(0, 300, (20, 30, 40)).astype(np.float32)
    fast = resample(volume, (2.0, 1.0, 0.75), (0.8, 0.8, 0.8))
    slow = resample(volume, (2.0, 1.0, 0.75), (0.8, 0.8, 0.8), method="scipy")
    assert fast.shape == slow.shape == (50, 38, 38)  # round(size x spacing / target)
    np.testing.assert_allclose(fast, slow, atol=0.05)


@needs_shared
def test_shared_dicom_series_in_the_folder_layout(tmp_path):
    """The real DICOM series of ``shared/data`` as a ``folder`` case: it holds no lung (upper
    abdomen), so it is refused with that reason unless the lung check is off; then it loads as
    the DICOM reader gives it. A truncated slice file is one error naming that file."""
    from ctbench.data.io import read_dicom_series

    series = tmp_path / "data" / "volumes" / "abdomen"
    shutil.copytree(SHARED_DATA / "example_ct_dicom", series)
    for path in series.iterdir():
        path.chmod(0o644)
    (tmp_path / "data" / "labels.csv").write_text("case_id,lung_nodule\nabdomen,0\n")
    options = {"data_root": tmp_path / "data", "preset": "tiny", "cache_dir": tmp_path / "c"}
    source = ctbench.create_dataset("folder", **options)
    with pytest.raises(InvalidCaseError, match=r"abdomen: no lungs"):
        source.load("abdomen")
    unchecked = ctbench.create_dataset("folder", check_lungs=False, **options)
    volume, spacing = read_dicom_series(SHARED_DATA / "example_ct_dicom")
    assert np.array_equal(unchecked.load("abdomen").volume, expected_tiny(volume, spacing))
    first = sorted(series.iterdir())[3]
    first.write_bytes(first.read_bytes()[:2000])
    with pytest.raises(
        InvalidCaseError, match=rf"{first.name}: (unreadable DICOM|no ImagePositionPatient)"
    ):
        unchecked.load("abdomen")


def test_rad_chestct_lists_a_repeated_row_once(tmp_path):
    volume = chest_volume()
    write_rad_chestct(tmp_path, {"trn00001": volume, "trn00002": volume}, {})
    labels = tmp_path / "imgtrain_Abnormality_and_Location_Labels.csv"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([*lines, lines[1]]) + "\n")  # trn00001's row twice
    source = ctbench.create_dataset(
        "rad-chestct", data_root=tmp_path, preset="tiny", spacing_mm=5.0, cache_dir=tmp_path / "c"
    )
    (only,) = source.problems
    assert only["case_id"] == "trn00001" and "several rows" in only["error"]
    assert source.case_ids("train") == ["trn00002"]
