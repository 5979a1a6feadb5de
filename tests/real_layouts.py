"""Tiny datasets written in the exact on-disk layouts of RAD-ChestCT, CT-RATE (both releases)
and the ``folder`` dataset, from any HU volume on ctbench's axes ``[S, Y, X]``.

Tests write the real CT of ``shared/data`` (TotalSegmentator's example) into each layout and
check that every loader puts it back on the same axes; the phantom's volumes give small chest
CTs with lungs. Each writer follows the format as the dataset ships it, not as ctbench reads it:
RAD-ChestCT's npz is ``[S, Y, X]`` int16 clipped to [-1000, 1000]; CT-RATE's NIfTI stores slices
last with a RAS affine; the ``folder`` NIfTI and DICOM files carry their own geometry.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"
SHARED_CT = SHARED_DATA / "example_ct.nii.gz"


def ras_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """The NIfTI (RAS+) affine of :func:`to_nifti_array`'s array: its axes run toward patient
    left, posterior and superior, so x and y fall along them and z rises."""
    s, y, x = spacing
    return np.diag([-x, -y, s, 1.0])


def to_nifti_array(volume: np.ndarray) -> np.ndarray:
    """``[S, Y, X]`` (superior first) -> ``[X, Y, Z]`` with slices last, inferior first."""
    return np.ascontiguousarray(volume[::-1].transpose(2, 1, 0))


def write_nifti(path: Path, volume: np.ndarray, spacing, *, release: str = "plain") -> Path:
    """A NIfTI file of an HU volume: ``plain`` int16 HU; ``fixed`` int16 (HU + 1024) with the
    scaling in the header (CT-RATE's ``_fixed`` release); ``first`` float32 raw values
    (HU + 1024) with a blank scaling (CT-RATE's first release)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_nifti_array(volume)
    affine = ras_affine(spacing)
    if release == "plain":
        image = nib.Nifti1Image(data.astype(np.int16), affine)
    elif release == "fixed":
        image = nib.Nifti1Image((data + 1024).astype(np.int16), affine)
        image.header.set_slope_inter(1.0, -1024.0)
    elif release == "first":
        image = nib.Nifti1Image((data + 1024).astype(np.float32), affine)
        image.header.set_slope_inter(np.nan, np.nan)
    else:
        raise ValueError(release)
    nib.save(image, path)
    return path


def write_dicom_series(folder: Path, volume: np.ndarray, spacing, *, seed: int = 0) -> Path:
    """An axial DICOM series (one file per slice, written in shuffled order, int16 pixels with
    RescaleIntercept -1024) of an ``[S, Y, X]`` HU volume."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    s_step, y_step, x_step = spacing
    series, study = generate_uid(), generate_uid()
    order = np.random.default_rng(seed).permutation(volume.shape[0])
    for k in order:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"IM{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, study
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]  # rows toward posterior, columns left
        ds.ImagePositionPatient = [0.0, 0.0, -k * s_step]  # slice 0 is the most superior
        ds.PixelSpacing = [y_step, x_step]
        ds.SliceThickness = s_step
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
        ds.PixelData = (volume[k].astype(np.int32) + 1024).astype(np.int16).tobytes()
        pydicom.dcmwrite(folder / f"IM{k:04d}.dcm", ds, enforce_file_format=True)
    return folder


def write_rad_chestct(
    root: Path, volumes: dict[str, np.ndarray], positives: dict[str, set[tuple[str, str]]]
) -> Path:
    """``<id>.npz`` files (key ``ct``) and one label CSV per split, with ``abnormality*
    location`` columns for every pair in ``positives`` plus a few always-zero ones, and one
    row for a scan that is not in the subset (as the public CSVs list all 35,747)."""
    pairs = sorted({p for v in positives.values() for p in v} | {("nodulegr1cm", "left_lung")})
    columns = ["NoteAcc_DEID", *(f"{a}*{loc}" for a, loc in pairs)]
    rows: dict[str, list] = {"train": [], "valid": [], "test": []}
    split_of = {"trn": "train", "val": "valid", "tst": "test"}
    (root / "volumes").mkdir(parents=True, exist_ok=True)
    for case_id, volume in volumes.items():
        ct = np.clip(volume, -1000, 1000).astype(np.int16)
        np.savez_compressed(root / "volumes" / f"{case_id}.npz", ct=ct)
        rows[split_of[case_id[:3]]].append(
            [case_id, *(int(p in positives.get(case_id, set())) for p in pairs)]
        )
    rows["test"].append(["tst99999", *([0] * len(pairs))])  # listed, not downloaded
    for split, split_rows in rows.items():
        with (root / f"img{split}_Abnormality_and_Location_Labels.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(split_rows)
    return root


CT_RATE_LABELS = [
    "Medical material",
    "Arterial wall calcification",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Lymphadenopathy",
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
]


def write_ct_rate(
    root: Path,
    volumes: dict[str, np.ndarray],
    spacing,
    *,
    release: str = "fixed",
    positives: dict[str, set[str]] | None = None,
    reports: dict[str, str] | None = None,
    metadata: bool = True,
) -> Path:
    """CT-RATE's layout for ``{VolumeName: volume}`` (``train_1_a_1.nii.gz``, ...): volumes of
    one ``release`` (``fixed`` or ``first``), the labels, reports and metadata CSVs."""
    data = root / "dataset"
    positives, reports = positives or {}, reports or {}
    tables: dict[str, list] = {"train": [], "valid": []}
    for name, volume in volumes.items():
        split, patient, scan, _ = name.removesuffix(".nii.gz").split("_")
        folder = f"{split}_fixed" if release == "fixed" else split
        write_nifti(
            data / folder / f"{split}_{patient}" / f"{split}_{patient}_{scan}" / name,
            volume,
            spacing,
            release=release,
        )
        tables[split].append(name)
    for split, names in tables.items():
        long = "validation" if split == "valid" else split
        _write(
            data / "multi_abnormality_labels" / f"{split}_predicted_labels.csv",
            ["VolumeName", *CT_RATE_LABELS],
            [[n, *(int(lab in positives.get(n, set())) for lab in CT_RATE_LABELS)] for n in names],
        )
        _write(
            data / "radiology_text_reports" / f"{long}_reports.csv",
            [
                "VolumeName",
                "ClinicalInformation_EN",
                "Technique_EN",
                "Findings_EN",
                "Impressions_EN",
            ],
            [
                [
                    n,
                    "Suspected pneumonia.",
                    "Not given.",
                    reports.get(n, "Not given."),
                    "Not given.",
                ]
                for n in names
            ],
        )
        if metadata:
            s, y, x = spacing
            _write(
                data / "metadata" / f"{long}_metadata.csv",
                ["VolumeName", "RescaleSlope", "RescaleIntercept", "XYSpacing", "ZSpacing"],
                [[n, 1.0, -1024.0, f"[{y}, {x}]", s] for n in names],
            )
    return root


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_folder(
    root: Path,
    volumes: dict[str, np.ndarray],
    spacing,
    *,
    dicom: tuple[str, ...] = (),
    labels: dict[str, dict[str, int]] | None = None,
    reports: dict[str, str] | None = None,
) -> Path:
    """The ``folder`` layout: ``volumes/<id>.nii.gz`` (or a DICOM series ``volumes/<id>/`` for
    the ids in ``dicom``), ``labels.csv`` and ``reports.csv`` when given."""
    for case_id, volume in volumes.items():
        if case_id in dicom:
            write_dicom_series(root / "volumes" / case_id, volume, spacing)
        else:
            write_nifti(root / "volumes" / f"{case_id}.nii.gz", volume, spacing)
    if labels:
        names = sorted({n for row in labels.values() for n in row})
        _write(
            root / "labels.csv",
            ["case_id", *names],
            [[cid, *(row.get(n, 0) for n in names)] for cid, row in labels.items()],
        )
    if reports:
        _write(root / "reports.csv", ["case_id", "report"], [[k, v] for k, v in reports.items()])
    return root
