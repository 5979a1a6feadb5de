"""Organ masks for PARTITION (docs/partition.md; paper appendix 7.2.2).

A segmenter maps ``(volume_hu [S, Y, X], spacing_mm)`` to :class:`OrganMasks`: boolean
``right_lung``, ``left_lung`` and ``mediastinum`` (heart and great vessels included) of the
volume's shape, with a quality-control verdict and the method that produced them, so that a
heuristic fallback is always recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ctbench.core.cases import InvalidCaseError

SEGMENTED_ORGANS = ("right_lung", "left_lung", "mediastinum")


class NoLungError(InvalidCaseError):
    """The volume holds no lung at all: heuristic halves of it would be a wrong answer, not a
    fallback, so a segmenter raises this instead (the case is skipped and listed in a run)."""


@dataclass
class QC:
    passed: bool
    reason: str = ""


@dataclass
class OrganMasks:
    right_lung: np.ndarray
    left_lung: np.ndarray
    mediastinum: np.ndarray
    qc: QC = field(default_factory=lambda: QC(True))
    method: str = ""

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SEGMENTED_ORGANS}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def heuristic_masks(shape: tuple[int, int, int]) -> OrganMasks:
    """Appendix 7.2.2's fallback: right half, centre half and left half of the volume.

    Axis X runs from the patient's right to left, so the right lung is the low-X half.
    """
    x = np.arange(shape[2])
    right = np.broadcast_to(x < shape[2] / 2, shape).copy()
    left = np.broadcast_to(x >= shape[2] / 2, shape).copy()
    centre = np.broadcast_to((x >= shape[2] / 4) & (x < 3 * shape[2] / 4), shape).copy()
    return OrganMasks(right, left, centre, QC(True), "heuristic")
