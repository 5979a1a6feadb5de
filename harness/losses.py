"""Training losses (DESIGN.md section 4; paper sections 3.2 and 3.6; reference facts section 9).

``L = L_class + lambda * L_mask``. ``L_class`` is the binary cross-entropy averaged over labels
and cases. ``L_mask`` takes the raw HiResCAM contribution ``a`` of every cell (no bias, ReLU or
normalisation) and averages ``-log(1 - sigmoid(a)) = softplus(a)`` over the forbidden cells:
outside the allowed organs of a present label, and everywhere for an absent label. The mean
runs over every forbidden cell of the batch, as the reference's ``BCEWithLogitsLoss`` does over
the cells of its one-volume batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_LAMBDA = 1.0 / 3.0
"""The paper's weight of the mask loss."""


def classification_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over ``[B, M]`` logits (paper eq. 2)."""
    return F.binary_cross_entropy_with_logits(logits, truth.to(logits.dtype))


def mask_loss(maps: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean ``softplus`` of raw maps ``[B, M, H, D1, D2]`` over the cells ``allowed`` marks False.

    ``allowed`` is PARTITION's ``G_true`` for each case (all False for an absent label). A batch
    with no forbidden cell contributes zero.
    """
    if maps.shape != allowed.shape:
        raise ValueError(
            f"maps {tuple(maps.shape)} and allowed regions {tuple(allowed.shape)} differ"
        )
    forbidden = ~allowed.bool()
    if not bool(forbidden.any()):
        return maps.sum() * 0.0
    return F.softplus(maps[forbidden]).mean()


def slice_contributions(model: nn.Module, maps: torch.Tensor) -> torch.Tensor:
    """The mask loss's attention ``a``: each cell's additive contribution to its slice's score.

    For a model whose score is the mean of per-slice scores (AxialNet), HiResCAM's map is
    ``W Z / H``; the reference's mask loss uses ``W Z`` (no 1/H, reference facts 9), so the map
    is scaled by ``H``. Any other model's raw map is its cells' contribution already.
    """
    if getattr(model, "slice_aggregation", None) == "mean":
        return maps * maps.shape[2]
    return maps
