"""``check_segmenter`` and its rules (``ctbench.core.contracts.MEMBERS["segmenters"]``).

A segmenter is checked on :func:`synthetic_chest`, a small HU volume whose truth is known: air
around a soft-tissue body, a right lung at low X and a left lung at high X (ctbench's axes), and
on a volume without lungs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ctbench.core.cases import InvalidCaseError
from ctbench.core.contracts import declared
from ctbench.testing.rules import registered, rule_table, run_checks

SPACING = (5.0, 5.0, 5.0)


def synthetic_chest(shape: tuple[int, int, int] = (24, 64, 64)) -> dict[str, np.ndarray]:
    """``{"volume": int16 HU, "right_lung", "left_lung": bool}`` on ``[S, Y, X]``: an elliptic
    body (40 HU) in air (-1000 HU) holding two elliptic lungs (-850 HU), the patient's right
    lung at low X."""
    s, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cs, cy, cx = (n / 2 for n in shape)
    body = ((y - cy) / (0.42 * shape[1])) ** 2 + ((x - cx) / (0.46 * shape[2])) ** 2 < 1
    body = np.broadcast_to(body, shape)

    def lung(side: float) -> np.ndarray:
        return ((s - cs) / (0.42 * shape[0])) ** 2 + ((y - cy) / (0.3 * shape[1])) ** 2 + (
            (x - (cx + side * 0.2 * shape[2])) / (0.14 * shape[2])
        ) ** 2 < 1

    right, left = lung(-1.0), lung(1.0)
    volume = np.full(shape, -1000, np.int16)
    volume[body] = 40
    volume[right | left] = -850
    return {"volume": volume, "right_lung": right, "left_lung": left}


@dataclass(frozen=True)
class SegmenterCase:
    """How to build the segmenter (``factory(**options)``) and what it declares."""

    factory: Callable[..., Any]
    declares: dict = field(default_factory=lambda: declared("segmenters", {}))

    def build(self) -> Any:
        return self.factory(device="cpu") if self.declares["on_device"] else self.factory()


def _masks(case: SegmenterCase, volume: np.ndarray):
    from ctbench.regions.segmentation import SEGMENTED_ORGANS, OrganMasks

    masks = case.build()(volume, SPACING)
    assert isinstance(masks, OrganMasks), f"returned {type(masks).__name__}, not OrganMasks"
    for organ in SEGMENTED_ORGANS:
        mask = getattr(masks, organ)
        assert isinstance(mask, np.ndarray) and mask.dtype == bool, f"{organ} is not a bool array"
        assert mask.shape == volume.shape, f"{organ} shape {mask.shape}, expected {volume.shape}"
    assert isinstance(masks.method, str) and masks.method, "method must name how masks were made"
    return masks


def check_masks(case: SegmenterCase) -> None:
    """Three bool masks of the volume's shape, a QC verdict and a method."""
    from ctbench.regions.segmentation import QC

    masks = _masks(case, synthetic_chest()["volume"])
    assert isinstance(masks.qc, QC) and isinstance(masks.qc.passed, bool), "qc must be a QC"


def check_sides(case: SegmenterCase) -> None:
    """The right lung lies at low X (the patient's right), the left at high X, apart."""
    chest = synthetic_chest()
    masks = _masks(case, chest["volume"])
    assert masks.right_lung.any() and masks.left_lung.any(), "a lung mask is empty"
    assert not (masks.right_lung & masks.left_lung).any(), "the lungs overlap"
    right_x = np.flatnonzero(masks.right_lung.any(axis=(0, 1))).mean()
    left_x = np.flatnonzero(masks.left_lung.any(axis=(0, 1))).mean()
    assert right_x < left_x, "the right lung is not at low X (ctbench's axes: patient right first)"


def check_no_lung(case: SegmenterCase) -> None:
    """A volume without lungs raises an InvalidCaseError (NoLungError), unless the segmenter
    declares ``heuristic=True`` (its masks never look at the image)."""
    air = np.full((12, 32, 32), -1000, np.int16)
    if case.declares["heuristic"]:
        _masks(case, air)
        return
    try:
        masks = case.build()(air, SPACING)
    except InvalidCaseError:
        return
    raise AssertionError(f"a volume without lungs gave {masks.method!r} masks, not NoLungError")


def check_deterministic(case: SegmenterCase) -> None:
    """The same volume gives the same masks."""
    volume = synthetic_chest()["volume"]
    first, second = _masks(case, volume), _masks(case, volume.copy())
    for organ, mask in first.as_dict().items():
        assert np.array_equal(mask, getattr(second, organ)), f"{organ} differs between calls"


SEGMENTER_CHECKS: dict[str, Callable[[SegmenterCase], None]] = rule_table(
    check_masks, check_sides, check_no_lung, check_deterministic
)


def segmenter_case(name_or_factory: str | Callable[..., Any], **declares: Any) -> SegmenterCase:
    """A registered name (its declarations read from its registration) or a factory (with
    the declarations given here)."""
    return SegmenterCase(*registered("segmenters", name_or_factory, declares))


def check_segmenter(name_or_factory: str | Callable[..., Any], **declares: Any) -> None:
    """Run every segmenter rule; the first failure raises ``AssertionError`` naming it."""
    run_checks("segmenter", SEGMENTER_CHECKS, segmenter_case(name_or_factory, **declares))
