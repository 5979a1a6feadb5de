"""Grad-CAM++, LayerCAM (plugins/explainers/cam_variants.py) and the Captum explainers
(plugins/explainers/captum_attributions.py): their formulas, their contract, completeness."""

from __future__ import annotations

import builtins

import ctbench
import pytest
import torch
from ctbench.testing import TINY_INPUT_SHAPE


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return ctbench.create_model("axialnet", 2, TINY_INPUT_SHAPE).eval()


def test_layercam_is_hirescam_of_the_positive_gradients():
    from ctbench.plugins.explainers.cam import HiResCAM
    from ctbench.plugins.explainers.cam_variants import LayerCAM

    generator = torch.Generator().manual_seed(0)
    z = torch.rand(2, 5, 3, 2, 2, generator=generator)
    grads = torch.randn(2, 4, 5, 3, 2, 2, generator=generator)
    layer = LayerCAM().combine(z, grads)
    torch.testing.assert_close(layer, HiResCAM().combine(z, grads.clamp(min=0)))
    torch.testing.assert_close(
        LayerCAM().combine(z, grads.abs()), HiResCAM().combine(z, grads.abs())
    )


def test_gradcam_plus_plus_follows_its_formula_cell_by_cell():
    from ctbench.plugins.explainers.cam_variants import GradCAMPlusPlus

    generator = torch.Generator().manual_seed(1)
    z = torch.rand(1, 3, 2, 2, 2, generator=generator, dtype=torch.float64)
    grads = torch.randn(1, 2, 3, 2, 2, 2, generator=generator, dtype=torch.float64)
    grads[0, 0, 0, 0, 0, 0] = 0.0  # alpha is 0 where the gradient is
    out = GradCAMPlusPlus().combine(z, grads)
    expected = torch.zeros(1, 2, 2, 2, 2, dtype=torch.float64)
    for m in range(2):
        for f in range(3):
            total = float(z[0, f].sum())
            weight = 0.0
            for index in torch.cartesian_prod(*(torch.arange(2),) * 3):
                g = float(grads[(0, m, f, *index)])
                if g != 0:
                    weight += g**2 / (2 * g**2 + total * g**3) * max(g, 0.0)
            expected[0, m] += weight * z[0, f]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(
    "name", ["layercam", "gradcampp", "input-x-gradient", "integrated-gradients"]
)
def test_every_new_explainer_keeps_the_contract(name, tiny_model):
    if "-" in name:  # the Captum explainers need the 'captum' extra (.ci/run installs it)
        pytest.importorskip("captum")
    explainer = ctbench.create_explainer(name, **({"steps": 4} if "integrated" in name else {}))
    x = torch.randn(2, *TINY_INPUT_SHAPE, generator=torch.Generator().manual_seed(2))
    maps, logits = explainer.explain(tiny_model, x)
    assert maps.shape == (2, 2, 9, 2, 2) and torch.isfinite(maps).all()
    with torch.no_grad():
        torch.testing.assert_close(logits, tiny_model(x))
    alone, _ = explainer.explain(tiny_model, x[1:])  # a sample's map ignores the batch
    torch.testing.assert_close(alone[0], maps[1], atol=1e-5, rtol=1e-4)
    one, _ = explainer.explain(tiny_model, x, classes=[1])
    torch.testing.assert_close(one[:, 0], maps[:, 1], atol=1e-5, rtol=1e-4)


def test_integrated_gradients_is_complete(tiny_model):
    """Attributions add up to s(x) - s(baseline), per class, in cells as in voxels."""
    pytest.importorskip("captum")
    x = torch.randn(1, *TINY_INPUT_SHAPE, generator=torch.Generator().manual_seed(3))
    explainer = ctbench.create_explainer("integrated-gradients", steps=48)
    cells, logits = explainer.explain(tiny_model, x)
    with torch.no_grad():
        reference = tiny_model(explainer.baseline_input(x))
    gap = (logits - reference)[0]
    torch.testing.assert_close(
        cells.sum(dim=(2, 3, 4))[0], gap, atol=0.02 * gap.abs().max(), rtol=0
    )
    voxels = ctbench.create_explainer("integrated-gradients", steps=48, grid="voxel")(tiny_model, x)
    assert voxels.shape == (1, 2, 9, 64, 64)
    torch.testing.assert_close(
        voxels.sum(dim=(2, 3, 4)), cells.sum(dim=(2, 3, 4)), atol=1e-4, rtol=1e-4
    )


def test_input_x_gradient_is_input_times_gradient(tiny_model):
    pytest.importorskip("captum")
    x = torch.randn(1, *TINY_INPUT_SHAPE, generator=torch.Generator().manual_seed(4))
    maps = ctbench.create_explainer("input-x-gradient", grid="voxel")(tiny_model, x, classes=[0])
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(tiny_model(leaf)[0, 0], leaf)
    torch.testing.assert_close(maps[:, 0], (x * grad).sum(dim=2), atol=1e-6, rtol=1e-4)


def test_a_missing_captum_is_one_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_captum(name, *args, **kwargs):
        if name.startswith("captum"):
            raise ImportError("No module named 'captum'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_captum)
    with pytest.raises(ImportError, match=r"pip install 'ctbench\[captum\]'"):
        ctbench.create_explainer("integrated-gradients")
