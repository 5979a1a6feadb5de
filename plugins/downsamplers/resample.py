"""Mask downsamplers for PARTITION (paper appendix 7.2.3, Table 5).

``downsample(mask [S, Y, X], representation_shape (H', D1, D2), dilate) -> bool [H', D1, D2]``:
``torch.nn.functional.interpolate`` with mode ``nearest``, ``trilinear`` or ``area``, then any
non-zero cell is allowed (so trilinear and area are more inclusive than nearest). Optional
dilation: a 3x3x3 all-ones convolution of the zero-padded small mask, any non-zero cell allowed.
The paper's final choice is ``nearest`` without dilation. ``device`` (``create_downsampler(name,
device="cuda")``) interpolates there; PARTITION passes the run's device.
"""

from __future__ import annotations

import ctbench
import numpy as np
import torch
import torch.nn.functional as F


class Downsampler:
    """One interpolation mode; ``dilate`` may be fixed at construction or given per call."""

    def __init__(self, mode: str, *, dilate: bool = False, device: str = "cpu") -> None:
        if mode not in ("nearest", "trilinear", "area"):
            raise ValueError(f"unknown downsampling mode {mode!r}")
        self.mode = mode
        self.dilate = dilate
        self.device = torch.device(device)

    def __call__(
        self,
        mask: np.ndarray,
        representation_shape: tuple[int, int, int],
        dilate: bool | None = None,
    ) -> np.ndarray:
        grid = torch.from_numpy(np.ascontiguousarray(mask)).to(self.device)
        grid = grid.to(torch.float32)[None, None]
        kwargs = {"align_corners": False} if self.mode == "trilinear" else {}
        small = F.interpolate(grid, size=tuple(representation_shape), mode=self.mode, **kwargs) > 0
        if self.dilate if dilate is None else dilate:
            ones = torch.ones(1, 1, 3, 3, 3, device=self.device)
            small = F.conv3d(small.float(), ones, padding=1) > 0
        return small[0, 0].cpu().numpy()


@ctbench.hookimpl
def register_downsamplers(register):
    for mode, text in (
        ("nearest", "nearest-neighbour sampling (the paper's choice)"),
        ("trilinear", "trilinear interpolation, any non-zero cell allowed"),
        ("area", "area averaging, any non-zero cell allowed"),
    ):
        register(
            mode,
            lambda mode=mode, **options: Downsampler(mode, **options),
            on_device=True,
            default=mode == "nearest",  # the paper's, for a preset that names none
            paper_name=mode,  # Table 5's rows
            description=f"Organ mask -> representation grid by {text}; optional dilation",
        )
