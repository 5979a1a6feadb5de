"""Faithfulness in 3-D: does removing what a map ranks highest change the model's score most?

**Regions.** The input ``x [H, 3, Y, X]`` is split into regions, each voxel in exactly one:

- ``cells`` (the default): the map's cells; cell ``(h, i, j)`` of a map ``[H, D1, D2]`` is the
  3-D patch holding slice group ``h`` and the ``i``-th and ``j``-th blocks of rows and columns
  (:func:`cell_regions`); a cell's relevance is the map's value there;
- ``organs``: the organ masks of each volume (:func:`organ_regions`: each voxel goes to the
  first organ, in ``ORGANS`` order, that holds it; region 0 is every voxel in none); an organ's
  relevance is the map's mass over its voxels (the map brought to the input by nearest
  upsampling, as overlays are drawn).

A region is removed by replacing its voxels with an imputed volume:

- ``blur``: the input's local mean, a 3-D box filter three cells wide (at most the volume;
  neighbours fill the hole, so no sharp edge the model never saw is drawn);
- ``region-mean``: the mean of the region's own voxels (the organ mean for organ regions: the
  organ keeps its density and loses its structure, lesions included);
- ``mean``: the volume's mean value;
- ``zero``: 0 in the model's input space (for models whose score is linear in the input).

Curves, one per (volume, label), of the label's logit as a share of the regions is changed,
most relevant first (``morf``) or least relevant first (``lerf``):

- ``deletion``: from the input, regions are removed; a faithful map makes the MoRF curve fall
  fast (a low area) and the LeRF curve stay (a high area);
- ``insertion``: from the fully imputed input, regions are put back; a faithful map makes the
  MoRF curve rise fast (a high area).

The area is the trapezoid over the share of regions in [0, 1], of the logit minus the logit of
the unchanged input (deletion) or of the fully imputed input (insertion), so 0 means "no
change". Ties in relevance are ordered by a seeded random key, so a constant map gives a random
order.

``faithfulness_correlation`` (Bhatt et al. 2020), region-level: over random subsets of regions,
the Pearson correlation between the map's relevance summed over the subset and the logit's drop
when the subset is removed; 1 for a map that adds up to the score's changes exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMPUTERS = ("blur", "region-mean", "mean", "zero")


def cell_regions(grid: tuple[int, int, int], shape: Sequence[int]) -> torch.Tensor:
    """``long [H, 3, Y, X]``: the index (``h * D1 * D2 + i * D2 + j``) of the map cell holding
    each voxel of an input of ``shape`` ``[H, 3, Y, X]`` (nearest upsampling of the grid)."""
    h, d1, d2 = grid
    _, channels, y, x = shape
    index = torch.arange(h * d1 * d2, dtype=torch.float32).reshape(1, 1, h, d1, d2)
    big = F.interpolate(index, size=(h, y, x), mode="nearest")[0, 0].long()  # [H, Y, X]
    return big[:, None].expand(h, channels, y, x).contiguous()


def organ_regions(organs: torch.Tensor) -> torch.Tensor:
    """``bool [B, K, S, Y, X]`` organ masks (S = 3H, the model's grid) -> ``long [B, H, 3, Y,
    X]``: 1 + the first organ holding each voxel, 0 where no organ does."""
    b, _, s, y, x = organs.shape
    if s % 3:
        raise ValueError(f"organ masks have {s} slices; regions need a multiple of 3")
    held = organs.bool()
    first = held.to(torch.uint8).argmax(dim=1) + 1  # the first organ holding the voxel
    region = torch.where(held.any(dim=1), first, 0).long()
    return region.reshape(b, s // 3, 3, y, x)


def region_relevance(maps: torch.Tensor, regions: torch.Tensor, n_regions: int) -> torch.Tensor:
    """``[B, M, R]``: each map's mass over each region's voxels (the map ``[B, M, H, D1, D2]``
    upsampled to the input by nearest neighbour; ``regions [B, H, 3, Y, X]``), as the map's
    cells times a ``[cells, R]`` count of each cell's voxels in each region (the upsampled maps
    are never built)."""
    grid = tuple(maps.shape[2:])
    n_cells = grid[0] * grid[1] * grid[2]
    cells = cell_regions(grid, regions.shape[1:]).to(regions.device)
    out = []
    for b in range(len(regions)):
        pair = (cells * n_regions + regions[b].long()).flatten()
        counts = torch.bincount(pair, minlength=n_cells * n_regions).reshape(n_cells, n_regions)
        out.append(maps[b].detach().double().flatten(1) @ counts.to(maps.device).double())
    return torch.stack(out)


def _region_means(x: torch.Tensor, regions: torch.Tensor, n_regions: int) -> torch.Tensor:
    """Each voxel of ``x [B, H, 3, Y, X]`` replaced by the mean of its region."""
    flat, index = x.reshape(len(x), -1), regions.reshape(len(x), -1).to(x.device)
    sums = torch.zeros(len(x), n_regions, dtype=x.dtype, device=x.device)
    sizes = torch.zeros_like(sums)
    sums.scatter_add_(1, index, flat)
    sizes.scatter_add_(1, index, torch.ones_like(flat))
    means = sums / sizes.clamp(min=1)
    return means.gather(1, index).reshape(x.shape)


def imputed(
    x: torch.Tensor,
    grid: tuple[int, int],
    imputer: str = "blur",
    regions: torch.Tensor | None = None,
) -> torch.Tensor:
    """The fill of ``x [B, H, 3, Y, X]`` that removed regions take (``region-mean`` uses
    ``regions [B, H, 3, Y, X]``, or the cells of a ``[H, *grid]`` map when it is None)."""
    if imputer == "zero":
        return torch.zeros_like(x)
    if imputer == "mean":
        return x.mean(dim=(1, 2, 3, 4), keepdim=True).expand_as(x).clone()
    if imputer == "region-mean":
        if regions is None:
            regions = cell_regions((x.shape[1], *grid), x.shape[1:]).expand(x.shape)
        return _region_means(x, regions, int(regions.max()) + 1)
    if imputer != "blur":
        raise ValueError(f"unknown imputer {imputer!r}; choose {', '.join(IMPUTERS)}")
    _, h, _, y, w = x.shape

    def odd(width: int, limit: int) -> int:
        width = min(width, limit)
        return width if width % 2 else max(1, width - 1)

    blurred = x
    for dim, width in ((1, odd(3, h)), (3, odd(3 * max(1, y // grid[0]), y))):
        blurred = _box_mean(blurred, dim, width)
    return _box_mean(blurred, 4, odd(3 * max(1, w // grid[1]), w))


def _box_mean(x: torch.Tensor, dim: int, width: int) -> torch.Tensor:
    """The mean over a centred window of odd ``width`` along ``dim``, the window cut at the
    edges (as ``avg_pool`` without counting padding); from cumulative sums, so its cost does
    not grow with the width. Applied along each axis in turn it is the 3-D box mean."""
    if width == 1:
        return x
    half, n = width // 2, x.shape[dim]
    total = torch.cumsum(x.double(), dim=dim)
    zero = torch.zeros_like(total.narrow(dim, 0, 1))
    padded = torch.cat([zero, total], dim=dim)  # padded[i] = sum of x[:i]
    index = torch.arange(n, device=x.device)
    high, low = (index + half + 1).clamp(max=n), (index - half).clamp(min=0)
    sums = padded.index_select(dim, high) - padded.index_select(dim, low)
    shape = [1] * x.dim()
    shape[dim] = n
    return (sums / (high - low).reshape(shape)).to(x.dtype)


def _orders(relevance: torch.Tensor, most_first: bool, seed: int) -> torch.Tensor:
    """Region orders ``[B, M, R]``: by relevance, ties broken by a seeded random key."""
    flat = relevance.detach().double().cpu()
    key = torch.rand(flat.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ranked = flat + key * 1e-12 * (flat.abs().amax(dim=2, keepdim=True) + 1)
    return ranked.argsort(dim=2, descending=most_first)


class _Regions:
    """The regions of one call: per-voxel region ids ``[B, H, 3, Y, X]``, their count, and each
    (volume, label)'s relevance ``[B, M, R]``."""

    def __init__(self, x: torch.Tensor, maps: torch.Tensor, regions: torch.Tensor | None) -> None:
        grid = tuple(maps.shape[2:])
        if grid[0] != x.shape[1]:
            raise ValueError(f"maps have {grid[0]} slice groups, the input {x.shape[1]}")
        self.grid = grid
        if regions is None:  # the map's own cells: relevance is the map's value
            self.ids = cell_regions(grid, x.shape[1:]).expand(x.shape)
            self.count = grid[0] * grid[1] * grid[2]
            self.relevance = maps.detach().double().flatten(2)
        else:
            if tuple(regions.shape) != tuple(x.shape):
                raise ValueError(f"regions {tuple(regions.shape)} must match x {tuple(x.shape)}")
            self.ids = regions.long()
            self.count = int(regions.max()) + 1
            self.relevance = region_relevance(maps, self.ids, self.count)  # [B, M', R]
        self.ids = self.ids.to(x.device)

    def masks(self, b: int, order: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """``bool [len(counts), H, 3, Y, X]``: volume ``b``'s voxels in the first ``k`` regions
        of ``order``, for each ``k`` of ``counts``."""
        rank = torch.empty(self.count, dtype=torch.long)
        rank[order] = torch.arange(self.count)
        voxel_rank = rank.to(self.ids.device)[self.ids[b]]
        limits = torch.as_tensor(list(counts), device=voxel_rank.device)
        return voxel_rank[None] < limits.reshape(-1, 1, 1, 1, 1)


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
    regions: torch.Tensor | None = None,
    seed: int = 0,
    batch: int = 8,
) -> torch.Tensor:
    """``[B, M', steps + 1]``: the logit of each explained class as 0, 1/steps, ..., 1 of the
    regions (``regions [B, H, 3, Y, X]`` ids, or the map's cells when None) are deleted (or
    inserted), in the map's ``order``."""
    if mode not in ("deletion", "insertion") or order not in ("morf", "lerf"):
        raise ValueError(f"mode deletion|insertion and order morf|lerf, got {mode!r}, {order!r}")
    index = list(range(maps.shape[1])) if classes is None else [int(c) for c in classes]
    parts = _Regions(x, maps[:, index], regions)
    fill = imputed(x, parts.grid[1:], imputer, parts.ids)
    orders = _orders(parts.relevance, order == "morf", seed)
    counts = step_counts(parts.count, steps, mode)
    inner = counts[1:-1]  # both ends are the same for every label: the input, the fill
    curves = torch.empty(x.shape[0], len(index), steps + 1, dtype=torch.float64)
    model.eval()
    for b in range(x.shape[0]):
        inputs = [torch.stack([x[b], fill[b]])]
        for m in range(len(index)):
            masks = parts.masks(b, orders[b, m], inner)
            if mode == "insertion":
                masks = ~masks
            inputs.append(torch.where(masks, fill[b], x[b]))
        stacked = torch.cat(inputs)
        with torch.no_grad():
            logits = torch.cat(
                [model(stacked[i : i + batch]) for i in range(0, len(stacked), batch)]
            ).double()
        whole, filled = logits[0, index].cpu(), logits[1, index].cpu()
        first, last = (whole, filled) if mode == "deletion" else (filled, whole)
        curves[b, :, 0], curves[b, :, -1] = first, last
        if inner:
            middle = logits[2:].reshape(len(index), len(inner), -1).cpu()
            curves[b, :, 1:-1] = middle[torch.arange(len(index)), :, index]
    return curves


