"""Evaluation metrics: AUROC per label, OrganIoU and localisation (paper section 4.3).

- AUROC per label (scikit-learn), summarised by the median and IQR over labels, and the mean
  (one label crossing moves the median of 12 labels by the gap between the 6th and 7th).
- OrganIoU [paper 4.3, scored as its reference code does]: cells of the ReLU'd, min-max-
  normalised map above a threshold (strict) are "on"; ``a`` of them lie inside the allowed
  region, ``b`` outside; OrganIoU = a / (a + b), so 1 when all attention is allowed and 0 when
  no cell is on (the reference's b = 0 -> 0 is a bug not copied). Present labels only. The
  threshold of each label is chosen on validation from :data:`THRESHOLDS` (best mean over its
  positive scans, ties to the smallest) and reused on test.
- Localisation against lesion masks (the phantom has them): the pointing game (the map's top
  cell touches the lesion; ties share, ``ctbench.evaluate.localisation``) and lesion IoU (the map
  upsampled to the CT grid, thresholded, against the lesion's voxels; the threshold chosen on
  validation the same way).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

THRESHOLDS = np.concatenate([[0.004, 0.008, 0.012, 0.016], np.arange(1, 50) * 0.02])
"""The reference's 53 OrganIoU thresholds: 0.004 to 0.016, then 0.02 to 0.98 by 0.02."""


def per_label_auroc(truth: np.ndarray, scores: np.ndarray, labels) -> dict[str, float]:
    """``{label: AUROC}``; NaN where a label has only one class among the cases."""
    out = {}
    for m, label in enumerate(labels):
        column = truth[:, m].astype(bool)
        valid = column.any() and not column.all()
        out[label] = float(roc_auc_score(column, scores[:, m])) if valid else float("nan")
    return out


def median_iqr(values) -> tuple[float, float]:
    """Median and inter-quartile range of the finite values (NaN when there are none)."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan")
    q25, q50, q75 = np.percentile(finite, [25, 50, 75])
    return float(q50), float(q75 - q25)


def finite_mean(values: np.ndarray) -> float:
    """The mean of the finite values (NaN marks pairs not scored); NaN when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def column_means(values: np.ndarray) -> list[float]:
    """Per label (column of ``[N, M]``), the mean of its scored pairs."""
    return [finite_mean(values[:, m]) for m in range(values.shape[1])]


def organ_iou_curves(
    attention: np.ndarray, allowed: np.ndarray, thresholds: np.ndarray = THRESHOLDS
) -> np.ndarray:
    """OrganIoU at every threshold: ``[T, N, M]`` from maps and regions ``[N, M, *grid]``."""
    flat = attention.reshape(*attention.shape[:2], -1)
    inside = allowed.reshape(flat.shape).astype(bool)
    out = np.empty((len(thresholds), *flat.shape[:2]))
    for t, threshold in enumerate(thresholds):
        on = flat > threshold
        a = (on & inside).sum(axis=2)
        b = (on & ~inside).sum(axis=2)
        out[t] = np.divide(a, a + b, out=np.zeros(a.shape), where=(a + b) > 0)
    return out


def choose_thresholds(
    curves: np.ndarray, present: np.ndarray, thresholds: np.ndarray = THRESHOLDS
) -> np.ndarray:
    """Per label, the threshold with the best mean over its scored pairs (ties: the smallest).

    ``curves [T, N, M]`` (NaN where a pair is not scored), ``present [N, M]``. A label with no
    scored pair on validation takes the threshold that is best over all pairs.
    """
    scored = present.astype(bool) & np.isfinite(curves).all(axis=0)
    masked = np.where(scored[None], curves, np.nan)
    with warnings.catch_warnings():  # labels without pairs give NaN means, on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        per_label = np.nanmean(masked, axis=1)  # [T, M]
        overall = np.nanmean(masked.reshape(len(thresholds), -1), axis=1)  # [T]
    fallback = thresholds[int(np.nanargmax(overall))] if np.isfinite(overall).any() else 0.5
    chosen = np.full(curves.shape[2], fallback, dtype=float)
    for m in range(curves.shape[2]):
        if np.isfinite(per_label[:, m]).any():
            chosen[m] = thresholds[int(np.nanargmax(per_label[:, m]))]  # first maximum
    return chosen


