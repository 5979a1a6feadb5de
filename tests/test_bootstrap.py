"""Bootstrap intervals over volumes (ctbench.evaluate.bootstrap): means, coverage, pairing, NaN
pairs."""

from __future__ import annotations

import numpy as np
import pytest
from ctbench.evaluate.bootstrap import (
    bootstrap_mean,
    bootstrap_ratio,
    paired_difference,
    paired_ratio_difference,
)


def test_mean_over_scored_pairs_and_interval_around_it():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.6, 0.1, (200, 3))
    scores[0, :] = np.nan  # a volume with no scored pair
    scores[5, 1] = np.nan
    interval = bootstrap_mean(scores)
    assert interval.mean == pytest.approx(np.nanmean(scores))
    assert interval.pairs == 200 * 3 - 4 and interval.volumes == 199
    assert interval.low < interval.mean < interval.high
    # the standard error of a mean of 199 volume means (each of 3 pairs, sd 0.1)
    half_width = (interval.high - interval.low) / 2
    assert half_width == pytest.approx(1.96 * 0.1 / np.sqrt(3 * 199), rel=0.2)
    assert bootstrap_mean(scores, seed=3) != interval  # the seed draws the replicates
    assert bootstrap_mean(scores) == interval  # and fixes them


def test_coverage_of_the_interval_is_near_its_level():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        scores = rng.uniform(0, 1, (40, 2))
        interval = bootstrap_mean(scores, replicates=400, seed=trial)
        covered += interval.low <= 0.5 <= interval.high
    assert 0.88 <= covered / 200 <= 0.99


def test_no_scored_pair_gives_nan():
    interval = bootstrap_mean(np.full((4, 2), np.nan))
    assert np.isnan(interval.mean) and interval.pairs == 0


def test_pairing_narrows_the_difference_and_uses_pairs_both_score():
    rng = np.random.default_rng(2)
    volume_effect = rng.normal(0, 0.3, (100, 1))  # shared by both explainers
    a = 0.55 + volume_effect + rng.normal(0, 0.02, (100, 4))
    b = 0.50 + volume_effect + rng.normal(0, 0.02, (100, 4))
    b[0, 0] = np.nan
    result = paired_difference(a, b)
    assert result["pairs"] == 399
    assert result["difference"] == pytest.approx(np.nanmean(np.where(np.isnan(b), np.nan, a - b)))
    assert result["low"] > 0.04 and result["high"] < 0.06 and result["p_value"] < 0.01
    unpaired_width = bootstrap_mean(a).high - bootstrap_mean(a).low
    assert result["high"] - result["low"] < unpaired_width / 5
    same = paired_difference(a, a)
    assert same["difference"] == 0 and same["p_value"] == 1
    with pytest.raises(ValueError, match="share a shape"):
        paired_difference(a, b[:, :2])


def test_a_ratio_of_sums_is_bootstrapped_as_one():
    """An F1 from per-pair counts: 2 TP over 2 TP + FP + FN, summed over the scored pairs."""
    rng = np.random.default_rng(3)
    tp = rng.integers(0, 3, (150, 2)).astype(float)
    fp = rng.integers(0, 2, (150, 2)).astype(float)
    fn = rng.integers(0, 2, (150, 2)).astype(float)
    top, bottom = 2 * tp, 2 * tp + fp + fn
    top[0, 0] = bottom[0, 0] = np.nan  # an unscored pair
    interval = bootstrap_ratio(top, bottom)
    assert interval.mean == pytest.approx(np.nansum(top) / np.nansum(bottom))
    assert interval.pairs == 299 and interval.volumes == 150
    assert interval.low < interval.mean < interval.high < 1
    assert bootstrap_ratio(top, bottom) == interval  # the seed fixes the replicates
    assert np.isnan(bootstrap_ratio(np.zeros((3, 1)), np.zeros((3, 1))).mean)  # 0 / 0
    better = paired_ratio_difference((top + 1, bottom + 1), (top, bottom))
    expected = np.nansum(top + 1) / np.nansum(bottom + 1) - np.nansum(top) / np.nansum(bottom)
    assert better["difference"] == pytest.approx(expected) and better["pairs"] == 299
    assert 0 < better["low"] <= better["difference"] <= better["high"]
    assert better["p_value"] < 0.01
    same = paired_ratio_difference((top, bottom), (top, bottom))
    assert same["difference"] == 0 and same["p_value"] == 1
