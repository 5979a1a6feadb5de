"""Every localisation metric of a run's explainers, with bootstrap intervals and references.

For each explainer, and for three reference maps, the localisation family
(``ctbench.evaluate.localisation``) is scored on the test split against two truths on the map's
grid:

- ``organ``: the allowed region of each present label (PARTITION's organ masks);
- ``lesion``: the cells that hold the label's lesion voxels, where the dataset has lesion
  masks (the phantom).

Every metric scores the displayed maps (ReLU'd, min-max per pair) except the signed mass
inside, which scores the raw map scaled to [-1, 1] (negative evidence inside the mask counts
against). On lesion truth, instance F1 matches the connected components of each map cut at the
tuned threshold with the lesion instances on the map's grid (``metrics.instance_cells``); its
summary is a ratio of sums over pairs (2 TP over 2 TP + FP + FN), bootstrapped as one. Lesion
truth also gets ``iou_ct``: the IoU on the CT grid itself (the map upsampled to the volume),
at each label's threshold of best validation IoU (:func:`ct_grid_iou`).

The references bound what a map can score: ``ideal`` is the truth itself, ``organ_uniform`` is
uniform over the label's allowed organs (for organ truth it equals the ideal), ``random`` is
seeded uniform noise. Each summary is the mean over scored (volume, present label) pairs with a
1,000-replicate bootstrap interval over volumes (``ctbench.evaluate.bootstrap``); each pair of
explainers gets the paired difference of every metric. IoU, Dice and the hit rate cut the
normalised map at each label's threshold chosen on validation (best mean Dice, ties to the
smallest) and at Otsu's threshold of each map.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import torch
from ctbench.evaluate import localisation as loc
from ctbench.evaluate.bootstrap import (
    bootstrap_mean,
    bootstrap_ratio,
    paired_difference,
    paired_ratio_difference,
)
from ctbench.evaluate.metrics import THRESHOLDS, at_thresholds, choose_thresholds, column_means


def reference_maps(truth: np.ndarray, organs: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The three reference maps for ``truth`` masks ``[N, M, *grid]``; ``organs`` holds the
    allowed organs of each pair on the same grid."""
    rng = np.random.default_rng(seed)
    return {
        "ideal": truth.astype(np.float32),
        "organ_uniform": organs.astype(np.float32),
        "random": rng.random(truth.shape, dtype=np.float32),
    }


def dice_curves(maps: np.ndarray, masks: np.ndarray, device="cpu") -> np.ndarray:
    """``[T, N, M]``: Dice of each normalised map cut at every threshold of THRESHOLDS."""
    maps_t, masks_t = torch.from_numpy(maps).to(device), torch.from_numpy(masks).to(device)
    return np.stack(
        [loc.overlap(maps_t, masks_t, float(t))["dice"].cpu().numpy() for t in THRESHOLDS]
    )


def pair_scores(
    maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray, device="cpu"
) -> dict[str, np.ndarray]:
    """Every metric ``[N, M]`` of the pairs: the threshold-free family, then IoU, Dice and the
    hit at the per-label ``thresholds`` and at Otsu's threshold of each map, computed on
    ``device``."""
    maps_t, masks_t = torch.from_numpy(maps).to(device), torch.from_numpy(masks).to(device)
    out = dict(loc.threshold_free(maps_t, masks_t))
    tuned = loc.overlap(maps_t, masks_t, torch.from_numpy(np.asarray(thresholds)).to(device))
    otsu = loc.overlap(maps_t, masks_t, loc.otsu_thresholds(maps_t))
    out |= {f"{name}_tuned": value for name, value in tuned.items()}
    out |= {f"{name}_otsu": value for name, value in otsu.items()}
    return {name: value.cpu().numpy() for name, value in out.items()}


