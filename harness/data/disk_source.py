"""A :class:`ctbench.core.cases.CaseSource` over CT volumes on disk: what real-data plugins share.

A dataset plugin (``rad-chestct``, ``ct-rate``, ``folder``) indexes its files into
:class:`Entry` rows (case id, patient, split, labels, report, where each label lies, and how to
read the volume) and hands them to :class:`DiskSource`, which

- fixes the geometry from a preset of the plugin's table (``presets``, a :class:`Geometry` per
  name: the target spacing and the model's volume shape; the built-in disk datasets share
  ``ctbench.plugins.datasets.disk_presets``, whose ``paper`` is 0.8 mm and 405 x 420 x 420);
- makes a missing validation or test split deterministically by patient (:func:`split_patients`)
  and records how each split was made;
- reads a case on demand: the plugin's reader, the HU checks (air near -1000 HU, lungs present),
  resampling to the preset's spacing, int16 HU. ``Case.volume`` is the whole volume: padding and
  cropping stay in the shared preprocessing;
- keeps the problems found while indexing (a label row with no volume, a volume with no row,
  duplicated names) as :attr:`DiskSource.problems`: ``ctbench data check`` lists them and a run
  records them with the cases it skips.

Nothing is written into the data folder: caches go under ``$CTBENCH_CACHE_DIR`` (see
:attr:`DiskSource.folder`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ctbench.core.cases import SPLITS, Case, Finding, InvalidCaseError, SourceConfig


@dataclass(frozen=True)
class Geometry:
    """A real-data preset: the spacing volumes are resampled to, the model's volume shape, and
    how a run on it trains (``run``: a recipe of ``run_config.TRAINING_RECIPES`` and the keys it
    changes)."""

    spacing_mm: float
    volume_shape: tuple[int, int, int]
    run: dict = field(default_factory=dict)


VALID_FRACTION = 0.15
TEST_FRACTION = 0.15
"""Shares of patients held out when a dataset lacks a validation or a test split."""

VERSION = 1


def geometry(preset: str, presets: Mapping[str, Geometry]) -> Geometry:
    """``preset``'s geometry in the dataset's table; an unknown name lists the known ones."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; real-data presets: {', '.join(presets)}")
    return presets[preset]


def data_folder(name: str, data_root: str | Path | None) -> Path:
    """The folder dataset ``name`` reads; one clear error when none is given or it is absent."""
    if data_root is None:
        raise ValueError(f"{name} reads a folder: give data_root (CLI --data-root)")
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    return root