def at_thresholds(
    curves: np.ndarray, chosen: np.ndarray, thresholds: np.ndarray = THRESHOLDS
) -> np.ndarray:
    """``[N, M]``: each label's column of ``curves [T, N, M]`` at its chosen threshold."""
    index = np.array([int(np.argmin(np.abs(thresholds - c))) for c in chosen])
    return np.take_along_axis(curves, index[None, None, :], axis=0)[0]


def pointing_game(attention: np.ndarray, lesion_grid: np.ndarray) -> np.ndarray:
    """``[N, M]``: the share of each map's maximal cells that are lesion cells (1 for a single
    top cell on the lesion; ties share; a map with no positive cell, like any constant map,
    scores the lesion's share of the grid). Pairs without a lesion are NaN. This is
    :func:`ctbench.evaluate.localisation.pointing_game` on numpy arrays."""
    from ctbench.evaluate.localisation import pointing_game as shared

    return shared(torch.from_numpy(attention), torch.from_numpy(lesion_grid)).numpy()


def lesion_iou_curve(
    attention: torch.Tensor, lesion: torch.Tensor, thresholds: np.ndarray = THRESHOLDS
) -> np.ndarray:
    """``[T]``: IoU of ``attention [H, D1, D2]`` upsampled to ``lesion [S, Y, X]`` and thresholded.

    Upsampling is trilinear, as the overlays people look at; counts come from one bucketing of
    the voxels, so all thresholds cost about one pass.
    """
    size = tuple(lesion.shape)
    volume = F.interpolate(
        attention[None, None].float(), size=size, mode="trilinear", align_corners=False
    )[0, 0]
    edges = torch.as_tensor(thresholds, dtype=volume.dtype)
    bins = len(thresholds) + 1
    # bucket k holds values in (edges[k-1], edges[k]]; "> threshold t" = buckets above t.
    all_counts = torch.bincount(torch.bucketize(volume.flatten(), edges), minlength=bins)
    inside = torch.bincount(torch.bucketize(volume[lesion.bool()], edges), minlength=bins)
    above_all = all_counts.flip(0).cumsum(0).flip(0)[1:].double()
    above_in = inside.flip(0).cumsum(0).flip(0)[1:].double()
    union = above_all + lesion.sum() - above_in
    return torch.where(union > 0, above_in / union, torch.zeros_like(union)).numpy()


def lesion_cells(lesion: torch.Tensor, grid: tuple[int, int, int]) -> np.ndarray:
    """Which cells of the map grid hold any lesion voxel (max pooling over each cell)."""
    small = F.adaptive_max_pool3d(lesion[None].float(), tuple(grid))
    return small[0].numpy() > 0


def instance_cells(instances: torch.Tensor, grid: tuple[int, int, int]) -> np.ndarray:
    """``int16 [*grid]`` of an instance map ``[S, Y, X]`` (0 outside, ``k`` in instance ``k``):
    each cell holding lesion voxels goes to the instance with the most voxels in it (the lower
    id on ties), so its ``> 0`` is :func:`lesion_cells`; 0 elsewhere."""
    count = int(instances.max())
    if count == 0:
        return np.zeros(grid, np.int16)
    ids = torch.arange(1, count + 1, device=instances.device).reshape(-1, 1, 1, 1)
    share = F.adaptive_avg_pool3d((instances[None] == ids).float(), tuple(grid))  # [k, *grid]
    best = share.argmax(dim=0) + 1  # the first of tied maxima
    return torch.where(share.amax(dim=0) > 0, best, 0).cpu().numpy().astype(np.int16)
