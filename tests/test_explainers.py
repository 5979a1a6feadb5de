"""HiResCAM and Grad-CAM: shapes, the closed form, the faithfulness identities (paper 3.4-3.5)."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench.explain.explanations import (
    NotExplainableError,
    relu_minmax,
    resample_to_slices,
    upsample_to_volume,
)
from ctbench.plugins.explainers.cam import HiResCAM, has_closed_form

SHAPE = (9, 3, 64, 64)
N_CLASSES = 5
EXPLAINABLE = [
    name
    for name in ctbench.list_plugins()["architectures"]
    if ctbench.create_model(name, 2, SHAPE).explainable
]


def build(name, shape=SHAPE, seed=0):
    torch.manual_seed(seed)
    return ctbench.create_model(name, N_CLASSES, shape).eval()


def batch(seed=1, shape=SHAPE, size=2):
    return torch.rand(size, *shape, generator=torch.Generator().manual_seed(seed)) - 0.449


def test_both_explainers_are_registered():
    assert {"hirescam", "gradcam"} <= set(ctbench.list_plugins()["explainers"])


@pytest.mark.parametrize("explainer", ["hirescam", "gradcam"])
@pytest.mark.parametrize("name", EXPLAINABLE)
def test_maps_cover_every_class_on_the_slice_group_grid(name, explainer):
    model = build(name)
    x = batch()
    maps = ctbench.create_explainer(explainer)(model, x)
    d1, d2 = model.representation_shape[1:]
    assert maps.shape == (2, N_CLASSES, SHAPE[0], d1, d2)
    assert torch.isfinite(maps).all()
    some = ctbench.create_explainer(explainer)(model, x, classes=[3, 1])
    torch.testing.assert_close(some, maps[:, [3, 1]], rtol=1e-4, atol=1e-6)
    assert not model.cam_layer._forward_hooks, "explainer left a hook behind"


@pytest.mark.parametrize(
    ("explainer", "options"),
    [("hirescam", {"closed_form": True}), ("hirescam", {"closed_form": False}), ("gradcam", {})],
)
def test_explainers_work_when_the_caller_disables_gradients(explainer, options):
    """Evaluation runs under torch.no_grad; the autograd path must still get its gradients."""
    model, x = build("axialnet"), batch()
    want = ctbench.create_explainer(explainer, **options)(model, x)
    with torch.no_grad():
        got = ctbench.create_explainer(explainer, **options)(model, x)
    torch.testing.assert_close(got, want)
    assert not got.requires_grad


def test_3d_maps_are_resampled_onto_the_input_slice_groups():
    model = build("3dconv", shape=(16, 3, 128, 128))
    assert model.representation_shape[0] == 5
    maps = ctbench.create_explainer("hirescam")(model, batch(shape=(16, 3, 128, 128), size=1))
    assert maps.shape[2] == 16
    # 5 cells spanning the depth onto 15 slice groups (align_corners=False): group i sits at
    # cell coordinate (i + 0.5) / 3 - 0.5, clamped to [0, 4]; a ramp 0..4 takes that value.
    ramp = torch.arange(5.0).view(1, 1, 5, 1, 1)
    resampled = resample_to_slices(ramp, 15)[0, 0, :, 0, 0]
    want = [min(max((i + 0.5) / 3 - 0.5, 0.0), 4.0) for i in range(15)]
    torch.testing.assert_close(resampled, torch.tensor(want), rtol=0, atol=1e-6)
    reversed_ramp = resample_to_slices(ramp.flip(2), 15)[0, 0, :, 0, 0]
    torch.testing.assert_close(reversed_ramp, resampled.flip(0), rtol=0, atol=1e-6)


CLOSED_FORM = [n for n in EXPLAINABLE if has_closed_form(build(n))]


def test_closed_form_is_chosen_for_the_axialnet_family():
    assert {"axialnet", "axialnet-randinit", "axialnet-nocustomconv"} <= set(CLOSED_FORM)
    assert "axialnet-maxpool" not in CLOSED_FORM  # the max is not a mean: autograd path
    assert "bodycam" not in CLOSED_FORM


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_closed_form_equals_the_autograd_path(name):
    model = build(name)
    x = batch()
    closed = HiResCAM()(model, x)
    autograd = HiResCAM(closed_form=False)(model, x)
    scale = float(autograd.abs().max())
    torch.testing.assert_close(closed, autograd, rtol=1e-5, atol=1e-5 * scale)


def _completeness_residual(model, x, explainer):
    maps, logits = explainer.explain(model, x)
    return (logits - maps.sum(dim=(2, 3, 4))).detach()  # [B, M]: the bias, if complete


def _score_of_a_zero_representation(model, x):
    """The logits with the CAM layer's output replaced by zeros: ``b`` for an affine head."""
    handle = model.cam_layer.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        handle.remove()


@pytest.mark.parametrize("name", EXPLAINABLE)
def test_completeness_holds_exactly_where_the_head_is_affine(name):
    """sum(A_m) + b_m == s_m: HiResCAM accounts for the whole score (paper section 3.4). For
    a head s = <W, Z> + b the residual is b, the score of Z = 0, on every input."""
    model = build(name)
    for seed in (1, 2, 3):
        x = batch(seed)
        residual = _completeness_residual(model, x, HiResCAM())
        bias = _score_of_a_zero_representation(model, x)
        gap = float((residual - bias).abs().max())
        scale = float(bias.abs().max()) + float(residual.abs().max()) + 1.0
        if model.head_is_affine:  # measured: gaps of 1e-8 to 6e-8
            assert gap < 1e-6 * scale, f"{name}: residual differs from b by {gap}"
        else:  # measured: 5e-4 (3DConv) to 5e-3 (BodyConv)
            assert gap > 1e-4, f"{name} declares a non-affine head but HiResCAM is complete"


