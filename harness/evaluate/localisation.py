"""The localisation family of explanation metrics: one contract, 3-D and multi-label native.

**Contract.** ``maps`` is a float tensor ``[N, M, *grid]`` (N volumes, M labels, a 3-D grid:
the CAM grid ``[H, D1, D2]`` or the CT grid ``[S, Y, X]``) and ``masks`` a bool tensor of the
same shape: the truth of each (volume, label) pair (an organ, or a lesion). Maps on the CAM grid
are scored against masks brought to that grid with :func:`mask_to_grid` (a cell is in the mask
when any voxel of it is: max pooling), or maps are brought to the CT grid with
:func:`map_to_grid` (trilinear, as overlays are drawn). Every metric returns ``[N, M]`` float64
and computes all pairs at once in torch, on whatever device the tensors are on.

**Semantics, the same for every metric** (each has a known-answer test):

- An empty mask gives NaN: the pair is left out of every mean (never a hit, never a miss).
- Ties share: where a metric ranks cells, cells of equal value count in proportion (a maximum
  tied over k cells of which j are inside is j/k of a hit), so no ordering of equal values,
  and no choice of "first", changes a score.
- A constant map, and an all-zero map (an explainer that says nothing), rank nothing above
  anything: they score what a uniform guess scores, the mask's share of the grid (AUROC 0.5).
  The thresholded metrics (IoU, Dice, hit rate) read an all-zero map as empty: they score 0.
- Each pair is scored on its own, so results do not depend on the batch size or on the other
  labels of a volume.

Metrics: the pointing game, mass inside (signed and absolute), relevance rank accuracy, top-k
intersection, map-vs-mask AUROC and average precision (threshold-free), IoU and Dice at a
threshold of the normalised map (per label, tuned on validation, or Otsu's per map), the hit
rate (Dice >= 0.1) and instance F1 (Dice >= 0.2) as ReXGroundingCT defines them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

HIT_DICE = 0.1
INSTANCE_DICE = 0.2
"""ReXGroundingCT's cut-offs: a pair is a hit at Dice >= 0.1; an instance is found at >= 0.2."""


