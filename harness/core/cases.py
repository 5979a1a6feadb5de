"""What every dataset plugin hands to the harness: cases and the collection that serves them.

A :class:`Case` is one CT volume in Hounsfield units, axes ``[S, Y, X]`` =
[superior->inferior, anterior->posterior, patient right->patient left] (docs/models.md),
with its labels and, where the dataset knows them, its report, organ masks and finding masks.
A dataset plugin returns a :class:`CaseSource`; the harness does the rest (preprocessing,
augmentation, batching).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

SPLITS: tuple[str, ...] = ("train", "valid", "test")


class InvalidCaseError(ValueError):
    """A case's data is unusable; the message names the case (or file) and the problem."""


@dataclass
class Finding:
    """One finding instance: its label, the organs that hold it and its voxel mask."""

    label: str
    organs: tuple[str, ...]
    mask: np.ndarray | None = None  # bool [S, Y, X]
    details: dict = field(default_factory=dict)  # side, lobe, size_mm, severity, ...


@dataclass
class Case:
    """One volume with its truth. Masks are bool arrays of the volume's shape."""

    case_id: str
    volume: np.ndarray  # int16 HU [S, Y, X]
    spacing: tuple[float, float, float]  # mm along S, Y, X
    labels: np.ndarray  # bool [M], in the source's label_names order
    report: str | None = None
    organs: dict[str, np.ndarray] | None = None
    findings: list[Finding] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    # where the dataset itself places each present label, for PARTITION ({label: organs});
    # None: the report labeler places them (the phantom, report-only folders)
    located: dict[str, list[str]] | None = None

    def locations(self) -> dict[str, list[str]]:
        """Location-specific truth: ``{present label: organs holding it, in ORGANS order}``."""
        from ctbench.vocabulary import ORGANS

        out: dict[str, set[str]] = {}
        for finding in self.findings:
            out.setdefault(finding.label, set()).update(finding.organs)
        return {label: sorted(organs, key=ORGANS.index) for label, organs in sorted(out.items())}

    def finding_mask(self, label: str) -> np.ndarray | None:
        """Union of the masks of every instance of ``label`` (None if no instance has one)."""
        masks = [f.mask for f in self.findings if f.label == label and f.mask is not None]
        return np.logical_or.reduce(masks) if masks else None

    def finding_instances(self, label: str) -> np.ndarray | None:
        """``uint8 [S, Y, X]``: 0 outside every instance of ``label``, ``k`` in its ``k``-th
        instance with a mask (where instances overlap, the first keeps the voxel); None if no
        instance has a mask. Its ``> 0`` is :meth:`finding_mask`."""
        masks = [f.mask for f in self.findings if f.label == label and f.mask is not None]
        if not masks:
            return None
        if len(masks) > 255:
            raise ValueError(f"{self.case_id}: {len(masks)} instances of {label}; at most 255")
        ids = np.zeros(masks[0].shape, np.uint8)
        for k, mask in enumerate(masks, start=1):
            ids[mask & (ids == 0)] = k
        return ids


@runtime_checkable
class CaseSource(Protocol):
    """A dataset as the harness sees it: named splits of case ids, and a loader per case."""

    name: str
    label_names: tuple[str, ...]
    volume_shape: tuple[int, int, int]  # the [S, Y, X] every volume is padded/cropped to

    def case_ids(self, split: str) -> list[str]: ...

    def load(self, case_id: str) -> Case: ...


class SourceConfig:
    """A source's configuration as :func:`source_config` reads it (``to_json``): for sources
    whose configuration is a plain dict (real datasets, wrappers)."""

    def __init__(self, values: dict) -> None:
        self.values = dict(values)

    def to_json(self) -> dict:
        return dict(self.values)


def source_config(source) -> dict:
    """The dataset's own configuration when it has one (the phantom's generator settings):
    part of config.json and of the keys of the caches built from the source."""
    config = getattr(source, "config", None)
    return config.to_json() if hasattr(config, "to_json") else {}


def case_file_name(case_id: str) -> str:
    """``case_id`` as the name caches give the case's files; an id that cannot be a file name
    (a path separator, ``..``, a control character) is an :class:`InvalidCaseError`, so the case
    is skipped and listed instead of writing outside the cache."""
    from ctbench.runtime.storage import UnsafeNameError, safe_name

    try:
        return safe_name(case_id, "case id")
    except UnsafeNameError as error:
        raise InvalidCaseError(str(error)) from error


def validate_volume(volume: np.ndarray, case_id: str, hu_bounds=(-2048.0, 4096.0)) -> None:
    """One clear error if a volume is not a plausible CT in HU (shape, dtype, NaN/inf, range)."""
    if not isinstance(volume, np.ndarray):
        raise InvalidCaseError(f"{case_id}: volume is {type(volume).__name__}, not a numpy array")
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise InvalidCaseError(f"{case_id}: volume must be 3-D [S, Y, X], got shape {volume.shape}")
    if not (np.issubdtype(volume.dtype, np.integer) or np.issubdtype(volume.dtype, np.floating)):
        raise InvalidCaseError(f"{case_id}: volume dtype {volume.dtype} is not numeric")
    if np.issubdtype(volume.dtype, np.floating) and not np.isfinite(volume).all():
        bad = int(np.size(volume) - np.isfinite(volume).sum())
        raise InvalidCaseError(f"{case_id}: volume has {bad} NaN or infinite voxels")
    low, high = float(volume.min()), float(volume.max())
    if low < hu_bounds[0] or high > hu_bounds[1]:
        raise InvalidCaseError(
            f"{case_id}: values span [{low:g}, {high:g}], outside plausible Hounsfield units "
            f"[{hu_bounds[0]:g}, {hu_bounds[1]:g}] (is it rescaled to HU?)"
        )
    if low > -500:
        raise InvalidCaseError(
            f"{case_id}: no voxel below -500 HU (no air or lung); not a chest CT in HU?"
        )


def _with_contract() -> None:
    from ctbench.core.contracts import with_contract

    with_contract(CaseSource, "datasets")  # its optional members and what each changes


_with_contract()
