"""Parity with Quantus (the field's explanation-evaluation library, in the test extra) on a 2-D,
one-label case where Quantus is right: no ties, non-empty masks. Where the two differ by
design, the test says so: Quantus counts a maximum tied with a cell outside the mask as a hit;
ctbench shares ties (docs/explanations.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctbench.evaluate import localisation as loc

quantus = pytest.importorskip("quantus")

N, H, W = 4, 8, 8


class NoModel(torch.nn.Module):
    """Localisation metrics read no model; Quantus still asks for one."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 2)


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    attributions = rng.random((N, 1, H, W))  # continuous: no ties
    masks = np.zeros((N, 1, H, W))
    masks[:, :, 2:5, 3:7] = 1
    inputs = rng.random((N, 1, H, W)).astype(np.float32)
    return inputs, attributions, masks


def quantus_scores(metric, inputs, attributions, masks) -> np.ndarray:
    return np.asarray(
        metric(
            model=NoModel(),
            x_batch=inputs,
            y_batch=np.zeros(N, int),
            a_batch=attributions,
            s_batch=masks,
            device="cpu",
        ),
        dtype=float,
    )


def ours(function, attributions, masks, **options) -> np.ndarray:
    """The same pairs as ctbench sees them: ``[N, 1 label, 1 slice, H, W]``."""
    maps = torch.from_numpy(attributions[:, :, None])
    truth = torch.from_numpy(masks[:, :, None] > 0)
    return function(maps, truth, **options)[:, 0].numpy()


@pytest.mark.parametrize(
    ("name", "metric", "function", "options"),
    [
        ("pointing game", "PointingGame", loc.pointing_game, {}),
        ("relevance mass", "RelevanceMassAccuracy", loc.mass_inside, {}),
        ("relevance rank", "RelevanceRankAccuracy", loc.rank_accuracy, {}),
        ("top-k (k = 16)", "TopKIntersection", loc.top_k_intersection, {"fraction": 16 / 64}),
        ("AUC", "AUC", loc.map_auroc, {}),
    ],
)
def test_ctbench_agrees_with_quantus_where_quantus_is_right(case, name, metric, function, options):
    inputs, attributions, masks = case
    settings = {"disable_warnings": True}
    if metric == "TopKIntersection":
        settings |= {"k": 16, "return_aggregate": False}
    theirs = quantus_scores(getattr(quantus, metric)(**settings), inputs, attributions, masks)
    np.testing.assert_allclose(ours(function, attributions, masks, **options), theirs, atol=1e-6)


def test_where_quantus_and_ctbench_differ_by_design(case):
    """A maximum tied between a cell inside the mask and one outside: a hit for Quantus, half
    a hit for ctbench (a flat map, the extreme case, Quantus refuses to score)."""
    inputs, attributions, masks = case
    tied = attributions.copy()
    tied[:, 0, 3, 4] = tied[:, 0, 0, 0] = 2.0  # (3, 4) is inside the mask, (0, 0) is not
    theirs = quantus_scores(quantus.PointingGame(disable_warnings=True), inputs, tied, masks)
    assert theirs.tolist() == [1.0] * N
    assert ours(loc.pointing_game, tied, masks).tolist() == [0.5] * N