def _rows(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if maps.shape != masks.shape or maps.dim() < 3:
        raise ValueError(
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must share one shape "
            "[N, M, *grid]"
        )
    values = maps.detach().to(torch.float64).flatten(2)
    if not torch.isfinite(values).all():
        raise ValueError("maps hold NaN or infinite values")
    return values, masks.to(values.device).bool().flatten(2)


def _empty_to_nan(score: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    return torch.where(inside.any(dim=2), score, torch.full_like(score, float("nan")))


def mask_to_grid(mask: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """``bool [..., S, Y, X]`` -> ``[..., *grid]``: a cell is in the mask when any voxel is."""
    lead = mask.shape[:-3]
    pooled = F.adaptive_max_pool3d(mask.reshape(-1, 1, *mask.shape[-3:]).float(), tuple(grid))
    return pooled.reshape(*lead, *grid) > 0


def map_to_grid(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``[..., H, D1, D2]`` -> ``[..., *size]`` by trilinear interpolation."""
    lead = maps.shape[:-3]
    out = F.interpolate(
        maps.reshape(-1, 1, *maps.shape[-3:]).float(), size=tuple(size), mode="trilinear"
    )
    return out.reshape(*lead, *size)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The share of the map's maximal cells that lie in the mask (1 when the single maximum
    is inside, 0 when it is outside; a tie over k cells, j inside, gives j/k)."""
    values, inside = _rows(maps, masks)
    top = values == values.amax(dim=2, keepdim=True)
    score = (top & inside).sum(2) / top.sum(2)
    return _empty_to_nan(score.double(), inside)


def mass_inside(maps: torch.Tensor, masks: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """Relevance mass accuracy: the map's mass inside the mask over its total mass.

    Absolute: sum |R| inside / sum |R|, in [0, 1]. Signed: sum R inside / sum |R|, in [-1, 1]
    (negative evidence inside the mask counts against). An all-zero map scores the mask's
    share of the grid (as a constant map)."""
    values, inside = _rows(maps, masks)
    total = values.abs().sum(2)
    numerator = torch.where(inside, values if signed else values.abs(), 0.0).sum(2)
    share = inside.double().mean(2)
    score = torch.where(total > 0, numerator / total.clamp_min(1e-300), share)
    return _empty_to_nan(score, inside)


class _Ranked:
    """The pairs' values ``[N, M, cells]``, masks, and the values sorted once (descending)
    with their order: every ranking metric reads the one sort."""

    def __init__(self, maps: torch.Tensor, masks: torch.Tensor) -> None:
        self.values, self.inside = _rows(maps, masks)
        self.ordered, self.order = self.values.sort(dim=2, descending=True)

    def top_share(self, k: torch.Tensor) -> torch.Tensor:
        """The share of the ``k`` (per row) highest cells inside the mask, ties at the boundary
        counted in proportion."""
        values, inside = self.values, self.inside
        index = (k.long() - 1).clamp(min=0, max=values.shape[2] - 1)
        boundary = self.ordered.gather(2, index[..., None])  # the k-th largest value
        above = values > boundary
        tied = values == boundary
        needed = k - above.sum(2)
        inside_tied = (tied & inside).sum(2)
        count = (above & inside).sum(2) + needed * inside_tied / tied.sum(2)
        return count / k.clamp(min=1)

    def rank_accuracy(self) -> torch.Tensor:
        score = self.top_share(self.inside.sum(2).double())
        return _empty_to_nan(score.double(), self.inside)

    def top_k_intersection(self, fraction: float) -> torch.Tensor:
        cells = self.values.shape[2]
        k = torch.full(self.values.shape[:2], max(1, round(fraction * cells)), dtype=torch.float64)
        return _empty_to_nan(self.top_share(k.to(self.values.device)), self.inside)

    def auroc(self) -> torch.Tensor:
        values, inside = self.values, self.inside
        ascending = self.ordered.flip(2).contiguous()
        low = torch.searchsorted(ascending, values, right=False)
        high = torch.searchsorted(ascending, values, right=True)
        ranks = (low + high + 1) / 2  # 1-based, ties averaged
        positives = inside.sum(2).double()
        negatives = inside.shape[2] - positives
        rank_sum = torch.where(inside, ranks, 0.0).sum(2)
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
        return torch.where(negatives > 0, _empty_to_nan(auc, inside), float("nan"))

    def average_precision(self) -> torch.Tensor:
        ordered, inside = self.ordered, self.inside
        hits = inside.gather(2, self.order).double()
        tp = hits.cumsum(2)
        seen = torch.arange(1, ordered.shape[2] + 1, device=ordered.device, dtype=torch.float64)
        ends = torch.ones_like(hits, dtype=torch.bool)
        ends[..., :-1] = ordered[..., :-1] != ordered[..., 1:]  # last cell of each tie group
        at_end = torch.where(ends, tp, 0.0)
        before = torch.zeros_like(tp)
        before[..., 1:] = at_end.cummax(dim=2).values[..., :-1]  # tp at the previous group's end
        precision = tp / seen
        positives = inside.sum(2).double()
        ap = torch.where(ends, precision * (tp - before), 0.0).sum(2) / positives.clamp(min=1)
        return _empty_to_nan(ap, inside)


def rank_accuracy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Relevance rank accuracy: of the K highest cells (K = the mask's size), the share inside."""
    return _Ranked(maps, masks).rank_accuracy()


def top_k_intersection(
    maps: torch.Tensor, masks: torch.Tensor, fraction: float = 0.05
) -> torch.Tensor:
    """Top-k intersection: of the ``fraction`` x grid highest cells (at least one), the share
    inside the mask (a fixed k, unlike rank accuracy's K = mask size)."""
    return _Ranked(maps, masks).top_k_intersection(fraction)


def map_auroc(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """AUROC of the map's values as scores for "this cell is in the mask" (Mann-Whitney, tied
    values count one half). NaN when the mask is empty or fills the grid."""
    return _Ranked(maps, masks).auroc()


def map_average_precision(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Average precision of the map's values for the mask's cells, as scikit-learn computes it
    (one threshold per distinct value: tied cells enter together)."""
    return _Ranked(maps, masks).average_precision()


def normalised(maps: torch.Tensor) -> torch.Tensor:
    """Each map ReLU'd and divided by its maximum (all-zero maps stay zero), as OrganIoU does."""
    positive = maps.detach().double().clamp(min=0)
    peak = positive.flatten(2).amax(2)
    return positive / torch.where(peak > 0, peak, 1.0).reshape(*peak.shape, *[1] * (maps.dim() - 2))


def otsu_thresholds(maps: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """``[N, M]``: Otsu's threshold of each normalised map (between-class variance over a
    ``bins``-bin histogram of [0, 1]; the lowest best bin edge on ties)."""
    values = normalised(maps).flatten(2)
    index = (values * bins).long().clamp(max=bins - 1)
    histogram = torch.zeros(*values.shape[:2], bins, dtype=torch.float64, device=values.device)
    histogram.scatter_add_(2, index, torch.ones_like(values))
    weight = histogram / histogram.sum(2, keepdim=True)
    centres = (torch.arange(bins, device=values.device, dtype=torch.float64) + 0.5) / bins
    w0 = weight.cumsum(2)
    mu = (weight * centres).cumsum(2)
    total = mu[..., -1:]
    between = (total * w0 - mu) ** 2 / (w0 * (1 - w0)).clamp(min=1e-12)
    between = torch.where((w0 > 0) & (w0 < 1), between, -1.0)
    best = between.argmax(2)  # first maximum
    return (best + 1).double() / bins


def overlap(
    maps: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor | float
) -> dict[str, torch.Tensor]:
    """IoU, Dice and the hit (Dice >= 0.1) of each normalised map cut at ``thresholds``
    (strictly above; a float, ``[M]`` per label or ``[N, M]`` per map) against its mask."""
    values, inside = _rows(normalised(maps), masks)
    on = values > _cuts(thresholds, maps)[..., None]
    both = (on & inside).sum(2).double()
    union = (on | inside).sum(2).double()
    size = on.sum(2).double() + inside.sum(2).double()
    iou, dice = both / union.clamp(min=1), 2 * both / size.clamp(min=1)
    return {
        "iou": _empty_to_nan(iou, inside),
        "dice": _empty_to_nan(dice, inside),
        "hit": _empty_to_nan((dice >= HIT_DICE).double(), inside),
    }


def instance_counts(
    maps: torch.Tensor, instances: torch.Tensor, thresholds: torch.Tensor | float
) -> torch.Tensor:
    """``[N, M, 3]``: true positives, false positives and false negatives of each pair.

    ``instances`` is an int label map ``[N, M, *grid]`` (0 outside, one id per finding
    instance). The cut map's connected components (26-connected) are the predicted instances;
    they are matched one to one with the true ones, highest Dice first, and a match counts at
    Dice >= 0.2 (ReXGroundingCT's instance F1)."""
    import numpy as np
    from scipy import ndimage

    on = (normalised(maps) > _cuts(thresholds, maps)[..., None, None, None]).cpu().numpy()
    truth = instances.cpu().numpy()
    counts = np.zeros((*truth.shape[:2], 3))
    structure = np.ones((3, 3, 3), bool)
    for n in range(truth.shape[0]):
        for m in range(truth.shape[1]):
            predicted, n_predicted = ndimage.label(on[n, m], structure)
            true_ids = [i for i in np.unique(truth[n, m]) if i != 0]
            dice = np.zeros((len(true_ids), n_predicted))
            for a, true_id in enumerate(true_ids):
                mask = truth[n, m] == true_id
                hit_ids, overlaps = np.unique(predicted[mask], return_counts=True)
                for pid, both in zip(hit_ids, overlaps, strict=True):
                    if pid:
                        size = mask.sum() + (predicted == pid).sum()
                        dice[a, pid - 1] = 2 * both / size
            matched = 0
            while dice.size and dice.max() >= INSTANCE_DICE:
                a, b = np.unravel_index(dice.argmax(), dice.shape)
                matched += 1
                dice[a, :], dice[:, b] = -1, -1
            counts[n, m] = (matched, n_predicted - matched, len(true_ids) - matched)
    return torch.from_numpy(counts)


def instance_f1(counts: torch.Tensor) -> torch.Tensor:
    """``[M]``: each label's instance F1 over all volumes (counts summed, then 2TP/(2TP+FP+FN));
    NaN for a label with no true and no predicted instance."""
    tp, fp, fn = counts.sum(0).unbind(-1)
    denominator = 2 * tp + fp + fn
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), float("nan"))


def _cuts(thresholds, maps: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` thresholds from one float, one per label ``[M]`` or one per map ``[N, M]``."""
    cut = torch.as_tensor(thresholds, dtype=torch.float64, device=maps.device)
    return cut.expand(maps.shape[:2])


THRESHOLD_FREE = (
    "pointing_game",
    "mass_inside",
    "mass_inside_signed",
    "rank_accuracy",
    "top_k_intersection",
    "auroc",
    "average_precision",
)
"""The metrics that need no threshold, in the order :func:`threshold_free` gives them."""


def threshold_free(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every threshold-free metric of the pairs, ``{name: [N, M]}``; the ranking metrics share
    one sort of the maps (on the CT grid the sort is most of the cost)."""
    ranked = _Ranked(maps, masks)
    return {
        "pointing_game": pointing_game(maps, masks),
        "mass_inside": mass_inside(maps, masks),
        "mass_inside_signed": mass_inside(maps, masks, signed=True),
        "rank_accuracy": ranked.rank_accuracy(),
        "top_k_intersection": ranked.top_k_intersection(0.05),
        "auroc": ranked.auroc(),
        "average_precision": ranked.average_precision(),
    }
