"""Training losses (paper sections 3.2 and 3.6; the paper's reference code).

``L = L_class + lambda * L_mask``. ``L_class`` is the binary cross-entropy averaged over labels
and cases. ``L_mask`` takes the raw HiResCAM contribution ``a`` of every cell (no bias, ReLU or
normalisation) and averages ``-log(1 - sigmoid(a)) = softplus(a)`` over the forbidden cells:
outside the allowed organs of a present label, and everywhere for an absent label. The paper's
mean runs over every forbidden cell of the batch, as the reference's ``BCEWithLogitsLoss`` does
over the cells of its one-volume batch; ``per-case`` and ``two-sided`` (:data:`MASK_LOSS_FORMS`)
are ctbench's variants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from ctbench.explain.explanations import per_slice_contributions
from ctbench.train.mask_forms import MASK_LOSS_FORMS
from torch import nn


def at_least_fp32(values: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 values (autocast's) as fp32; fp32 and fp64 unchanged."""
    return values.to(torch.promote_types(values.dtype, torch.float32))


def classification_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over ``[B, M]`` logits (paper eq. 2), in fp32 under autocast."""
    logits = at_least_fp32(logits)
    return F.binary_cross_entropy_with_logits(logits, truth.to(logits.dtype))


def mask_loss(maps: torch.Tensor, allowed: torch.Tensor, form: str = "paper") -> torch.Tensor:
    """The mask loss of raw maps ``[B, M, H, D1, D2]`` over the cells ``allowed`` marks False
    (:data:`MASK_LOSS_FORMS`; ``paper``: the mean ``softplus`` over every forbidden cell).

    ``allowed`` is PARTITION's ``G_true`` for each case (all False for an absent label). A batch
    with no forbidden cell contributes zero.
    """
    if maps.shape != allowed.shape:
        raise ValueError(
            f"maps {tuple(maps.shape)} and allowed regions {tuple(allowed.shape)} differ"
        )
    if form not in MASK_LOSS_FORMS:
        raise ValueError(f"unknown mask loss form {form!r}; choose {', '.join(MASK_LOSS_FORMS)}")
    forbidden = ~allowed.bool()
    if not bool(forbidden.any()):
        return maps.sum() * 0.0
    values = at_least_fp32(maps)
    if form == "two-sided":
        return F.softplus(values[forbidden].abs()).mean()
    if form == "paper":
        return F.softplus(values[forbidden]).mean()
    cells = forbidden.flatten(2)  # per-case: [B, M, cells]
    sums = (F.softplus(values.flatten(2)) * cells).sum(dim=2)
    counts = cells.sum(dim=2)
    scored = counts > 0
    return (sums[scored] / counts[scored]).mean()


def mask_loss_count(allowed: torch.Tensor, form: str = "paper") -> int:
    """What :func:`mask_loss` averages over (forbidden cells, or for ``per-case`` the
    (volume, label) pairs with one): the weight of a rank's share of a global batch."""
    forbidden = ~allowed.bool()
    if form == "per-case":
        return int(forbidden.flatten(2).any(dim=2).sum())
    return int(forbidden.sum())


def slice_contributions(model: nn.Module, maps: torch.Tensor) -> torch.Tensor:
    """The mask loss's attention ``a`` from an explainer's map of a mean-aggregated model.

    For a model whose score is the mean of per-slice scores (AxialNet), HiResCAM's map is
    ``W Z / H``; the paper's reference code uses ``W Z`` in its mask loss (no 1/H), so the
    map is scaled by ``H``. A model that is not a multiple-instance model has no per-slice scores:
    its raw map is its cells' contribution already. A max-aggregated model's map is zero on
    every slice but the top one, so it is refused here (see :func:`mask_attention`).
    """
    aggregation = getattr(model, "slice_aggregation", None)
    if aggregation == "mean":
        return maps * maps.shape[2]
    if aggregation is not None:
        raise ValueError(
            f"{type(model).__name__} aggregates slices by {aggregation!r}: an explainer's map "
            "of the aggregate is not each slice's contribution; use mask_attention()"
        )
    return maps


def mask_attention(
    model: nn.Module, explainer, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, logits)`` for the mask loss: each cell's contribution to its slice's score.

    Mean-aggregated and non-MIL models: the explainer's map (scaled by :func:`slice_contributions`).
    Max-aggregated models (MaxPool): HiResCAM of the max is zero outside the top slice, which
    would penalise one slice and add a constant ``ln 2`` elsewhere; their attention is each
    slice's own ``W Z`` instead (:func:`per_slice_contributions`), as AxialNet's.
    """
    if getattr(model, "slice_aggregation", None) == "max":
        return per_slice_contributions(model, x)
    maps, logits = explainer.explain(model, x)
    return slice_contributions(model, maps), logits
