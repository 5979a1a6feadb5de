"""ctbench.evaluate.stats: fast DeLong against its brute-force definition, CIs, FDR."""

from __future__ import annotations

import numpy as np
import pytest
from ctbench.evaluate.stats import (
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
    """Two positives, two negatives; derived on paper. A is perfect: V10 = V01 = [1, 1]. B
    ranks 0.15 over 0.1 only: V10 = [1, 1/2], V01 = [1, 1/2], AUC 3/4. A's components are
    constant, so Var(A - B) = Var(V10_B) / 2 + Var(V01_B) / 2 = 1/8 / 2 + 1/8 / 2 = 1/8, and
    z = (1 - 3/4) / sqrt(1/8) = 1 / sqrt(2), p = 2 (1 - Phi(1 / sqrt(2))) = erfc(1/2)."""
    from math import erfc, sqrt

    y = np.array([1, 1, 0, 0])
    perfect = np.array([0.9, 0.8, 0.1, 0.2])
    swapped = np.array([0.9, 0.15, 0.1, 0.2])
    result = delong_test(y, perfect, swapped)
    assert result.auc_a == 1.0 and result.auc_b == 0.75
    assert result.z == pytest.approx(1 / sqrt(2), rel=1e-12)
    assert result.p_value == pytest.approx(erfc(0.5), rel=1e-12)
    reverse = delong_test(y, swapped, perfect)
    assert reverse.z == pytest.approx(-1 / sqrt(2)) and reverse.p_value == result.p_value


def test_zero_variance_with_different_aurocs_gives_infinite_z():
    """A perfect scorer and a constant one: both have constant structural components (zero
    variance of the difference) but AUROCs 1 and 1/2, so z is +inf and p is 0."""
    y = np.array([1, 1, 0, 0, 1])
    result = delong_test(y, y * 2.0, np.full(5, 0.3))
    assert (result.auc_a, result.auc_b) == (1.0, 0.5)
    assert result.z == np.inf and result.p_value == 0.0
    assert delong_test(y, np.full(5, 0.3), y * 2.0).z == -np.inf


# pROC's aSAH data (Turck et al. 2010; pROC's data(aSAH)), 113 patients in pROC's row order:
# outcome (P = poor, G = good), then the wfns and s100b columns.
ASAH = """
G1 .13 G1 .14 G1 .10 G1 .04 P3 .13 P2 .10 G5 .47 P4 .16 G1 .18 G2 .10 P5 .12 G2 .10 P5 .44
P5 .71 G1 .04 G2 .08 P5 .49 G2 .04 P2 .07 P5 .33 P2 .09 G1 .09 P1 .07 G1 .11 G1 .07 G2 .17
G1 .07 G2 .11 G1 .13 G1 .19 G3 .05 G4 .16 P2 .41 G1 .14 G4 .34 P5 .35 P4 .48 G1 .09 P4 .96
P2 .25 G5 .50 G5 .46 G1 .16 G1 .07 G2 .43 G4 .45 G1 .11 G1 .08 G2 .09 P5 .86 P5 .52 G2 .08
G1 .06 G2 .13 P5 2.07 G1 .10 G2 .14 G2 .15 P2 .07 G1 .06 P5 .77 G1 .05 G1 .09 P2 .30 P5 .03
P2 .09 G1 .04 P4 .23 P5 .70 G2 .09 P4 .27 P4 .71 P1 .08 P4 .26 G1 .08 G2 .16 G1 .09 P4 .13
P2 .10 G1 .08 P2 .11 G3 .33 G2 .11 G4 .28 G2 .07 G1 .10 G4 .32 P5 .22 G1 .07 G1 .05 G5 .24
G4 .38 G2 .10 G2 .15 G1 .08 G1 .14 G1 .10 G3 .07 G1 .04 G2 .19 P5 .56 P2 .14 P2 .58 P5 .32
P5 .82 P5 .74 G2 .15 G4 .47 G4 .17 P5 .44 G1 .15 G1 .50 G1 .48
"""


def test_delong_matches_proc_on_its_asah_example():
    """pROC's documented example: roc.test(roc(aSAH$outcome, aSAH$s100b),
    roc(aSAH$outcome, aSAH$wfns)) prints Z = -2.209, p-value = 0.02718 and AUCs 0.7313686,
    0.8236789; ci.auc of the s100b curve prints 95% CI 0.6301-0.8326 (DeLong)."""
    fields = ASAH.split()
    outcome = np.array([f[0] == "P" for f in fields[0::2]])
    wfns = np.array([float(f[1:]) for f in fields[0::2]])
    s100b = np.array([float(f) for f in fields[1::2]])
    assert len(outcome) == 113 and outcome.sum() == 41
    result = delong_test(outcome, s100b, wfns)
    assert (round(result.auc_a, 7), round(result.auc_b, 7)) == (0.7313686, 0.8236789)
    assert round(result.z, 3) == -2.209 and round(result.p_value, 5) == 0.02718
    _, low, high = auroc_ci(outcome, s100b)
    assert (round(low, 4), round(high, 4)) == (0.6301, 0.8326)


def test_ci_covers_and_is_clipped():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    score = y * 1.0 + rng.normal(size=200)
    auc, low, high = auroc_ci(y, score)
    assert low < auc < high and auc == pytest.approx(roc_auc_score(y, score))
    _, variance = brute_force_delong(y, score)
    half = 1.959963984540054 * np.sqrt(variance[0, 0])
    assert (low, high) == pytest.approx((auc - half, auc + half))
    # Derived on paper: positives 4, 1.5 and negatives 1, 2 give V10 = V01 = [1, 1/2],
    # AUC 3/4, variance 1/8 / 2 + 1/8 / 2 = 1/8: 3/4 + 1.96 sqrt(1/8) = 1.443 is clipped to 1.
    auc, low, high = auroc_ci(np.array([1, 1, 0, 0]), np.array([4.0, 1.5, 1.0, 2.0]))
    assert auc == 0.75 and high == 1.0
    assert low == pytest.approx(0.75 - 1.959963984540054 * np.sqrt(1 / 8), rel=1e-12)
    # and clipped at both ends: AUC 1/2 with standard error 1/2
    assert auroc_ci(np.array([0, 1, 1]), np.array([1.0, 2.0, -1.0])) == (0.5, 0.0, 1.0)


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
