"""AUROC statistics: DeLong variance, confidence intervals, paired tests, FDR (paper Table 7).

DeLong's method (DeLong, DeLong and Clarke-Pearson 1988) estimates the variance of an AUROC,
and the covariance of two AUROCs measured on the same cases, from the structural components
of the Mann-Whitney statistic. The fast algorithm of Sun and Xu (2014) computes them from
mid-ranks in O(n log n) instead of comparing every positive with every negative; ties count
one half, as in the AUROC itself. ``tests/test_stats.py`` checks it against the brute-force
definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DeLongResult:
    """Paired DeLong test of two AUROCs on the same cases (two-sided)."""

    auc_a: float
    auc_b: float
    z: float
    p_value: float


def _split_by_truth(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scores [K, N]`` -> (positives ``[K, m]``, negatives ``[K, n]``), checking the input."""
    y = np.asarray(y)
    if y.ndim != 1 or scores.shape[-1] != len(y):
        raise ValueError(f"truth of shape {y.shape} does not match scores of shape {scores.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("truth must be binary (0/1 or booleans)")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    positive = y.astype(bool)
    if positive.all() or not positive.any():
        raise ValueError("AUROC needs at least one positive and one negative case")
    return scores[:, positive], scores[:, ~positive]


def structural_components(
    y: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sun and Xu's fast DeLong: ``(aucs [K], V10 [K, m], V01 [K, n])`` for ``scores [K, N]``.

    ``V10[k, i]`` is the fraction of negatives that positive ``i`` outranks (ties one half);
    ``V01[k, j]`` the fraction of positives that outrank negative ``j``.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    positives, negatives = _split_by_truth(y, scores)
    m, n = positives.shape[1], negatives.shape[1]
    rank_x = stats.rankdata(positives, axis=1)  # mid-ranks within the positives
    rank_y = stats.rankdata(negatives, axis=1)
    rank_z = stats.rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    v10 = (rank_z[:, :m] - rank_x) / n
    v01 = 1.0 - (rank_z[:, m:] - rank_y) / m
    aucs = v10.mean(axis=1)
    return aucs, v10, v01


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(aucs [K], covariance [K, K])`` of K scorings of the same cases."""
    aucs, v10, v01 = structural_components(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / m + s01 / n


def auroc_ci(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(auc, low, high)``: the normal-approximation CI from the DeLong variance, in [0, 1]."""
    aucs, covariance = delong_covariance(y, np.asarray(score)[None])
    auc, se = float(aucs[0]), float(np.sqrt(max(covariance[0, 0], 0.0)))
    half = stats.norm.ppf(0.5 + level / 2) * se
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def delong_test(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLongResult:
    """Paired two-sided DeLong test of ``AUROC(score_a) == AUROC(score_b)`` on the same cases.

    Two identical scorings (zero variance of the difference) give ``z = 0, p = 1``.
    """
    aucs, covariance = delong_covariance(y, np.stack([np.asarray(score_a), np.asarray(score_b)]))
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = aucs[0] - aucs[1]
    if variance <= 1e-15:
        z = 0.0 if abs(difference) < 1e-12 else float(np.sign(difference) * np.inf)
    else:
        z = float(difference / np.sqrt(variance))
    p_value = float(2 * stats.norm.sf(abs(z)))
    return DeLongResult(float(aucs[0]), float(aucs[1]), z, p_value)


def benjamini_hochberg(p_values) -> np.ndarray:
    """FDR-adjusted p-values over labels (Benjamini-Hochberg), NaN kept where a test was absent."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    present = np.isfinite(p)
    if present.any():
        adjusted[present] = stats.false_discovery_control(p[present], method="bh")
    return adjusted
