"""Faithfulness in 3-D (ctbench.faithfulness) with known answers on a model whose score is
linear in its input, so every deletion changes the logit by exactly the removed contribution."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench import faithfulness as faith
from ctbench.testing import TINY_INPUT_SHAPE
from torch import nn

SHAPE = (3, 3, 4, 4)  # [H, 3, Y, X]: a 3 x 2 x 2 grid of 2 x 2-pixel cells


class Linear(nn.Module):
    """logit_m = sum(w_m * x): a cell's contribution is exactly sum over it of w_m * x."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(weights)  # [M, H, 3, Y, X]

    def forward(self, x):
        return torch.einsum("bhcyx,mhcyx->bm", x, self.w)


def contributions(model: Linear, x: torch.Tensor) -> torch.Tensor:
    """The exact per-cell map ``[B, M, 3, 2, 2]``."""
    product = x[:, None] * model.w[None]  # [B, M, H, 3, Y, X]
    summed = product.sum(dim=3)  # [B, M, H, Y, X]
    return summed.reshape(*summed.shape[:3], 2, 2, 2, 2).sum(dim=(4, 6)).detach()


@pytest.fixture
def setup():
    generator = torch.Generator().manual_seed(0)
    model = Linear(torch.randn(2, *SHAPE, generator=generator))
    x = torch.randn(2, *SHAPE, generator=generator)
    return model, x, contributions(model, x)


def test_deletion_curve_falls_by_the_removed_contributions(setup):
    model, x, exact = setup
    curves = faith.perturbation_curves(model, x, exact, steps=12, imputer="zero")  # 12 cells
    ordered = exact.flatten(2).sort(dim=2, descending=True).values
    with torch.no_grad():
        start = model(x).double()
    expected = (
        start[..., None] - torch.cat([torch.zeros(2, 2, 1), ordered.cumsum(dim=2)], dim=2).double()
    )
    torch.testing.assert_close(curves, expected, atol=1e-4, rtol=1e-5)
    insertion = faith.perturbation_curves(
        model, x, exact, steps=12, mode="insertion", imputer="zero"
    )
    torch.testing.assert_close(insertion[..., -1], start, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(insertion[..., 0], torch.zeros_like(start), atol=1e-4, rtol=0)


def test_the_exact_map_deletes_fastest_and_inverting_it_slowest(setup):
    model, x, exact = setup
    area = {
        name: faith.curve_area(faith.perturbation_curves(model, x, maps, steps=12, imputer="zero"))
        for name, maps in (
            ("exact", exact),
            ("random", torch.rand(exact.shape, generator=torch.Generator().manual_seed(1))),
            ("inverted", -exact),
        )
    }
    assert (area["exact"] < area["random"]).all() and (area["random"] < area["inverted"]).all()
    lerf = faith.curve_area(
        faith.perturbation_curves(model, x, exact, steps=12, order="lerf", imputer="zero")
    )
    assert (lerf > area["exact"]).all()


def test_constant_maps_give_a_seeded_random_order(setup):
    model, x, _ = setup
    flat = torch.zeros(2, 2, 3, 2, 2)
    one = faith.perturbation_curves(model, x, flat, steps=12, imputer="zero", seed=1)
    assert torch.equal(
        one, faith.perturbation_curves(model, x, flat, steps=12, imputer="zero", seed=1)
    )
    assert not torch.equal(
        one, faith.perturbation_curves(model, x, flat, steps=12, imputer="zero", seed=2)
    )


def test_faithfulness_correlation_is_one_for_exact_contributions(setup):
    model, x, exact = setup
    exact_score = faith.faithfulness_correlation(model, x, exact, imputer="zero", fraction=0.25)
    torch.testing.assert_close(
        exact_score, torch.ones(2, 2, dtype=torch.float64), atol=1e-6, rtol=0
    )
    noise = torch.rand(exact.shape, generator=torch.Generator().manual_seed(3))
    assert (
        faith.faithfulness_correlation(model, x, noise, imputer="zero", fraction=0.25) < 0.9
    ).all()


def test_imputers_and_a_real_model():
    x = torch.randn(1, *TINY_INPUT_SHAPE, generator=torch.Generator().manual_seed(4))
    blurred = faith.imputed(x, (2, 2), "blur")
    assert blurred.shape == x.shape and blurred.std() < x.std()  # a local mean
    assert torch.allclose(faith.imputed(x, (2, 2), "mean"), x.mean().expand_as(x))
    with pytest.raises(ValueError, match="unknown imputer"):
        faith.imputed(x, (2, 2), "inpaint")
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 2, TINY_INPUT_SHAPE).eval()
    maps = ctbench.create_explainer("hirescam")(model, x)
    curves = faith.perturbation_curves(model, x, maps, classes=[1], steps=4)
    assert curves.shape == (1, 1, 5) and torch.isfinite(curves).all()
    with torch.no_grad():
        assert float(curves[0, 0, 0]) == pytest.approx(float(model(x)[0, 1]), abs=1e-4)
