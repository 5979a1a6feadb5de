"""Every localisation metric of a run's explainers, with bootstrap intervals and references.

For each explainer, and for three reference maps, the localisation family
(``ctbench.localisation``) is scored on the test split against two truths on the map's grid:

- ``organ``: the allowed region of each present label (PARTITION's organ masks);
- ``lesion``: the cells that hold the label's lesion voxels, where the dataset has lesion
  masks (the phantom).

The references bound what a map can score: ``ideal`` is the truth itself, ``organ_uniform`` is
uniform over the label's allowed organs (for organ truth it equals the ideal), ``random`` is
seeded uniform noise. Each summary is the mean over scored (volume, present label) pairs with a
1,000-replicate bootstrap interval over volumes (``ctbench.bootstrap``); each pair of explainers
gets the paired difference of every metric. IoU, Dice and the hit rate cut the normalised map at
each label's threshold chosen on validation (best mean Dice, ties to the smallest) and at Otsu's
threshold of each map.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import torch
from ctbench import localisation as loc
from ctbench.bootstrap import bootstrap_mean, paired_difference
from ctbench.metrics import THRESHOLDS, choose_thresholds, column_means


def reference_maps(truth: np.ndarray, organs: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The three reference maps for ``truth`` masks ``[N, M, *grid]``; ``organs`` holds the
    allowed organs of each pair on the same grid."""
    rng = np.random.default_rng(seed)
    return {
        "ideal": truth.astype(np.float32),
        "organ_uniform": organs.astype(np.float32),
        "random": rng.random(truth.shape, dtype=np.float32),
    }


def dice_curves(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``[T, N, M]``: Dice of each normalised map cut at every threshold of THRESHOLDS."""
    maps_t, masks_t = torch.from_numpy(maps), torch.from_numpy(masks)
    return np.stack([loc.overlap(maps_t, masks_t, float(t))["dice"].numpy() for t in THRESHOLDS])


def pair_scores(
    maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric ``[N, M]`` of the pairs: the threshold-free family, then IoU, Dice and the
    hit at the per-label ``thresholds`` and at Otsu's threshold of each map."""
    maps_t, masks_t = torch.from_numpy(maps), torch.from_numpy(masks)
    out = {name: value.numpy() for name, value in loc.threshold_free(maps_t, masks_t).items()}
    tuned = loc.overlap(maps_t, masks_t, torch.from_numpy(np.asarray(thresholds)))
    otsu = loc.overlap(maps_t, masks_t, loc.otsu_thresholds(maps_t))
    out |= {f"{name}_tuned": value.numpy() for name, value in tuned.items()}
    out |= {f"{name}_otsu": value.numpy() for name, value in otsu.items()}
    return out


def score_explanations(valid, test, seed: int = 0) -> tuple[dict[str, Any], dict]:
    """``(metrics.json block, per-label columns)`` for the explainers of ``valid``/``test``
    (``ctbench.evaluation.SplitOutputs``)."""
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
        scores = {}
        for name, test_maps in maps.items():
            chosen = choose_thresholds(dice_curves(valid_maps[name], valid_masks), valid.truth)
            scores[name] = pair_scores(test_maps, test_masks, chosen)
        summary[target] = {
            name: {metric: bootstrap_mean(v, seed=seed).to_json() for metric, v in per.items()}
            for name, per in scores.items()
        }
        differences[target] = {
            f"{a} - {b}": {
                metric: paired_difference(scores[a][metric], scores[b][metric], seed=seed)
                for metric in scores[a]
            }
            for a, b in combinations(list(test.attention), 2)
        }
        for name in test.attention:
            for metric, values in scores[name].items():
                columns[f"{target}_{metric}_{name}"] = column_means(values)
    return {"explanation_metrics": summary, "explanation_differences": differences}, columns
