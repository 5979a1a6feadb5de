"""Bootstrap confidence intervals over volumes for per-(volume, label) scores.

An explanation metric scores each (volume, label) pair, NaN where the pair is not scored (an
empty mask, an absent label). Its summary is the mean over scored pairs; its uncertainty comes
from the volumes, which are the sampled units: each replicate draws N volumes with replacement
(all the pairs of a drawn volume come with it) and takes the mean again. The interval is the
percentile interval of the replicates (1,000 by default, as CheXlocalize). A paired difference
uses the same draws for both explainers and only the pairs both score, so the correlation
between two explainers on the same volumes narrows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import numpy as np

REPLICATES = 1000


@dataclass(frozen=True)
class Interval:
    """A mean over scored pairs with its bootstrap percentile interval."""

    mean: float
    low: float
    high: float
    pairs: int  # scored pairs
    volumes: int  # volumes with at least one scored pair

    def to_json(self) -> dict:
        return asdict(self)


@cache
def _draw_counts(n: int, replicates: int, seed: int) -> np.ndarray:
    """``[replicates, n]``: how many times each volume is drawn in each replicate (the same
    draws for every metric and explainer of a split: cached, read-only)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, (replicates, n))
    counts = np.zeros((replicates, n), dtype=np.int64)
    np.add.at(counts, (np.arange(replicates)[:, None], draws), 1)
    counts.flags.writeable = False
    return counts


def _replicate_means(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    scored = np.isfinite(scores)
    sums = np.where(scored, scores, 0.0).reshape(len(scores), -1).sum(1)
    sizes = scored.reshape(len(scores), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ sums) / (counts @ sizes)


def bootstrap_mean(
    scores: np.ndarray, *, replicates: int = REPLICATES, seed: int = 0, level: float = 0.95
) -> Interval:
    """Mean of ``scores [N, ...]`` over its finite entries, with a percentile interval from
    resampling the N volumes (rows)."""
    scores = np.asarray(scores, dtype=float)
    scored = np.isfinite(scores)
    pairs, volumes = int(scored.sum()), int(scored.reshape(len(scores), -1).any(1).sum())
    if pairs == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, 0)
    mean = float(scores[scored].mean())
    means = _replicate_means(scores, _draw_counts(len(scores), replicates, seed))
    low, high = np.nanpercentile(means, [50 * (1 - level), 50 * (1 + level)])
    return Interval(mean, float(low), float(high), pairs, volumes)


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    replicates: int = REPLICATES,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Mean of ``a`` minus mean of ``b`` over the pairs both score, its percentile interval
    from the same volume draws, and the two-sided bootstrap p-value (twice the share of
    replicates on the far side of zero, at most 1)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must share a shape: {a.shape} vs {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return {
            "difference": float("nan"),
            "low": float("nan"),
            "high": float("nan"),
            "p_value": float("nan"),
            "pairs": 0,
        }
    difference = np.where(both, a - b, np.nan)
    counts = _draw_counts(len(a), replicates, seed)
    means = _replicate_means(difference, counts)
    means = means[np.isfinite(means)]
    low, high = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    observed = float(difference[both].mean())
    far = np.mean(means <= 0) if observed > 0 else np.mean(means >= 0)
    return {
        "difference": observed,
        "low": float(low),
        "high": float(high),
        "p_value": float(min(1.0, 2 * far)),
        "pairs": int(both.sum()),
    }
