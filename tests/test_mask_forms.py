"""``--mask-loss-form paper|per-case|two-sided`` (issue 30, part 2): known answers on hand-built
maps, and the count each form averages over (a rank's weight in a global batch)."""

from __future__ import annotations

import math

import pytest
import torch
from ctbench.experiments.run_config import RunConfig
from ctbench.train.losses import mask_loss, mask_loss_count


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# one volume, two labels, a grid of 1 x 1 x 2 cells. Label 0 is present and allowed in its
# first cell (2.0, not penalised); its second cell (-1.0, negative evidence) is forbidden.
# Label 1 is absent: both its cells (0.0 and 3.0) are forbidden.
MAPS = torch.tensor([[[[[2.0, -1.0]]], [[[0.0, 3.0]]]]])
ALLOWED = torch.tensor([[[[[True, False]]], [[[False, False]]]]])


def test_the_papers_form_is_the_mean_over_every_forbidden_cell():
    want = (softplus(-1.0) + softplus(0.0) + softplus(3.0)) / 3
    assert float(mask_loss(MAPS, ALLOWED)) == pytest.approx(want)
    assert float(mask_loss(MAPS, ALLOWED, "paper")) == pytest.approx(want)
    assert mask_loss_count(ALLOWED, "paper") == 3


def test_per_case_weighs_each_volume_and_label_alike():
    # label 0's one forbidden cell weighs as much as label 1's two together
    want = (softplus(-1.0) + (softplus(0.0) + softplus(3.0)) / 2) / 2
    assert float(mask_loss(MAPS, ALLOWED, "per-case")) == pytest.approx(want)
    assert mask_loss_count(ALLOWED, "per-case") == 2
    # a pair with no forbidden cell (label 0 allowed everywhere) is left out, not counted as 0
    allowed = ALLOWED.clone()
    allowed[0, 0] = True
    got = float(mask_loss(MAPS, allowed, "per-case"))
    assert got == pytest.approx((softplus(0.0) + softplus(3.0)) / 2)
    assert mask_loss_count(allowed, "per-case") == 1


def test_two_sided_charges_negative_evidence_as_positive():
    want = (softplus(1.0) + softplus(0.0) + softplus(3.0)) / 3  # |-1| costs what +1 would
    assert float(mask_loss(MAPS, ALLOWED, "two-sided")) == pytest.approx(want)
    flipped = MAPS.clone()
    flipped[0, 0, 0, 0, 1] = 1.0
    assert float(mask_loss(flipped, ALLOWED, "two-sided")) == pytest.approx(want)
    # the paper's form makes the same negative evidence almost free
    assert float(mask_loss(flipped, ALLOWED)) > float(mask_loss(MAPS, ALLOWED))


def test_every_form_is_zero_without_forbidden_cells_and_differentiable():
    maps = MAPS.clone().requires_grad_(True)
    for form in ("paper", "per-case", "two-sided"):
        assert float(mask_loss(maps, torch.ones_like(ALLOWED), form).detach()) == 0.0
        maps.grad = None
        mask_loss(maps, ALLOWED, form).backward()
        assert maps.grad[0, 0, 0, 0, 0] == 0  # the allowed cell takes no gradient
        assert maps.grad[0, 1].abs().sum() > 0
    with pytest.raises(ValueError, match="unknown mask loss form 'both'"):
        mask_loss(MAPS, ALLOWED, "both")


def test_the_run_option_is_checked_and_recorded():
    from ctbench.experiments.run_options import config_from_options

    config = config_from_options(
        {"arch": "axialnet", "mask_loss": True, "mask_loss_form": "per-case"}
    )
    assert config.mask_loss_form == "per-case" and config.to_json()["mask_loss_form"] == "per-case"
    assert RunConfig(arch="axialnet").resolved().mask_loss_form == "paper"
    with pytest.raises(ValueError, match="--mask-loss-form: 'both' is not one of paper"):
        config_from_options({"arch": "axialnet", "mask_loss_form": "both"})