def instance_parts(
    maps: np.ndarray, instances: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(2 TP, 2 TP + FP + FN)`` ``[N, M]`` of each pair with instances (NaN elsewhere): the
    instance F1's numerator and denominator, at the per-label ``thresholds``."""
    scored = (instances > 0).any(axis=(2, 3, 4))
    n, m = np.nonzero(scored)  # only these pairs: the others would be labelled for nothing
    cuts = np.broadcast_to(np.asarray(thresholds, float), scored.shape)[n, m]
    counts = loc.instance_counts(
        torch.from_numpy(maps[n, m][:, None]),
        torch.from_numpy(instances[n, m][:, None]),
        torch.from_numpy(cuts[:, None].copy()),
    ).numpy()[:, 0]
    top, bottom = np.full(scored.shape, np.nan), np.full(scored.shape, np.nan)
    top[n, m] = 2 * counts[:, 0]
    bottom[n, m] = 2 * counts[:, 0] + counts[:, 1] + counts[:, 2]
    return top, bottom


def ct_grid_iou(valid, test, name: str) -> np.ndarray:
    """``[N, M]``: lesion IoU on the CT grid (the map upsampled trilinearly to the volume, as
    the overlays show it) at each label's threshold of best validation IoU; NaN where the label
    is absent or has no lesion. The family's other metrics score the map's own grid."""
    chosen = choose_thresholds(valid.lesion_iou[name], valid.truth)
    return np.where(test.truth, at_thresholds(test.lesion_iou[name], chosen), np.nan)


def score_explanations(valid, test, seed: int = 0, device="cpu") -> tuple[dict[str, Any], dict]:
    """``(metrics.json block, per-label columns)`` for the explainers of ``valid``/``test``
    (``ctbench.evaluate.evaluation.SplitOutputs``); the metrics run on ``device``."""
    truths = {"organ": (valid.allowed, test.allowed)}
    if test.lesion_grid is not None and valid.lesion_grid is not None:
        truths["lesion"] = (valid.lesion_grid, test.lesion_grid)
    summary: dict[str, Any] = {}
    differences: dict[str, Any] = {}
    columns: dict[str, list[float]] = {}
    for target, (valid_truth, test_truth) in truths.items():
        valid_masks = valid_truth & valid.truth[:, :, None, None, None]
        test_masks = test_truth & test.truth[:, :, None, None, None]
        maps = dict(test.attention)
        maps |= reference_maps(test_masks, test.allowed & test_masks.any((2, 3, 4), keepdims=True))
        valid_maps = dict(valid.attention)
        valid_maps |= reference_maps(
            valid_masks, valid.allowed & valid_masks.any((2, 3, 4), keepdims=True), seed + 1
        )
        instances = None
        if target == "lesion" and test.lesion_instances is not None:
            instances = np.where(test_masks, test.lesion_instances, 0)
        scores, ratios = {}, {}
        for name, test_maps in maps.items():
            curves = dice_curves(valid_maps[name], valid_masks, device)
            chosen = choose_thresholds(curves, valid.truth)
            scores[name] = pair_scores(test_maps, test_masks, chosen, device)
            if name in test.signed_attention:  # the raw map's sign, not the displayed map's
                signed = torch.from_numpy(test.signed_attention[name]).to(device)
                scores[name]["mass_inside_signed"] = (
                    loc.mass_inside(signed, torch.from_numpy(test_masks).to(device), signed=True)
                    .cpu()
                    .numpy()
                )
            if instances is not None:
                ratios[name] = {"instance_f1": instance_parts(test_maps, instances, chosen)}
            if target == "lesion" and name in test.lesion_iou and name in valid.lesion_iou:
                scores[name]["iou_ct"] = ct_grid_iou(valid, test, name)
        summary[target] = {
            name: {metric: bootstrap_mean(v, seed=seed).to_json() for metric, v in per.items()}
            | {
                metric: bootstrap_ratio(*parts, seed=seed).to_json()
                for metric, parts in ratios.get(name, {}).items()
            }
            for name, per in scores.items()
        }
        differences[target] = {
            f"{a} - {b}": {
                metric: paired_difference(scores[a][metric], scores[b][metric], seed=seed)
                for metric in scores[a]
            }
            | {
                metric: paired_ratio_difference(parts, ratios[b][metric], seed=seed)
                for metric, parts in ratios.get(a, {}).items()
            }
            for a, b in combinations(list(test.attention), 2)
        }
        for name in test.attention:
            for metric, values in scores[name].items():
                columns[f"{target}_{metric}_{name}"] = column_means(values)
            for metric, (top, bottom) in ratios.get(name, {}).items():
                with np.errstate(invalid="ignore", divide="ignore"):
                    per_label = np.nansum(top, axis=0) / np.nansum(bottom, axis=0)
                columns[f"{target}_{metric}_{name}"] = [
                    float(v) if np.isfinite(v) else float("nan") for v in per_label
                ]
    return {"explanation_metrics": summary, "explanation_differences": differences}, columns
