"""``check_downsampler`` and its rules (``ctbench.core.contracts.MEMBERS["downsamplers"]``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ctbench.core.contracts import declared
from ctbench.testing.rules import registered, rule_table, run_checks

MASK_SHAPE = (24, 32, 32)
GRID = (8, 4, 4)


@dataclass(frozen=True)
class DownsamplerCase:
    """How to build the downsampler (``factory(**options)``) and what it declares."""

    factory: Callable[..., Any]
    declares: dict = field(default_factory=lambda: declared("downsamplers", {}))

    def build(self) -> Any:
        return self.factory(device="cpu") if self.declares["on_device"] else self.factory()

    def grid(self, mask: np.ndarray, dilate: bool = False) -> np.ndarray:
        out = self.build()(mask, GRID, dilate)
        assert isinstance(out, np.ndarray) and out.dtype == bool, "the grid is not a bool array"
        assert out.shape == GRID, f"grid shape {out.shape}, expected {GRID}"
        return out


def _box() -> np.ndarray:
    """An organ filling the low-X, low-Y quarter of every slice of the lower half."""
    mask = np.zeros(MASK_SHAPE, bool)
    mask[12:, :16, :16] = True
    return mask


def check_empty_and_full(case: DownsamplerCase) -> None:
    """No organ allows no cell; an organ everywhere allows every cell."""
    assert not case.grid(np.zeros(MASK_SHAPE, bool)).any(), "an empty mask allowed cells"
    assert case.grid(np.ones(MASK_SHAPE, bool)).all(), "a full mask left cells out"


def check_place(case: DownsamplerCase) -> None:
    """An organ's cells are where it is: the box's quarter of the lower half, nothing else."""
    grid = case.grid(_box())
    assert grid[4:, :2, :2].all(), "cells inside the organ are not allowed"
    assert not grid[:4].any() and not grid[:, 2:, 2:].any(), "cells far from the organ allowed"


def check_dilation(case: DownsamplerCase) -> None:
    """``dilate=True`` allows at least the cells of ``dilate=False``, and more."""
    plain, dilated = case.grid(_box()), case.grid(_box(), dilate=True)
    assert (dilated | ~plain).all(), "dilation removed cells"
    assert dilated.sum() > plain.sum(), "dilation added no cell"


def check_deterministic(case: DownsamplerCase) -> None:
    """The same mask gives the same grid."""
    assert np.array_equal(case.grid(_box()), case.grid(_box())), "grids differ between calls"


DOWNSAMPLER_CHECKS: dict[str, Callable[[DownsamplerCase], None]] = rule_table(
    check_empty_and_full, check_place, check_dilation, check_deterministic
)


def downsampler_case(name_or_factory: str | Callable[..., Any], **declares: Any) -> DownsamplerCase:
    """A registered name (its declarations read from its registration) or a factory (with
    the declarations given here)."""
    return DownsamplerCase(*registered("downsamplers", name_or_factory, declares))


def check_downsampler(name_or_factory: str | Callable[..., Any], **declares: Any) -> None:
    """Run every downsampler rule; the first failure raises ``AssertionError`` naming it."""
    run_checks("downsampler", DOWNSAMPLER_CHECKS, downsampler_case(name_or_factory, **declares))
