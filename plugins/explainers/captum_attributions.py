"""Integrated Gradients and Input x Gradient through Captum, as a third-party plugin would.

``pip install 'ctbench[captum]'`` installs Captum (PyTorch's own attribution library); without
it, building either explainer is one error saying so. Both attribute each class score (the
logit) to the input volume ``x [B, H, 3, Y, X]``, one class at a time as Captum takes them:

- ``integrated-gradients``: the path integral of the gradient from a baseline to ``x``
  (``steps`` points, Gauss-Legendre as Captum's default); the baseline is an all-air volume (the
  model input of -1000 HU everywhere) unless ``baseline="zero"``. Its attributions add up to
  ``s(x) - s(baseline)`` (completeness; a test checks it).
- ``input-x-gradient``: ``x * ds/dx``.

Cost, per volume: Integrated Gradients runs ``steps`` forward and backward passes per class
(``steps`` x M in all), Input x Gradient one backward per class; both through the whole
ResNet, unlike the CAM explainers' single forward (``benchmarks/test_explainers.py`` measures).

Maps: the attribution summed over the three slices of each slice group gives a voxel map
``[B, M, H, Y, X]`` (``grid="voxel"``); by default (``grid="cam"``) it is summed over the
pixels of each CAM cell, ``[B, M, H, D1, D2]``, so that runs score it against the same allowed
regions and lesion cells as every CAM explainer (sums, so completeness still holds).
"""

from __future__ import annotations

from collections.abc import Sequence

import ctbench
import torch
import torch.nn.functional as F
from ctbench.explain.explanations import as_volume_layout, capture_cam_layer
from torch import nn

AIR = -1000.0


def _captum():
    try:
        import captum.attr
    except ImportError as error:
        raise ImportError(
            "this explainer wraps Captum, which is not installed: pip install 'ctbench[captum]'"
        ) from error
    return captum.attr


class CaptumExplainer:
    """An input-attribution method of Captum as a ctbench explainer (module docstring)."""

    name = "captum"

    def __init__(self, *, grid: str = "cam", baseline: str = "air", steps: int = 20) -> None:
        if grid not in ("cam", "voxel"):
            raise ValueError(f"grid must be 'cam' or 'voxel', got {grid!r}")
        if baseline not in ("air", "zero"):
            raise ValueError(f"baseline must be 'air' or 'zero', got {baseline!r}")
        self.method = _captum()
        self.grid, self.baseline, self.steps = grid, baseline, steps

    def __call__(self, model: nn.Module, x: torch.Tensor, classes: Sequence[int] | None = None):
        return self.explain(model, x, classes)[0]

    def explain(
        self, model: nn.Module, x: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps [B, M', H, D1, D2] (or [B, M', H, Y, X]), logits [B, M])``."""
        with torch.no_grad(), capture_cam_layer(model, detach=True) as got:
            logits = model(x)
        grid = as_volume_layout(got[0], model, x.shape[0]).shape[3:]
        index = range(logits.shape[1]) if classes is None else [int(c) for c in classes]
        with torch.enable_grad():
            per_class = [self.attribute(model, x, m).sum(dim=2) for m in index]  # [B, H, Y, X]
        maps = torch.stack(per_class, dim=1).detach()
        if self.grid == "cam":
            maps = _sum_into_cells(maps, tuple(grid))
        return maps, logits.detach()

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
        raise NotImplementedError

    def baseline_input(self, x: torch.Tensor, preprocessing=None) -> torch.Tensor:
        """The model input of an all-air volume (or zeros)."""
        if self.baseline == "zero":
            return torch.zeros_like(x)
        from ctbench.data.preprocess import Preprocessing

        pre = preprocessing or Preprocessing()
        low, high = pre.hu_range
        return torch.full_like(x, (AIR - low) / (high - low) - pre.centre)


def _sum_into_cells(maps: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``[B, M, H, Y, X]`` -> ``[B, M, H, D1, D2]``: each cell's pixels summed."""
    b, m, h, y, x = maps.shape
    flat = maps.reshape(b * m * h, 1, y, x)
    pooled = F.adaptive_avg_pool2d(flat, grid) * (y * x / (grid[0] * grid[1]))
    return pooled.reshape(b, m, h, *grid)


class IntegratedGradients(CaptumExplainer):
    """Captum's Integrated Gradients from an all-air baseline."""

    name = "integrated-gradients"

    def attribute(self, model, x, target):
        method = self.method.IntegratedGradients(model)
        return method.attribute(
            x,
            baselines=self.baseline_input(x),
            target=target,
            n_steps=self.steps,
            internal_batch_size=x.shape[0],  # one path point at a time: memory of one pass
        )


class InputXGradient(CaptumExplainer):
    """Captum's Input x Gradient."""

    name = "input-x-gradient"

    def attribute(self, model, x, target):
        leaf = x.detach().clone().requires_grad_(True)  # Captum warns when it must set this
        return self.method.InputXGradient(model).attribute(leaf, target=target)


@ctbench.hookimpl
def register_explainers(register):
    register(
        "integrated-gradients",
        IntegratedGradients,
        faithful=False,
        description="Integrated Gradients via Captum (extra 'captum'): steps x M backward passes",
    )
    register(
        "input-x-gradient",
        InputXGradient,
        faithful=False,
        description="Input x Gradient via Captum (extra 'captum'): one backward per class",
    )