@pytest.mark.parametrize("name", ["axialnet", "axialnet-maxpool", "axialnet-nocustomconv"])
def test_completeness_residual_is_the_bias_on_axialnet(name):
    model = build(name)
    residual = _completeness_residual(model, batch(), HiResCAM())
    bias = model.linear_head()[1].detach()
    torch.testing.assert_close(residual, bias.expand_as(residual), rtol=1e-4, atol=1e-4)


def test_gradcam_equals_hirescam_on_bodycam():
    """On a CAM architecture (GAP then one linear layer) the two coincide (appendix 7.3)."""
    model = build("bodycam")
    x = batch()
    hires = ctbench.create_explainer("hirescam")(model, x)
    grad = ctbench.create_explainer("gradcam")(model, x)
    torch.testing.assert_close(grad, hires, rtol=1e-4, atol=1e-6)


def test_gradcam_differs_from_hirescam_on_axialnet():
    model = build("axialnet")
    x = batch()
    hires = ctbench.create_explainer("hirescam")(model, x).detach()
    grad = ctbench.create_explainer("gradcam")(model, x)
    relative = float((hires - grad).abs().max() / hires.abs().max())
    assert relative > 0.1
    # Grad-CAM is not complete on AxialNet: its map does not add up to the score.
    from ctbench.plugins.explainers.cam import GradCAM

    residual = _completeness_residual(model, x, GradCAM())
    bias = model.linear_head()[1].detach().expand_as(residual)
    assert float((residual - bias).abs().max()) > 1e-3


def test_example_plugin_is_explained_by_the_autograd_path_with_completeness(example_plugin):
    model = ctbench.create_model("example-tinynet", 4, (4, 3, 32, 32)).eval()
    assert not has_closed_form(model)
    x = torch.rand(3, 4, 3, 32, 32)
    maps, logits = HiResCAM().explain(model, x)
    assert maps.shape == (3, 4, 4, 4, 4)
    torch.testing.assert_close(
        logits - maps.sum(dim=(2, 3, 4)),
        model.head.bias.detach().expand(3, 4),
        rtol=1e-4,
        atol=1e-5,
    )


def test_closed_form_is_differentiable_for_the_mask_loss():
    model = build("axialnet").train()
    maps, logits = HiResCAM().explain(model, batch())
    assert maps.requires_grad and logits.requires_grad
    torch.nn.functional.softplus(maps).mean().backward()
    assert model.fc.weight.grad is not None and model.fc.weight.grad.abs().sum() > 0
    first_conv = model.trunk.resnet[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_autograd_path_with_create_graph_trains_through_the_backbone():
    model = build("bodyconv").train()
    maps = HiResCAM(create_graph=True)(model, batch(), classes=[0, 2])
    maps.clamp(min=0).sum().backward()
    assert model.trunk.resnet[0].weight.grad.abs().sum() > 0


def test_without_create_graph_nothing_flows_into_the_backbone():
    model = build("bodyconv")
    maps = HiResCAM()(model, batch())
    assert not maps.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_ctnet_is_refused_with_a_clear_error():
    with pytest.raises(NotExplainableError, match="CTNet is not explainable"):
        ctbench.create_explainer("hirescam")(build("ctnet"), batch())


def test_display_postprocessing_is_separate_and_per_scan_and_label():
    maps = torch.randn(2, 3, 4, 5, 5)
    maps[1, 2] = -1.0  # no positive cell: stays zero
    shown = relu_minmax(maps)
    assert shown.min() >= 0 and shown.max() <= 1
    assert torch.allclose(shown[0].flatten(1).amax(dim=1), torch.ones(3))
    assert torch.all(shown[1, 2] == 0)
    assert torch.equal(shown[maps <= 0], torch.zeros_like(shown[maps <= 0]))
    assert upsample_to_volume(shown, (12, 20, 20)).shape == (2, 3, 12, 20, 20)


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return z.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("CUDA out of memory (simulated)")


class _HeadThatCannotBackward(torch.nn.Module):
    explainable = True
    cam_layout = "per_slice"
    representation_shape = (2, 4, 4)

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.cam_layer = torch.nn.ReLU()
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        batch, slices = x.shape[:2]
        z = _FailingBackward.apply(self.cam_layer(self.conv(x.flatten(0, 1))))
        return self.head(z.mean(dim=(2, 3)).view(batch, slices, 4).mean(dim=1))


@pytest.mark.parametrize("explainer", ["hirescam", "gradcam"])
def test_a_failing_backward_is_raised_not_replaced_by_a_slower_path(explainer):
    """No silent fallback: an error in the batched backward (out of memory, an op autograd
    cannot batch) reaches the caller."""
    model = _HeadThatCannotBackward()
    with pytest.raises(RuntimeError, match="out of memory"):
        ctbench.create_explainer(explainer)(model, torch.rand(1, 2, 3, 4, 4))
