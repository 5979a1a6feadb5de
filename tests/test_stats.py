"""ctbench.stats: fast DeLong against its brute-force definition, CIs, FDR."""

from __future__ import annotations

import numpy as np
import pytest
from ctbench.stats import (
    auroc_ci,
    benjamini_hochberg,
    delong_covariance,
    delong_test,
)
from scipy import stats
from sklearn.metrics import roc_auc_score


def brute_force_delong(y, scores):
    """DeLong 1988 by its definition: psi over every (positive, negative) pair."""
    y = np.asarray(y).astype(bool)
    scores = np.atleast_2d(scores).astype(float)
    x, z = scores[:, y], scores[:, ~y]
    psi = (x[:, :, None] > z[:, None, :]) + 0.5 * (x[:, :, None] == z[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    m, n = x.shape[1], z.shape[1]
    covariance = np.cov(v10) / m + np.cov(v01) / n
    return psi.mean(axis=(1, 2)), np.atleast_2d(covariance)


def brute_force_test(y, a, b):
    aucs, cov = brute_force_delong(y, np.stack([a, b]))
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return aucs, z, 2 * stats.norm.sf(abs(z))


@pytest.mark.parametrize("ties", [False, True])
def test_fast_delong_equals_brute_force(ties):
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(8, 60))
        y = rng.random(n) < 0.4
        y[:2] = [True, False]
        a = y * 0.8 + rng.normal(size=n)
        b = y * 0.3 + rng.normal(size=n)
        if ties:  # heavy ties, within and across classes
            a, b = np.round(a), np.round(b * 2) / 2
        aucs, cov = delong_covariance(y, np.stack([a, b]))
        want_aucs, want_cov = brute_force_delong(y, np.stack([a, b]))
        np.testing.assert_allclose(aucs, want_aucs, atol=1e-12)
        np.testing.assert_allclose(cov, want_cov, atol=1e-12)
        assert aucs[0] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
        result = delong_test(y, a, b)
        (auc_a, auc_b), z, p = brute_force_test(y, a, b)
        assert (result.auc_a, result.auc_b) == pytest.approx((auc_a, auc_b), abs=1e-12)
        assert result.z == pytest.approx(z, rel=1e-9)
        assert result.p_value == pytest.approx(p, rel=1e-9)


def test_delong_known_values():
    # A hand-checkable case: 2 positives, 2 negatives, perfect vs one swapped pair.
    y = np.array([1, 1, 0, 0])
    perfect = np.array([0.9, 0.8, 0.1, 0.2])
    swapped = np.array([0.9, 0.15, 0.1, 0.2])
    result = delong_test(y, perfect, swapped)
    assert result.auc_a == 1.0 and result.auc_b == 0.75
    assert 0 < result.p_value < 1 and result.z > 0


def test_identical_scores_give_p_one():
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.7, 0.3, 0.4, 0.9, 0.5])
    result = delong_test(y, s, s)
    assert result.z == 0.0 and result.p_value == 1.0


def test_ci_covers_and_is_clipped():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    score = y * 1.0 + rng.normal(size=200)
    auc, low, high = auroc_ci(y, score)
    assert low < auc < high and auc == pytest.approx(roc_auc_score(y, score))
    _, variance = brute_force_delong(y, score)
    half = 1.959963984540054 * np.sqrt(variance[0, 0])
    assert (low, high) == pytest.approx((auc - half, auc + half))
    perfect = auroc_ci(y, y.astype(float) + rng.random(200) * 0.1)
    assert perfect[0] == 1.0 and perfect[2] == 1.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one positive and one negative"):
        delong_test(np.zeros(4), np.arange(4.0), np.arange(4.0))
    with pytest.raises(ValueError, match="NaN"):
        auroc_ci(np.array([0, 1, 0]), np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match="binary"):
        auroc_ci(np.array([0, 2, 0]), np.array([0.1, 0.3, 0.2]))


def test_benjamini_hochberg_matches_definition():
    p = np.array([0.01, 0.04, 0.03, 0.20, np.nan, 0.002])
    adjusted = benjamini_hochberg(p)
    finite = p[np.isfinite(p)]
    order = np.argsort(finite)
    n = len(finite)
    raw = finite[order] * n / np.arange(1, n + 1)
    want_sorted = np.minimum.accumulate(raw[::-1])[::-1].clip(max=1)
    want = np.empty(n)
    want[order] = want_sorted
    np.testing.assert_allclose(adjusted[np.isfinite(p)], want)
    assert np.isnan(adjusted[4])
