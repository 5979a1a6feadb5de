"""Faithfulness in 3-D: does removing what a map ranks highest change the model's score most?

The regions are the map's cells: cell ``(h, i, j)`` of a map ``[H, D1, D2]`` is the 3-D patch
of the input ``x [H, 3, Y, X]`` holding slice group ``h`` and the ``i``-th and ``j``-th blocks
of rows and columns. A region is removed by replacing its voxels with an imputed volume:

- ``blur``: the input's local mean, a 3-D box filter three cells wide (at most the volume;
  neighbours fill the hole, so no sharp edge the model never saw is drawn);
- ``mean``: the volume's mean value;
- ``zero``: 0 in the model's input space (for models whose score is linear in the input).

Curves, one per (volume, label), of the label's logit as a share of the cells is changed, most
relevant first (``morf``) or least relevant first (``lerf``):

- ``deletion``: from the input, cells are removed; a faithful map makes the MoRF curve fall
  fast (a low area) and the LeRF curve stay (a high area);
- ``insertion``: from the fully imputed input, cells are put back; a faithful map makes the
  MoRF curve rise fast (a high area).

The area is the trapezoid over the share of cells in [0, 1], of the logit minus the logit of
the unchanged input (deletion) or of the fully imputed input (insertion), so 0 means "no change".
Ties in the map are ordered by a seeded random key, so a constant map gives a random order.

``faithfulness_correlation`` (Bhatt et al. 2020): over random subsets of cells, the Pearson
correlation between the map's sum over the subset and the logit's drop when the subset is
removed; 1 for a map that adds up to the score's changes exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMPUTERS = ("blur", "mean", "zero")


def imputed(x: torch.Tensor, grid: tuple[int, int], imputer: str = "blur") -> torch.Tensor:
    """The fill of ``x [B, H, 3, Y, X]`` that removed regions take."""
    if imputer == "zero":
        return torch.zeros_like(x)
    if imputer == "mean":
        return x.mean(dim=(1, 2, 3, 4), keepdim=True).expand_as(x).clone()
    if imputer != "blur":
        raise ValueError(f"unknown imputer {imputer!r}; choose {', '.join(IMPUTERS)}")
    b, h, c, y, w = x.shape

    def odd(width: int, limit: int) -> int:
        width = min(width, limit)
        return width if width % 2 else max(1, width - 1)

    size = (odd(3, h), odd(3 * max(1, y // grid[0]), y), odd(3 * max(1, w // grid[1]), w))
    volume = x.permute(0, 2, 1, 3, 4).reshape(b * c, 1, h, y, w)
    padding = tuple(s // 2 for s in size)
    blurred = F.avg_pool3d(volume, size, stride=1, padding=padding, count_include_pad=False)
    return blurred.reshape(b, c, h, y, w).permute(0, 2, 1, 3, 4).contiguous()


def cell_masks(order: torch.Tensor, counts: Sequence[int], grid: tuple[int, int, int], shape):
    """``bool [len(counts), *shape[1:]]`` input masks of the first ``k`` cells of ``order``."""
    h, d1, d2 = grid
    _, _, y, x = shape
    out = []
    for k in counts:
        cells = torch.zeros(h * d1 * d2, dtype=torch.bool, device=order.device)
        cells[order[:k]] = True
        small = cells.reshape(1, 1, h, d1, d2).float()
        big = F.interpolate(small, size=(h, y, x), mode="nearest")[0, 0] > 0  # [H, Y, X]
        out.append(big[:, None].expand(h, shape[1], y, x))
    return torch.stack(out)


def _orders(maps: torch.Tensor, most_first: bool, seed: int) -> torch.Tensor:
    """Cell orders ``[B, M, cells]``: by value, ties broken by a seeded random key."""
    flat = maps.detach().flatten(2).double()
    key = torch.rand(flat.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ranked = flat + key * 1e-12 * (flat.abs().amax(dim=2, keepdim=True) + 1)
    return ranked.argsort(dim=2, descending=most_first)


def perturbation_curves(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    classes: Sequence[int] | None = None,
    *,
    mode: str = "deletion",
    order: str = "morf",
    steps: int = 10,
    imputer: str = "blur",
    seed: int = 0,
    batch: int = 8,
) -> torch.Tensor:
    """``[B, M', steps + 1]``: the logit of each explained class as 0, 1/steps, ..., 1 of its
    map's cells are deleted (or inserted), in the map's ``order``."""
    if mode not in ("deletion", "insertion") or order not in ("morf", "lerf"):
        raise ValueError(f"mode deletion|insertion and order morf|lerf, got {mode!r}, {order!r}")
    index = list(range(maps.shape[1])) if classes is None else [int(c) for c in classes]
    grid = tuple(maps.shape[2:])
    if grid[0] != x.shape[1]:
        raise ValueError(f"maps have {grid[0]} slice groups, the input {x.shape[1]}")
    fill = imputed(x, grid[1:], imputer)
    orders = _orders(maps[:, index], order == "morf", seed)
    n_cells = orders.shape[2]
    counts = [round(n_cells * s / steps) for s in range(steps + 1)]
    curves = torch.empty(x.shape[0], len(index), steps + 1, dtype=torch.float64)
    model.eval()
    for b in range(x.shape[0]):
        inputs, targets = [], []
        for m, label in enumerate(index):
            masks = cell_masks(orders[b, m], counts, grid, x.shape[1:])
            if mode == "insertion":
                masks = ~masks
            inputs.append(torch.where(masks, fill[b], x[b]))
            targets += [(m, label)] * len(counts)
        stacked = torch.cat(inputs)
        with torch.no_grad():
            logits = torch.cat(
                [model(stacked[i : i + batch]) for i in range(0, len(stacked), batch)]
            )
        for row, (m, label) in enumerate(targets):
            curves[b, m, row % len(counts)] = float(logits[row, label])
    return curves


def curve_area(curves: torch.Tensor, mode: str = "deletion") -> torch.Tensor:
    """``[B, M']``: the trapezoid area over [0, 1] of each curve minus its start (deletion:
    the unchanged input's logit; insertion: the fully imputed input's)."""
    shifted = curves - curves[..., :1]
    step = 1.0 / (curves.shape[-1] - 1)
    return torch.trapezoid(shifted, dx=step, dim=-1)


def faithfulness_correlation(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    classes: Sequence[int] | None = None,
    *,
    subsets: int = 32,
    fraction: float = 0.1,
    imputer: str = "blur",
    seed: int = 0,
    batch: int = 8,
) -> torch.Tensor:
    """``[B, M']``: Pearson correlation, over ``subsets`` random sets of ``fraction`` of the
    cells, between the map's sum over the set and the logit's drop when the set is removed."""
    index = list(range(maps.shape[1])) if classes is None else [int(c) for c in classes]
    grid = tuple(maps.shape[2:])
    fill = imputed(x, grid[1:], imputer)
    n_cells = maps[0, 0].numel()
    k = max(1, round(fraction * n_cells))
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.stack([torch.randperm(n_cells, generator=generator)[:k] for _ in range(subsets)])
    out = torch.empty(x.shape[0], len(index), dtype=torch.float64)
    model.eval()
    for b in range(x.shape[0]):
        masks = torch.stack([cell_masks(c, [k], grid, x.shape[1:])[0] for c in chosen])
        perturbed = torch.where(masks, fill[b], x[b])
        with torch.no_grad():
            base = model(x[b : b + 1])[0].double()
            logits = torch.cat(
                [model(perturbed[i : i + batch]) for i in range(0, subsets, batch)]
            ).double()
        for m, label in enumerate(index):
            flat = maps[b, label].flatten().double()
            attributed = flat[chosen].sum(dim=1)
            drop = base[label] - logits[:, label]
            a, d = attributed - attributed.mean(), drop - drop.mean()
            denominator = (a.square().sum() * d.square().sum()).sqrt()
            out[b, m] = (a * d).sum() / denominator if denominator > 0 else float("nan")
    return out
