"""The ``ct-rate`` dataset: CT-RATE (Hamamci et al.) in its Hugging Face layout.

Volumes ``dataset/{train,valid}[_fixed]/<split>_<pid>/<split>_<pid>_<scan>/
<split>_<pid>_<scan>_<rec>.nii.gz``, slices last (reoriented to ``[S, Y, X]`` from the affine).
Tables under ``dataset/``: ``multi_abnormality_labels/{train,valid}_predicted_labels.csv``
(``VolumeName`` + 18 labels, from a text classifier, not from readers),
``radiology_text_reports/{train,validation}_reports.csv`` and
``metadata/{train,validation}_metadata.csv`` (``RescaleSlope``, ``RescaleIntercept``,
``XYSpacing``, ``ZSpacing``).

**HU.** The first release stored float values with a blank header (HU = slope x value +
intercept from the metadata CSV); the ``_fixed`` release stores int16 with the scaling in the
header, so nibabel already returns HU, and applying the CSV scaling again (as CT-CLIP's own
loader does) moves air to about -2000 and corrupts every volume. Each file is judged on its
own: a header scaling means HU; otherwise the stored values are used when their air lies near
-1000 HU, else the CSV scaling when it puts air there; neither is one error naming the file.
``_fixed`` files are preferred when both releases are present.

**Splits.** CT-RATE has train and valid only: its valid split is ctbench's test split (as the
dataset's authors evaluate on it) and ctbench's valid split is made from train by patient.
Several reconstructions share one scan and one report, so patients never straddle splits.

**Labels.** The output is CT-RATE's 18 labels: the released ones (``*_predicted_labels.csv``)
where a split has them, else what the report labeler reads in each volume's report (a volume
without either is listed as a problem; ``config.json`` records which). PARTITION places each
present label in the organs the report labeler reads for it in the English report (findings
and impression; ``vocabulary/ct_rate_labels.csv`` maps labeler terms onto the 18 labels), or in
all the organs where the label may lie when the report does not say. ``ctbench data check
ct-rate`` reports how the released labels agree with what the labeler reads
(:meth:`CtRateSource.label_agreement`).
"""

from __future__ import annotations

import ast
import re
from functools import partial
from pathlib import Path

import ctbench
import numpy as np
from ctbench.core.cases import InvalidCaseError
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
from ctbench.data.io import nifti_stem
from ctbench.plugins.datasets.disk_presets import PRESETS, preset_runs
from ctbench.vocabulary import ct_rate_labels

NAME = re.compile(r"^(train|valid)_(\d+)_([a-z]+)_(\d+)\.nii(\.gz)?$")
SPLIT = {"train": "train", "valid": "test"}
TABLE_SPLIT = {"train": "train", "valid": "validation"}
EMPTY = {"", "not given.", "not given"}


def dataset_folder(root: Path) -> Path:
    """``root/dataset`` (the repository's root was given) or ``root`` itself."""
    return root / "dataset" if (root / "dataset").is_dir() else root


def report_text(row) -> str | None:
    """Findings and impression of a report row ("Not given." is empty); None when both are."""
    parts = [str(row.get(column, "")).strip() for column in ("Findings_EN", "Impressions_EN")]
    parts = [part for part in parts if part.lower() not in EMPTY]
    return "\n".join(parts) or None


def read_volume(path: Path, metadata: dict | None):
    """``(HU volume, spacing, meta)`` of one CT-RATE file, whichever release wrote it."""
    from ctbench.data.io import check_hu, read_nifti

    values, spacing, info = read_nifti(path)
    if metadata:
        spacing = metadata["spacing"]
    if info["header_scaling"]:
        check_hu(values, str(path))
        return values, spacing, {"hu_from": "nifti header scaling (_fixed release)"}
    try:
        check_hu(values, str(path))
        return values, spacing, {"hu_from": "stored values"}
    except InvalidCaseError as stored_error:
        if not metadata:
            raise InvalidCaseError(
                f"{stored_error}; and no metadata row gives its RescaleSlope/RescaleIntercept"
            ) from stored_error
        scaled = values.astype(np.float32) * metadata["slope"] + metadata["intercept"]
        check_hu(scaled, f"{path} (scaled by the metadata CSV)")
        return scaled, spacing, {"hu_from": "metadata CSV scaling (first release)"}


