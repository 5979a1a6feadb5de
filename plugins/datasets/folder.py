"""The ``folder`` dataset: your own chest CT, as NIfTI files or DICOM series in one folder.

Layout (docs/your-data.md)::

    data_root/
      volumes/ (or anywhere below data_root)
        case001.nii.gz            one NIfTI file per case: the case id is the file's name
        case002/                  or one folder of DICOM files per series: the folder's name
          IM0001.dcm ...
      labels.csv                  case_id, [patient], [split], then one 0/1 column per label
      reports.csv                 case_id, report   (free text, English)
      reports/case001.txt         or one UTF-8 text file per report

Give ``labels.csv``, reports or both. Label columns are either the paper's 80 output
labels (``lung_nodule``, ``heart_cardiomegaly``, ...) or CT-RATE's 18 (``Lung nodule``, ...);
with no ``labels.csv`` the labels are the 80 that the report labeler reads in each report.
PARTITION places each present label where the report says (the labeler), else in every organ
where the label may lie. ``split`` is train, valid or test; missing splits are made by patient
(``patient`` column, else one patient per case).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import ctbench
import numpy as np
from ctbench.core.cases import SPLITS
from ctbench.data.disk_source import (
    DiskSource,
    Entry,
    binary_labels,
    data_folder,
    duplicates,
    present_placement,
    problem,
    read_csv,
)
from ctbench.plugins.datasets.disk_presets import PRESETS, preset_runs
from ctbench.vocabulary import check_labels, ct_rate_labels, label_organs, output_labels

RESERVED = ("case_id", "patient", "split")


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def find_volumes(root: Path) -> dict[str, list[Path]]:
    """``{case id: [paths]}``: NIfTI files by name, DICOM series by their folder's name."""
    from ctbench.data.io import nifti_stem

    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.name.startswith("."):
            continue
        if path.is_file() and (stem := nifti_stem(path.name)) is not None:
            found.setdefault(stem, []).append(path)
        elif path.is_dir():
            files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
            if files and _is_dicom(files[0]):
                found.setdefault(path.name, []).append(path)
    return found


def read_volume(path: Path):
    """``(HU volume, spacing, meta)`` of a NIfTI file or a DICOM series folder
    (``ctbench.data.io.load_volume``: the header's or the slices' scaling applied)."""
    from ctbench.data.io import load_volume

    volume, spacing = load_volume(path)
    return volume, spacing, {"format": "dicom" if path.is_dir() else "nifti"}


def label_vocabulary(columns: list[str], path: Path) -> tuple[str, tuple[str, ...]]:
    """``("paper" | "ct-rate", label names)`` of a labels.csv's label columns."""
    if not columns:
        raise ValueError(
            f"{path}: no label column; after case_id (and optional {', '.join(RESERVED[1:])}) "
            "give one 0/1 column per label (the paper's 80 names or CT-RATE's 18)"
        )
    if columns and all(c in ct_rate_labels() for c in columns):
        return "ct-rate", tuple(c for c in ct_rate_labels() if c in columns)
    check_labels(columns, f"{path} (label columns are the paper's 80 or CT-RATE's 18)")
    return "paper", tuple(c for c in output_labels() if c in columns)


def read_reports(
    root: Path, problems: list[dict[str, str]]
) -> tuple[dict[str, str | None], set[str]]:
    """``{case id: report}`` from ``reports.csv`` and ``reports/<case id>.txt``. A report file
    that cannot be read (not UTF-8, binary) has its problem listed, and its case is skipped."""
    from ctbench.regions.labeler import read_report

    reports: dict[str, str | None] = {}
    unreadable: set[str] = set()
    path = root / "reports.csv"
    if path.is_file():
        for row in read_csv(path, ("case_id", "report")).to_dict("records"):
            if row["case_id"] in reports:
                problems.append(problem(row["case_id"], f"{path}: several rows"))
            reports[row["case_id"]] = row["report"].strip() or None
    folder = root / "reports"
    for text_file in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        if not text_file.is_file():  # a pipe or a device would block or never end
            problems.append(problem(text_file.stem, f"{text_file}: not a regular file"))
            unreadable.add(text_file.stem)
            continue
        if text_file.stem in reports:
            problems.append(problem(text_file.stem, f"{text_file}: a second report"))
        try:
            reports[text_file.stem] = read_report(text_file).strip() or None
        except ValueError as error:
            problems.append(problem(text_file.stem, str(error)))
            reports.pop(text_file.stem, None)
            unreadable.add(text_file.stem)
    return reports, unreadable