def patient_fraction(patient: str, salt: str) -> float:
    """A patient's fixed place in [0, 1): a hash, so it never moves when patients are added."""
    digest = hashlib.sha256(f"{salt}:{patient}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_patients(patients: list[str], fraction: float, salt: str) -> set[str]:
    """The patients (about ``fraction`` of them) held out of a split, chosen by hash."""
    return {p for p in patients if patient_fraction(p, salt) < fraction}


Placement = dict[str, list[str]]
"""``{present label: organs}``: where PARTITION allows each present label."""


@dataclass
class Entry:
    """One volume as a plugin indexes it; ``read`` returns ``(volume in HU, spacing, meta)``.

    ``placement`` is the labels' :data:`Placement`, or a function that gives it on first use
    (``located``): CT-RATE places its labels through the report labeler, which then runs only
    for the cases a run loads, not for all 50,188 volumes each time the dataset is opened."""

    case_id: str
    path: Path
    read: Callable[[], tuple[np.ndarray, tuple[float, float, float], dict]]
    labels: np.ndarray
    patient: str
    split: str | None = None
    report: str | None = None
    placement: Placement | Callable[[], Placement] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def located(self) -> Placement | None:
        if callable(self.placement):
            self.placement = self.placement()
        return self.placement


def present_placement(names, labels, placed: dict, default: dict) -> Placement:
    """Each present label where the report ``placed`` it, else in every organ it may lie in
    (``default``)."""
    return {
        name: list(placed.get(name) or default[name])
        for name, present in zip(names, labels, strict=True)
        if present
    }


def problem(case_id: str, error: str) -> dict[str, str]:
    """One line of :attr:`DiskSource.problems`."""
    return {"case_id": case_id, "error": error}


class DiskSource:
    """Cases read from disk, resampled to a preset's spacing (module docstring)."""

    def __init__(
        self,
        name: str,
        data_root: str | Path,
        preset: str,
        label_names: tuple[str, ...],
        entries: list[Entry],
        problems: list[dict[str, str]] | None = None,
        record: dict | None = None,
        *,
        resampling: str = "torch",
        check_lungs: bool = True,
        cache_dir: str | Path | None = None,
        presets: Mapping[str, Geometry],
    ) -> None:
        from ctbench.runtime.storage import config_key, default_cache_dir

        self.name = name
        self.data_root = Path(data_root).resolve()
        self.preset = preset
        self.geometry = geometry(preset, presets)
        self.label_names = tuple(label_names)
        self.resampling = resampling
        self.lung_check = check_lungs
        self.problems = list(problems or [])
        self.entries = {entry.case_id: entry for entry in entries}
        self._ids, splits = self._make_splits(entries)
        self.record = {
            **(record or {}),
            "splits": splits,
            "cases": {split: len(ids) for split, ids in self._ids.items()},
            "problems": len(self.problems),
        }
        self.config = SourceConfig(
            {
                "dataset": name,
                "data_root": str(self.data_root),
                "preset": preset,
                "spacing_mm": self.geometry.spacing_mm,
                "volume_shape": list(self.geometry.volume_shape),
                "resampling": resampling,
                "version": VERSION,  # the splits are in ``record``: new patients keep caches
            }
        )
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = root / f"{name}-{preset}-{config_key(self.config.to_json())}"

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        return self.geometry.volume_shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.geometry.spacing_mm,) * 3

    def _make_splits(self, entries: list[Entry]) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Each split's case ids, and how each split was made (recorded in config.json)."""
        ids: dict[str, list[str]] = {split: [] for split in SPLITS}
        for entry in entries:
            if entry.split is not None:
                ids[entry.split].append(entry.case_id)
        how = {split: "given by the dataset" for split in SPLITS if ids[split]}
        unassigned = [e for e in entries if e.split is None]
        train_patients = sorted({e.patient for e in entries if e.split in (None, "train")})
        pool = [e for e in entries if e.split == "train"] + unassigned
        for split, fraction in (("test", TEST_FRACTION), ("valid", VALID_FRACTION)):
            if ids[split]:
                continue
            held = split_patients(train_patients, fraction, f"ctbench-{split}")
            ids[split] = [e.case_id for e in pool if e.patient in held]
            train_patients = [p for p in train_patients if p not in held]
            pool = [e for e in pool if e.patient not in held]
            how[split] = (
                f"made: {len(held)} patients ({fraction:.0%} by hash of the patient id) "
                "taken from train"
            )
        ids["train"] = [e.case_id for e in pool]
        how.setdefault("train", "the cases no other split holds")
        return {split: sorted(v) for split, v in ids.items()}, how

    def case_ids(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        return list(self._ids[split])

    def load(self, case_id: str) -> Case:
        """The case in HU on ctbench's axes at the preset's spacing (whole, not cropped)."""
        from ctbench.data.io import check_hu, check_lungs, check_spacing, resample, to_hu_int16

        entry = self.entries.get(case_id)
        if entry is None:
            raise InvalidCaseError(f"{case_id}: not a case of {self.name} at {self.data_root}")
        volume, spacing, meta = entry.read()
        check_spacing(spacing, volume.shape, self.spacing, str(entry.path))
        if np.issubdtype(volume.dtype, np.floating) and not np.isfinite(volume).all():
            raise InvalidCaseError(f"{entry.path}: the volume holds NaN or infinite values")
        check_hu(volume, str(entry.path))
        if self.lung_check:
            check_lungs(volume, spacing, str(entry.path))
        target = self.spacing
        resampled = resample(volume, spacing, target, method=self.resampling)
        located = entry.located
        return Case(
            case_id,
            to_hu_int16(resampled),
            target,
            entry.labels.astype(bool),
            report=entry.report,
            # findings without masks name the present labels for figures (ctbench data show)
            findings=[Finding(label, tuple(organs)) for label, organs in (located or {}).items()],
            meta={
                **entry.meta,
                **meta,
                "path": str(entry.path),
                "patient": entry.patient,
                "original_spacing": [round(float(s), 4) for s in spacing],
                "original_shape": list(volume.shape),
            },
            located=located,
        )


def read_csv(path: Path, required: tuple[str, ...], rows: int | None = None, dtype=str):
    """A CSV as strings (``dtype`` to read it otherwise; empty cells stay empty strings), with
    one clear error naming the file for a missing column or an unreadable, too large or
    non-UTF-8 file (:func:`ctbench.runtime.storage.read_table`). ``rows=0`` reads only the
    header."""
    from ctbench.runtime.storage import read_table

    table = read_table(path, dtype=dtype, rows=rows, keep_default_na=False)
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, table.columns[:8]))}{' ...' if len(table.columns) > 8 else ''}"
        )
    return table


def read_csv_header(path: Path, required: tuple[str, ...]) -> list[str]:
    """The column names of a CSV, with :func:`read_csv`'s errors (a wide label file is read in
    full only once its columns are known)."""
    return list(read_csv(path, required, rows=0).columns)


def binary_labels(row, columns: list[str], path: Path, key: str) -> np.ndarray:
    """0/1 label columns of one CSV row; anything else is one error naming file and row."""
    values = []
    for column in columns:
        text = str(row[column]).strip()
        if text in ("0", "1", "0.0", "1.0"):
            values.append(text.startswith("1"))
        else:
            raise ValueError(f"{path}: row {key!r}, column {column!r}: {text!r} is not 0 or 1")
    return np.array(values, bool)


def duplicates(names: list[str]) -> set[str]:
    """The names that occur more than once."""
    return {name for name, count in Counter(names).items() if count > 1}