def _metadata(folder: Path, split: str) -> dict[str, dict]:
    path = folder / "metadata" / f"{TABLE_SPLIT[split]}_metadata.csv"
    if not path.is_file():
        return {}
    table = read_csv(path, ("VolumeName", "RescaleSlope", "RescaleIntercept"))
    out = {}
    for row in table.to_dict("records"):
        try:
            xy = ast.literal_eval(row.get("XYSpacing", "")) if row.get("XYSpacing") else None
            z = float(row["ZSpacing"]) if row.get("ZSpacing") else None
            out[row["VolumeName"]] = {
                "slope": float(row["RescaleSlope"]),
                "intercept": float(row["RescaleIntercept"]),
                "spacing": (z, float(xy[0]), float(xy[1])) if xy and z else None,
            }
        except (ValueError, SyntaxError, TypeError, IndexError) as error:
            raise ValueError(f"{path}: row {row['VolumeName']!r}: {error}") from error
    return out


def _volumes(folder: Path, split: str) -> tuple[dict[str, Path], dict[str, str]]:
    """``{VolumeName: path}`` of a split, ``_fixed`` files first; which release each is."""
    found, release = {}, {}
    for suffix in ("_fixed", ""):
        for path in sorted((folder / f"{split}{suffix}").glob("*/*/*.nii*")):
            if NAME.match(path.name) and path.name not in found:
                found[path.name] = path
                release[path.name] = "fixed" if suffix else "first"
    return found, release


class ReportReadings:
    """What the labeler reads in each report (CT-RATE's 18 labels and their organs), read once:
    several reconstructions share a report, and the entries' placements, a split labelled from
    its reports and the agreement all ask for it."""

    def __init__(self) -> None:
        self._read: dict[str, dict[str, list[str]]] = {}

    def __call__(self, report: str | None) -> dict[str, list[str]]:
        if not report:
            return {}
        if report not in self._read:
            from ctbench.regions.labeling import place

            self._read[report] = place(report, ct_rate_labels())
        return self._read[report]


def index(root: Path, readings: ReportReadings) -> tuple[list[Entry], list[dict[str, str]], dict]:
    folder = dataset_folder(root)
    known = ct_rate_labels()
    entries, problems, record = [], [], {"not_downloaded": 0, "releases": {}}
    for split in ("train", "valid"):
        labels_path = folder / "multi_abnormality_labels" / f"{split}_predicted_labels.csv"
        volumes, release = _volumes(folder, split)
        reports_path = folder / "radiology_text_reports" / f"{TABLE_SPLIT[split]}_reports.csv"
        reports = {}
        if reports_path.is_file():
            for row in read_csv(reports_path, ("VolumeName",)).to_dict("records"):
                reports[row["VolumeName"]] = report_text(row)
        if labels_path.is_file():
            table = read_csv(labels_path, ("VolumeName",))
            labels_from = "released labels"
        elif volumes and reports:
            table = labeler_table(reports, volumes, readings)
            labels_from = "the report labeler (no labels CSV)"
        elif volumes:
            raise FileNotFoundError(
                f"{labels_path}: missing (the {split} volumes' labels), and no reports in "
                f"{reports_path} to label them from"
            )
        else:
            continue
        record.setdefault("labels_from", {})[split] = labels_from
        names = [c for c in table.columns if c != "VolumeName"]
        unknown = [c for c in names if c not in known]
        if unknown or len(names) != len(known):
            raise ValueError(
                f"{labels_path}: label columns {unknown or names} are not CT-RATE's 18 "
                f"({', '.join(known)})"
            )
        metadata = _metadata(folder, split)
        repeated = duplicates(table["VolumeName"].tolist())
        for name in sorted(repeated):
            problems.append(problem(name, f"{labels_path}: {name} has several rows"))
        listed = set()
        for row in table.to_dict("records"):
            name = row["VolumeName"]
            listed.add(name)
            if name in repeated:
                continue
            match = NAME.match(name)
            if not match:
                error = f"{labels_path}: {name!r} is not a CT-RATE volume name"
                problems.append(problem(name, error))
                continue
            patient = f"{match[1]}_{match[2]}"
            path = volumes.get(name)
            if path is None:
                if any((folder / f"{split}{s}" / patient).is_dir() for s in ("_fixed", "")):
                    where = f"{folder / split}*/{patient}"
                    problems.append(
                        problem(name, f"{labels_path}: {name} has a row but no volume in {where}")
                    )
                else:
                    record["not_downloaded"] += 1
                continue
            labels = binary_labels(row, list(known), labels_path, name)
            report = reports.get(name)
            entries.append(
                Entry(
                    _case_id(name),
                    path,
                    partial(read_volume, path, metadata.get(name)),
                    labels,
                    patient=patient,
                    split=SPLIT[split],
                    report=report,
                    placement=partial(placement, report, labels, readings),  # on first use
                    meta={"release": release[name], "released_labels": labels_path.is_file()},
                )
            )
        for name, path in volumes.items():
            if name not in listed:
                why = (
                    f"no row in {labels_path.name}"
                    if labels_path.is_file()
                    else f"no {labels_path.name} and no report in {reports_path.name}"
                )
                problems.append(problem(_case_id(name), f"{path}: {why}"))
        record["releases"][split] = sorted(set(release.values()))
    if not entries and not problems:
        raise FileNotFoundError(
            f"{root}: no CT-RATE volumes with labels (expected dataset/train[_fixed]/..., "
            "dataset/multi_abnormality_labels/train_predicted_labels.csv)"
        )
    return entries, problems, record