def step_counts(regions: int, steps: int, mode: str = "deletion") -> list[int]:
    """How many regions are deleted (inserted) at each of the ``steps + 1`` points: deletion
    ``round(regions * s / steps)``; insertion the mirror, ``regions`` minus deletion's count at
    point ``steps - s``, so an insertion curve is exactly the opposite order's deletion curve
    read backwards (the two differ from ``regions * s / steps`` by rounding alone)."""
    deleted = [round(regions * s / steps) for s in range(steps + 1)]
    return deleted if mode == "deletion" else [regions - c for c in reversed(deleted)]


def insertion_from_deletion(curves: torch.Tensor) -> torch.Tensor:
    """The insertion curves of one order from the deletion curves of the other: inserting the
    ``k`` most relevant regions into the fill is deleting the others, least relevant first,
    from the input. The same inputs, so the same logits: no model call."""
    return curves.flip(-1)


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
    regions: torch.Tensor | None = None,
    seed: int = 0,
    batch: int = 8,
) -> torch.Tensor:
    """``[B, M']``: Pearson correlation, over ``subsets`` random sets of ``fraction`` of the
    regions (at least one), between the map's relevance summed over the set and the logit's drop
    when the set is removed."""
    index = list(range(maps.shape[1])) if classes is None else [int(c) for c in classes]
    parts = _Regions(x, maps[:, index], regions)
    fill = imputed(x, parts.grid[1:], imputer, parts.ids)
    k = max(1, round(fraction * parts.count))
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.stack(
        [torch.randperm(parts.count, generator=generator)[:k] for _ in range(subsets)]
    )
    out = torch.empty(x.shape[0], len(index), dtype=torch.float64)
    model.eval()
    for b in range(x.shape[0]):
        masks = torch.stack([torch.isin(parts.ids[b], c.to(parts.ids.device)) for c in chosen])
        perturbed = torch.where(masks, fill[b], x[b])
        with torch.no_grad():
            base = model(x[b : b + 1])[0].double()
            logits = torch.cat(
                [model(perturbed[i : i + batch]) for i in range(0, subsets, batch)]
            ).double()
        for m, label in enumerate(index):
            attributed = parts.relevance[b, m].cpu()[chosen].sum(dim=1)
            drop = (base[label] - logits[:, label]).cpu()
            a, d = attributed - attributed.mean(), drop - drop.mean()
            denominator = (a.square().sum() * d.square().sum()).sqrt()
            out[b, m] = (a * d).sum() / denominator if denominator > 0 else float("nan")
    return out
