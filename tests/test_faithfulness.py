"""Faithfulness in 3-D (ctbench.explain.faithfulness) with known answers on a model whose score is
linear in its input, so every deletion changes the logit by exactly the removed contribution."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench.explain import faithfulness as faith
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
    # the separable running sums give the 3-D box mean of avg_pool3d (3 x 63 x 63 here)
    volume = x.permute(0, 2, 1, 3, 4).reshape(3, 1, *TINY_INPUT_SHAPE[:1], *x.shape[-2:])
    box = torch.nn.functional.avg_pool3d(
        volume, (3, 63, 63), stride=1, padding=(1, 31, 31), count_include_pad=False
    )
    torch.testing.assert_close(
        blurred, box.reshape(1, 3, *x.shape[1:2], *x.shape[-2:]).permute(0, 2, 1, 3, 4)
    )
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


def test_organ_regions_give_each_voxel_its_first_organ():
    organs = torch.zeros(1, 2, 6, 2, 2, dtype=torch.bool)  # two organs, S = 6 = 3 x 2 groups
    organs[0, 0, :3] = True  # organ 1: the first slice group
    organs[0, 1, 2:4] = True  # organ 2 overlaps organ 1 on slice 2
    regions = faith.organ_regions(organs)
    assert regions.shape == (1, 2, 3, 2, 2)
    by_slice = regions.reshape(6, 2, 2)[:, 0, 0].tolist()
    assert by_slice == [1, 1, 1, 2, 0, 0]  # slice 2 goes to the first organ; 4-5 to none
    with pytest.raises(ValueError, match="multiple of 3"):
        faith.organ_regions(torch.zeros(1, 1, 4, 2, 2, dtype=torch.bool))


CELL_TO_REGION = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3])
"""Four organ-like regions over the 12 cells of SHAPE, of 2, 3, 3 and 4 cells."""


def _organ_like_regions() -> torch.Tensor:
    return CELL_TO_REGION[faith.cell_regions((3, 2, 2), SHAPE)]


def test_organ_regions_delete_by_their_contributions(setup):
    model, x, exact = setup
    regions = _organ_like_regions().expand(x.shape)
    per_region = torch.zeros(2, 2, 4, dtype=torch.float64)
    per_region.index_add_(2, CELL_TO_REGION, exact.flatten(2).double())
    relevance = faith.region_relevance(exact, regions, 4)
    torch.testing.assert_close(relevance, 12 * per_region)  # 2 x 2 pixels x 3 slices per cell
    curves = faith.perturbation_curves(model, x, exact, steps=4, imputer="zero", regions=regions)
    ordered = per_region.sort(dim=2, descending=True).values
    with torch.no_grad():
        start = model(x).double()
    expected = start[..., None] - torch.cat(
        [torch.zeros(2, 2, 1, dtype=torch.float64), ordered.cumsum(dim=2)], dim=2
    )
    torch.testing.assert_close(curves, expected, atol=1e-4, rtol=1e-5)
    correlation = faith.faithfulness_correlation(
        model, x, exact, imputer="zero", regions=regions, fraction=0.5, subsets=6
    )
    torch.testing.assert_close(
        correlation, torch.ones(2, 2, dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_region_mean_imputer_fills_each_region_with_its_own_mean(setup):
    _, x, _ = setup
    regions = _organ_like_regions().expand(x.shape)
    filled = faith.imputed(x, (2, 2), "region-mean", regions)
    for b in range(len(x)):
        for r in range(4):
            inside = regions[b] == r
            assert torch.allclose(filled[b][inside], x[b][inside].mean().expand(int(inside.sum())))
    cells = faith.imputed(x, (2, 2), "region-mean")  # no regions: each cell's own mean
    assert torch.allclose(cells[0, 0, :, :2, :2], x[0, 0, :, :2, :2].mean().expand(3, 2, 2))


@pytest.mark.parametrize("regions", ["cells", "organs"])
def test_faithfulness_command_writes_every_map_with_intervals(
    finished_run, tiny_phantom, monkeypatch, regions
):
    import json

    from click.testing import CliRunner
    from ctbench.cli import main
    from ctbench.experiments.faithfulness_report import MEASURES

    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    args = ["faithfulness", str(finished_run), "--regions", regions, "--cases", "2"]
    result = CliRunner().invoke(main, [*args, "--steps", "3", "--subsets", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    imputer = {"cells": "blur", "organs": "region-mean"}[regions]
    report = json.loads((finished_run / "faithfulness" / f"{regions}-{imputer}.json").read_text())
    assert report["imputer"] == imputer and report["cases"] == 2
    assert set(report["maps"]) == {"hirescam", "gradcam", "ideal", "organ_uniform", "random"}
    for per in report["maps"].values():
        assert set(per) == set(MEASURES)
        for measure in MEASURES:
            summary = per[measure]
            assert summary["pairs"] > 0 and summary["volumes"] <= 2
            if measure != "correlation" or summary["low"] == summary["low"]:
                assert summary["low"] <= summary["mean"] <= summary["high"]
    for curves in report["mean_curves"].values():
        for curve in curves.values():
            assert len(curve) == 4 and curve[0] == 0  # each curve is a change from its start
    difference = report["differences"]["hirescam - gradcam"]["deletion_morf"]
    means = report["maps"]
    assert difference["difference"] == pytest.approx(
        means["hirescam"]["deletion_morf"]["mean"] - means["gradcam"]["deletion_morf"]["mean"]
    )
    assert (finished_run / "faithfulness" / f"{regions}-{imputer}.png").stat().st_size > 10_000
    assert "| hirescam" in result.output


def test_faithfulness_command_says_what_is_missing(tmp_path):
    from click.testing import CliRunner
    from ctbench.cli import main

    result = CliRunner().invoke(main, ["faithfulness", str(tmp_path)])
    assert result.exit_code != 0 and "no trained model" in result.output


def test_insertion_is_the_other_orders_deletion_read_backwards():
    """On a real model and imputer, with 36 cells in 8 steps (counts that round at .5)."""
    x = torch.randn(1, *TINY_INPUT_SHAPE, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 2, TINY_INPUT_SHAPE).eval()
    maps = ctbench.create_explainer("gradcam")(model, x)
    for order, other in (("morf", "lerf"), ("lerf", "morf")):
        insertion = faith.perturbation_curves(
            model, x, maps, mode="insertion", order=order, steps=8
        )
        deletion = faith.perturbation_curves(model, x, maps, order=other, steps=8)
        torch.testing.assert_close(insertion, faith.insertion_from_deletion(deletion))
    assert faith.step_counts(36, 8) == [0, 4, 9, 14, 18, 22, 27, 32, 36]  # halves to even
    # where rounding is not symmetric, insertion takes the mirror of deletion's counts
    assert faith.step_counts(5, 10) == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5]
    assert faith.step_counts(5, 10, "insertion") == [0, 1, 1, 1, 2, 3, 3, 3, 4, 5, 5]


def test_a_case_that_cannot_be_read_is_skipped_and_listed(finished_run, tiny_phantom, monkeypatch):
    from ctbench.core.cases import InvalidCaseError
    from ctbench.data.loader import VolumeDataset
    from ctbench.experiments.faithfulness_report import evaluate_run

    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    read = VolumeDataset.__getitem__

    def broken_first(self, index):
        if index == 0:
            raise InvalidCaseError(f"{self.case_ids[0]}: volume holds NaN")
        return read(self, index)

    monkeypatch.setattr(VolumeDataset, "__getitem__", broken_first)
    report = evaluate_run(
        finished_run, cases=2, steps=2, subsets=3, references=False, progress=False
    )
    assert [case["error"] for case in report["skipped"]] == [
        f"{report['skipped'][0]['case_id']}: volume holds NaN"
    ]
    assert all(per["deletion_morf"]["volumes"] <= 1 for per in report["maps"].values())
