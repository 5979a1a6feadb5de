"""Bootstrap confidence intervals over volumes for per-(volume, label) scores.

An explanation metric scores each (volume, label) pair, NaN where the pair is not scored (an
empty mask, an absent label). Its summary is the mean over scored pairs; its uncertainty comes
from the volumes, which are the sampled units: each replicate draws N volumes with replacement
(all the pairs of a drawn volume come with it) and takes the mean again. The interval is the
percentile interval of the replicates (1,000 by default, as CheXlocalize). A paired difference
uses the same draws for both explainers and only the pairs both score, so the correlation
between two explainers on the same volumes narrows it. A summary that is a ratio of sums over
pairs (an F1 from counts) is bootstrapped the same way (a mean is the ratio of the scores' sum
to the number of scored pairs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import numpy as np

REPLICATES = 1000
NO_DIFFERENCE = {"difference": np.nan, "low": np.nan, "high": np.nan, "p_value": np.nan, "pairs": 0}
"""A paired difference with no pair scored by both."""


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


def _ones_where_scored(scores) -> tuple[np.ndarray, np.ndarray]:
    """A mean over scored pairs as a ratio of sums: the scores over a count of one per pair."""
    scores = np.asarray(scores, dtype=float)
    return scores, np.where(np.isfinite(scores), 1.0, np.nan)


def bootstrap_mean(
    scores: np.ndarray, *, replicates: int = REPLICATES, seed: int = 0, level: float = 0.95
) -> Interval:
    """Mean of ``scores [N, ...]`` over its finite entries, with a percentile interval from
    resampling the N volumes (rows)."""
    return bootstrap_ratio(
        *_ones_where_scored(scores), replicates=replicates, seed=seed, level=level
    )


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
    if np.shape(a) != np.shape(b):
        raise ValueError(f"paired scores must share a shape: {np.shape(a)} vs {np.shape(b)}")
    return paired_ratio_difference(
        _ones_where_scored(a),
        _ones_where_scored(b),
        replicates=replicates,
        seed=seed,
        level=level,
    )


def _difference_summary(observed: float, replicated: np.ndarray, pairs: int, level: float):
    """The observed difference, the percentile interval of its replicates and the two-sided
    bootstrap p-value (twice the share of replicates on the far side of zero, at most 1)."""
    replicated = replicated[np.isfinite(replicated)]
    low, high = np.percentile(replicated, [50 * (1 - level), 50 * (1 + level)])
    far = np.mean(replicated <= 0) if observed > 0 else np.mean(replicated >= 0)
    return {
        "difference": observed,
        "low": float(low),
        "high": float(high),
        "p_value": float(min(1.0, 2 * far)),
        "pairs": pairs,
    }


def _ratio_parts(numerator, denominator) -> tuple[np.ndarray, np.ndarray]:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    if numerator.shape != denominator.shape:
        raise ValueError(f"numerator {numerator.shape} and denominator {denominator.shape} differ")
    scored = np.isfinite(numerator) & np.isfinite(denominator)
    return np.where(scored, numerator, np.nan), np.where(scored, denominator, np.nan)


def _replicate_ratios(numerator: np.ndarray, denominator: np.ndarray, counts) -> np.ndarray:
    top = np.nan_to_num(numerator).reshape(len(numerator), -1).sum(1)
    bottom = np.nan_to_num(denominator).reshape(len(denominator), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ top) / (counts @ bottom)


def bootstrap_ratio(
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    replicates: int = REPLICATES,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """A ratio of sums over the scored pairs (both finite), such as an F1 from counts
    (2 TP over 2 TP + FP + FN), with a percentile interval from resampling the volumes (rows)."""
    numerator, denominator = _ratio_parts(numerator, denominator)
    scored = np.isfinite(numerator)
    pairs, volumes = int(scored.sum()), int(scored.reshape(len(scored), -1).any(1).sum())
    total = float(np.nansum(denominator))
    if pairs == 0 or total == 0:
        return Interval(float("nan"), float("nan"), float("nan"), pairs, volumes)
    ratios = _replicate_ratios(numerator, denominator, _draw_counts(len(scored), replicates, seed))
    low, high = np.nanpercentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(np.nansum(numerator)) / total, float(low), float(high), pairs, volumes)


def paired_ratio_difference(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    *,
    replicates: int = REPLICATES,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """The ratio of sums of ``a = (numerator, denominator)`` minus that of ``b`` over the pairs
    both score, as :func:`paired_difference` does for means (same draws, interval, p-value)."""
    (top_a, bottom_a), (top_b, bottom_b) = _ratio_parts(*a), _ratio_parts(*b)
    both = np.isfinite(top_a) & np.isfinite(top_b)
    keep = [np.where(both, part, np.nan) for part in (top_a, bottom_a, top_b, bottom_b)]
    totals = [float(np.nansum(part)) for part in keep]
    if not both.any() or totals[1] == 0 or totals[3] == 0:
        return dict(NO_DIFFERENCE)
    counts = _draw_counts(len(both), replicates, seed)
    replicated = _replicate_ratios(keep[0], keep[1], counts) - _replicate_ratios(
        keep[2], keep[3], counts
    )
    observed = totals[0] / totals[1] - totals[2] / totals[3]
    return _difference_summary(observed, replicated, int(both.sum()), level)