def labeler_table(
    reports: dict[str, str | None], volumes: dict[str, Path], readings: ReportReadings
):
    """A labels table of the volumes that have a report, read by the labeler: CT-RATE's
    released labels where a split has them, the labeler's where it has none."""
    import pandas as pd

    known = ct_rate_labels()
    rows = []
    for name in sorted(volumes):
        if reports.get(name):
            placed = readings(reports[name])
            rows.append({"VolumeName": name, **{label: int(label in placed) for label in known}})
    return pd.DataFrame(rows, columns=["VolumeName", *known])


def placement(report: str | None, labels, readings: ReportReadings) -> dict[str, list[str]]:
    """Each present label where the labeler reads it in the report, else in every organ where
    it may lie."""
    known = ct_rate_labels()
    placed = readings(report)
    return present_placement(known, labels, placed, {k: v["organs"] for k, v in known.items()})


class CtRateSource(DiskSource):
    """CT-RATE's volumes, with the agreement of its released labels and the labeler."""

    def __init__(self, *args, readings: ReportReadings, **options) -> None:
        super().__init__(*args, **options)
        self.readings = readings

    def label_agreement(self) -> dict[str, dict]:
        """Per label (and ``all``, micro): volumes whose report the released labels call
        positive (``released``), the labeler does (``labeler``), both do (``both``), the F1
        of one against the other and Cohen's kappa, over the distinct reports (several
        reconstructions share one) of the volumes that have released labels."""
        from sklearn.metrics import cohen_kappa_score

        known = ct_rate_labels()
        seen, released, found = set(), [], []
        for entry in self.entries.values():
            key = (entry.patient, entry.report)
            if not entry.report or key in seen or not entry.meta.get("released_labels"):
                continue
            seen.add(key)
            placed = self.readings(entry.report)
            released.append(np.asarray(entry.labels, bool))
            found.append([label in placed for label in known])
        if not released:
            return {}
        a, b = np.array(released), np.array(found, bool)
        out = {}
        for k, label in enumerate([*known, "all"]):
            x, y = (a[:, k], b[:, k]) if label != "all" else (a.ravel(), b.ravel())
            both, total = int((x & y).sum()), int(x.sum() + y.sum())
            out[label] = {
                "released": int(x.sum()),
                "labeler": int(y.sum()),
                "both": both,
                "f1": 2 * both / total if total else None,
                "kappa": float(cohen_kappa_score(x, y)) if len(set(x) | set(y)) > 1 else None,
            }
        out["all"]["reports"] = len(released)
        return out


def _case_id(volume_name: str) -> str:
    return nifti_stem(volume_name) or volume_name


def ct_rate(preset: str = "default", *, data_root: str | Path | None = None, **options):
    """Factory for ``create_dataset("ct-rate", data_root=..., preset=...)``."""
    root = data_folder("ct-rate", data_root)
    readings = ReportReadings()
    return CtRateSource(
        "ct-rate",
        root,
        preset,
        tuple(ct_rate_labels()),
        *index(root, readings),
        presets=PRESETS,
        readings=readings,
        **options,
    )


@ctbench.hookimpl
def register_datasets(register):
    register(
        "ct-rate",
        ct_rate,
        description="CT-RATE (Hugging Face): NIfTI volumes, 18 labels, English reports",
        presets=preset_runs(),
        labels=tuple(ct_rate_labels()),
        organ_masks=False,
        finding_masks=False,
        reads_folder=True,
    )
