"""Explanation maps: capturing the CAM layer, resampling, and display post-processing.

Explainers (``plugins/explainers``) return raw, signed maps ``[B, M, H, D1, D2]`` on the
slice-group grid of the input (docs/models.md). Everything that is for people rather than
for metrics lives here and is kept separate from the raw maps: ReLU + min-max per
(scan, label) over the whole volume [paper 3.3; the paper's reference code], and trilinear
upsampling to the CT grid for overlays.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class NotExplainableError(ValueError):
    """The model declares ``explainable = False`` or lacks the explainable contract."""


def check_explainable(model: nn.Module) -> None:
    name = type(model).__name__
    if not getattr(model, "explainable", False):
        raise NotExplainableError(
            f"{name} is not explainable (explainable = False): its spatial layout is lost"
        )
    for attribute in ("cam_layer", "representation_shape"):
        if not hasattr(model, attribute):
            raise NotExplainableError(f"{name} declares explainable = True but has no {attribute}")


@contextmanager
def capture_cam_layer(model: nn.Module, detach: bool):
    """Record the CAM layer's raw output during a forward pass (see :func:`as_volume_layout`).

    With ``detach`` the output is replaced by a leaf that requires grad, so gradients of the
    scores stop there: no backward pass ever runs through the backbone.
    """
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        if detach:
            output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    handle = model.cam_layer.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def as_volume_layout(z: torch.Tensor, model: nn.Module, batch: int) -> torch.Tensor:
    """CAM-layer output as ``[B, F, H', D1, D2]`` whatever the model's ``cam_layout``."""
    if getattr(model, "cam_layout", "per_slice") == "per_slice":  # [B*H, F, D1, D2]
        return z.view(batch, -1, *z.shape[1:]).transpose(1, 2)
    return z  # already [B, F, H', D1, D2]


def per_slice_contributions(
    model: nn.Module, x: torch.Tensor, classes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a [B, M', H, D1, D2], logits [B, M])``: every slice's own ``<W_m, z_h>`` per cell.

    For a model with one linear map per slice (``linear_head()``, per-slice CAM layout), this
    is each cell's additive share of its slice's score (plus ``b_m``), whatever the aggregation
    over slices: the mask loss's attention (no bias, as the paper's reference code), and, divided
    by ``H``, AxialNet's closed-form HiResCAM. ``classes`` (a LongTensor) selects rows of ``W``.
    One forward pass, differentiable.
    """
    if not hasattr(model, "linear_head") or getattr(model, "cam_layout", None) != "per_slice":
        raise ValueError(
            f"{type(model).__name__}: per-slice contributions need linear_head() and "
            "cam_layout 'per_slice'"
        )
    with capture_cam_layer(model, detach=False) as got:
        logits = model(x)
    z = as_volume_layout(got[0], model, x.shape[0])  # [B, F, H, D1, D2]
    weight, _ = model.linear_head()  # [M, F, D1, D2]
    if classes is not None:
        weight = weight[classes.to(weight.device)]
    # in fp32 under autocast too: the map's cells must add up to the score (sum(A) + b = s)
    with torch.autocast(z.device.type, enabled=False):
        return torch.einsum("bfhyx,mfyx->bmhyx", z.float(), weight.float()), logits


def resample_to_slices(maps: torch.Tensor, slices: int) -> torch.Tensor:
    """``[B, M, H', D1, D2] -> [B, M, H, D1, D2]`` by trilinear interpolation along depth.

    A 3-D model's CAM grid spans the whole input depth; this puts it on the slice groups.
    """
    if maps.shape[2] == slices:
        return maps
    size = (slices, *maps.shape[3:])
    return F.interpolate(maps, size=size, mode="trilinear", align_corners=False)


def relu_minmax(maps: torch.Tensor) -> torch.Tensor:
    """ReLU, then min-max to [0, 1] per (scan, label) over the whole volume (display only).

    A map with no positive cell stays all zero.
    """
    positive = maps.clamp(min=0)
    flat = positive.flatten(2)
    low = flat.amin(dim=2, keepdim=True)
    high = flat.amax(dim=2, keepdim=True)
    scale = torch.where(high - low > 0, high - low, torch.ones_like(high))
    return ((flat - low) / scale).view_as(maps)


def upsample_to_volume(maps: torch.Tensor, volume_shape: tuple[int, int, int]) -> torch.Tensor:
    """``[B, M, H, D1, D2] -> [B, M, S, Y, X]`` by trilinear interpolation, for overlays."""
    return F.interpolate(maps, size=tuple(volume_shape), mode="trilinear", align_corners=False)
