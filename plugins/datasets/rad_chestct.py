"""The ``rad-chestct`` dataset: RAD-ChestCT, the paper's own data, in its public Zenodo layout.

One ``<NoteAcc_DEID>.npz`` per scan (``trn12345.npz``, ``val...``, ``tst...``: the prefix is the
split), key ``ct``, int16 HU clipped to [-1000, 1000], 0.8 mm isotropic, axes ``[S, Y, X]``
already. Labels: ``img{train,valid,test}_Abnormality_and_Location_Labels.csv``, a
``NoteAcc_DEID`` column and 0/1 columns ``abnormality*location`` (84 x 52). The CSVs list all
35,747 scans; only the rows whose volume is present are used.

The 80 output labels are rebuilt as the paper's code builds them (reference facts section 3;
``vocabulary/rad_chestct_locations.csv``): ``<organ>_<abnormality>`` is 1 when any location
of the organ is 1 for the abnormality, lung labels are left OR right, and a lung-only
pathology whose side is unknown (only ``*lung`` or ``*other_location``) counts in both lungs.
No reports are public, so PARTITION places each label in the organs these columns name.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import ctbench
import numpy as np
from ctbench.core.cases import InvalidCaseError
from ctbench.data.disk_source import (
    DiskSource,
    Entry,
    data_folder,
    duplicates,
    problem,
    read_csv,
    read_csv_header,
)
from ctbench.plugins.datasets.disk_presets import PRESETS, preset_runs
from ctbench.regions.labeler import ORGAN_PREFIX, vocabulary
from ctbench.vocabulary import ORGANS, organ_locations, output_labels

SPLIT_OF_PREFIX = {"trn": "train", "val": "valid", "tst": "test"}
LABEL_FILE = re.compile(r"img(train|valid|test)_Abnormality_and_Location_Labels\.csv$")
SPACING_MM = 0.8
"""RAD-ChestCT stores no spacing: every public volume was resampled to 0.8 mm isotropic."""
KEY = "NoteAcc_DEID"


def read_npz_volume(
    path: Path, spacing_mm: float = SPACING_MM
) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """The ``ct`` array of one RAD-ChestCT file at ``spacing_mm``; a truncated or foreign
    file is one error naming it."""
    from ctbench.data.io import read_npz

    volume, _ = read_npz(path)
    if volume.ndim != 3:
        raise InvalidCaseError(f"{path}: 'ct' must be 3-D [S, Y, X], got shape {volume.shape}")
    return volume, (spacing_mm,) * 3, {}


def organ_labels(positive: set[tuple[str, str]]) -> dict[str, list[str]]:
    """``{output label: organs}`` from the ``(abnormality, location)`` pairs that are 1."""
    lung_only = set(vocabulary()["lung_only"])
    known = set(output_labels())
    lungs = ("right_lung", "left_lung")
    found: dict[str, set[str]] = {}
    for organ, locations in organ_locations().items():
        for abnormality, location in positive:
            if location in locations:
                label = ORGAN_PREFIX[organ] + abnormality
                if label in known:
                    found.setdefault(label, set()).add(organ)
    for abnormality in {a for a, _ in positive} & lung_only:
        label = "lung_" + abnormality
        if label in known and not found.get(label):  # side unknown: both lungs
            found[label] = set(lungs)
    return {
        label: sorted(found[label], key=ORGANS.index) for label in output_labels() if label in found
    }


def _column_pairs(columns, path: Path) -> list[tuple[str, str]]:
    pairs = []
    for column in columns:
        if column == KEY:
            continue
        parts = column.split("*")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{path}: column {column!r} is not named abnormality*location")
        pairs.append((parts[0], parts[1]))
    return pairs


def read_label_table(path: Path) -> tuple[list[str], list[tuple[str, str]], np.ndarray]:
    """``(NoteAcc_DEID keys, (abnormality, location) per column, bool [rows, columns])``.

    The label columns are read as int8 (the full CSV is 35,747 x 4,368), so anything but 0
    and 1 is one error naming the file."""
    header = read_csv_header(path, (KEY,))
    pairs = _column_pairs(header, path)
    columns = [c for c in header if c != KEY]
    try:
        table = read_csv(path, (KEY,), dtype={KEY: str, **dict.fromkeys(columns, "int8")})
    except ValueError as error:
        raise ValueError(f"label columns must hold only 0 and 1 ({error})") from error
    values = table[columns].to_numpy()
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{path}: label columns must hold only 0 and 1")
    return table[KEY].str.strip().tolist(), pairs, values.astype(bool)


def index(
    root: Path, spacing_mm: float = SPACING_MM
) -> tuple[list[Entry], list[dict[str, str]], dict]:
    """Entries for every volume present with a label row; problems; what was read."""
    label_files = sorted(p for p in root.rglob("*.csv") if LABEL_FILE.search(p.name))
    if not label_files:
        raise FileNotFoundError(
            f"{root}: no img{{train,valid,test}}_Abnormality_and_Location_Labels.csv "
            "(RAD-ChestCT's label files)"
        )
    volumes: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.npz")):
        volumes.setdefault(path.stem, []).append(path)
    labels = output_labels()
    entries, problems, rows_without_volume, seen = [], [], 0, set()
    for label_file in label_files:
        keys, pairs, ones = read_label_table(label_file)
        repeated = duplicates(keys)
        for name in sorted(repeated):
            problems.append(problem(name, f"{label_file}: {name} has several rows"))
        seen |= repeated  # listed once, as repeated; its volume is not "without a row"
        for row, key in enumerate(keys):
            if key in seen:
                continue
            seen.add(key)
            paths = volumes.get(key)
            if not paths:
                rows_without_volume += 1  # the public subset holds 3,630 of the 35,747
                continue
            if len(paths) > 1:
                places = ", ".join(map(str, paths))
                problems.append(problem(key, f"{key}.npz is in {len(paths)} places: {places}"))
                continue
            located = organ_labels({pairs[k] for k in np.flatnonzero(ones[row])})
            entries.append(
                Entry(
                    key,
                    paths[0],
                    partial(read_npz_volume, paths[0], spacing_mm),
                    np.array([label in located for label in labels]),
                    patient=key,  # the public files name no patient; the given splits do
                    split=SPLIT_OF_PREFIX.get(key[:3]),
                    placement=located,
                )
            )
    for key, paths in sorted(volumes.items()):
        if key not in seen:
            problems.append(problem(key, f"{paths[0]}: no row in any label CSV"))
    record = {
        "label_files": [str(p) for p in label_files],
        "label_rows_without_volume": rows_without_volume,
        "stored_spacing_mm": spacing_mm,
    }
    return entries, problems, record


def rad_chestct(
    preset: str = "default",
    *,
    data_root: str | Path | None = None,
    spacing_mm: float = SPACING_MM,
    **options,
) -> DiskSource:
    """Factory for ``create_dataset("rad-chestct", data_root=..., preset=...)``;
    ``spacing_mm``: the spacing of the stored volumes (0.8 for the public data)."""
    root = data_folder("rad-chestct", data_root)
    return DiskSource(
        "rad-chestct",
        root,
        preset,
        output_labels(),
        *index(root, spacing_mm),
        presets=PRESETS,
        **options,
    )


@ctbench.hookimpl
def register_datasets(register):
    register(
        "rad-chestct",
        rad_chestct,
        description="RAD-ChestCT (Zenodo): npz volumes + abnormality*location label CSVs",
        presets=preset_runs(),
        labels=output_labels(),
        organ_masks=False,
        finding_masks=False,
        reads_folder=True,
    )