def read_label_rows(path: Path, problems: list[dict[str, str]]):
    """``(vocabulary, label names, {case id: row})`` of labels.csv; duplicated ids listed."""
    table = read_csv(path, ("case_id",))
    vocabulary, names = label_vocabulary([c for c in table.columns if c not in RESERVED], path)
    rows: dict[str, dict] = {}
    repeated = duplicates(table["case_id"].tolist())
    for case_id in sorted(repeated):
        problems.append(problem(case_id, f"{path}: several rows"))
    for row in table.to_dict("records"):
        if row["case_id"] not in repeated:
            rows[row["case_id"]] = row
    return vocabulary, names, rows


def index(root: Path) -> tuple[tuple[str, ...], list[Entry], list[dict[str, str]], dict]:
    from ctbench.regions.labeling import locations, place

    labels_path = root / "labels.csv"
    problems: list[dict[str, str]] = []
    reports, unreadable = read_reports(root, problems)
    if labels_path.is_file():
        vocabulary, names, rows = read_label_rows(labels_path, problems)
    elif reports or unreadable:
        vocabulary, names = "paper", output_labels()
        rows = {case_id: {"case_id": case_id} for case_id in {*reports, *unreadable}}
    else:
        raise FileNotFoundError(
            f"{root}: needs labels.csv, reports (reports.csv or reports/<case id>.txt) or both "
            "(docs/your-data.md)"
        )
    table = ct_rate_labels() if vocabulary == "ct-rate" else None
    default = {k: v["organs"] for k, v in table.items()} if table else label_organs()
    listed_in = labels_path.name if labels_path.is_file() else "the reports"
    volumes = find_volumes(root)
    entries = []
    for case_id, row in sorted(rows.items()):
        paths = volumes.get(case_id, [])
        split = row.get("split", "").strip() or None
        report = reports.get(case_id)
        if not paths:
            problems.append(
                problem(
                    case_id,
                    f"{labels_path if labels_path.is_file() else root}: a row but no volume "
                    f"({case_id}.nii.gz, or a DICOM folder {case_id}/)",
                )
            )
            continue
        if len(paths) > 1:
            problems.append(problem(case_id, "several volumes: " + ", ".join(map(str, paths))))
            continue
        if split is not None and split not in SPLITS:
            problems.append(problem(case_id, f"split {split!r} is not one of {', '.join(SPLITS)}"))
            continue
        if case_id in unreadable:
            continue  # its report cannot be read: listed already
        if table is not None:
            placed = place(report, table) if report else {}
        else:
            placed = locations(report) if report else {}
        if labels_path.is_file():
            try:
                labels = binary_labels(row, list(names), labels_path, case_id)
            except ValueError as error:
                problems.append(problem(case_id, str(error)))
                continue
        else:
            labels = np.array([name in placed for name in names])
        entries.append(
            Entry(
                case_id,
                paths[0],
                partial(read_volume, paths[0]),
                labels,
                patient=row.get("patient", "").strip() or case_id,
                split=split,
                report=report,
                placement=present_placement(names, labels, placed, default),
            )
        )
    listed = {entry["case_id"] for entry in problems}  # a repeated row is said once, as such
    for case_id, paths in sorted(volumes.items()):
        if case_id not in rows and case_id not in listed:
            problems.append(problem(case_id, f"{paths[0]}: no row in {listed_in}"))
    record = {"labels_from": listed_in, "label_vocabulary": vocabulary}
    return names, entries, problems, record


def folder(preset: str = "default", *, data_root: str | Path | None = None, **options):
    """Factory for ``create_dataset("folder", data_root=..., preset=...)``."""
    root = data_folder("folder", data_root)
    names, *indexed = index(root)
    return DiskSource("folder", root, preset, names, *indexed, presets=PRESETS, **options)


@ctbench.hookimpl
def register_datasets(register):
    register(
        "folder",
        folder,
        description="Your own NIfTI files or DICOM series + labels.csv and/or reports.csv",
        presets=preset_runs(),
        organ_masks=False,
        finding_masks=False,
        reads_folder=True,
    )
