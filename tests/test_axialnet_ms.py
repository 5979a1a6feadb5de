"""``axialnet-ms`` (issue 31, part 2): AxialNet kept whole, a focal branch on a finer grid that a
finding in one slice group is not diluted in, and HiResCAM complete on the finer grid."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench.plugins.architectures.axialnet_ms import AxialNetMS

SHAPE = (9, 3, 64, 64)


def build(**options) -> AxialNetMS:
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet-ms", 4, SHAPE, **options)
    model.train()(torch.randn(4, *SHAPE) * 0.3)  # BatchNorm statistics
    return model.eval()


@pytest.mark.parametrize("layers", [(), ("layer2", "layer3")])
def test_hirescam_is_complete_on_the_fine_grid(layers):
    """Generic HiResCAM's maps sum to the logit less AxialNet's and the focal bias, on the grid
    of 4 x 4 pixel cells (16 x 16 at 64 x 64), with and without layer2/layer3 features."""
    model = build(layers=layers)
    with torch.no_grad():
        model.focal_fc.bias.normal_()
        model.fc.bias.normal_()
    x = torch.randn(2, *SHAPE) * 0.3
    maps, logits = ctbench.create_explainer("hirescam").explain(model, x)
    assert maps.shape == (2, 4, 9, 16, 16) and model.representation_shape == (9, 16, 16)
    assert torch.allclose(maps.sum(dim=(2, 3, 4)), logits - model.biases(), atol=1e-4)


def test_it_keeps_axialnet_whole():
    """With the focal branch's scores zero, the logit is AxialNet's: the same trunk and custom
    convolutions, ``fc`` over their grid, the mean over slice groups."""
    model = build()
    with torch.no_grad():
        model.focal_fc.weight.zero_()
        model.focal_fc.bias.zero_()
    x = torch.randn(2, *SHAPE) * 0.3
    with torch.no_grad():
        z4 = model.trunk.from_backbone(model.trunk.backbone_features(x))
        axialnet = model.fc(z4).view(2, SHAPE[0], -1).mean(1)
        assert torch.allclose(model(x), axialnet, atol=1e-5)


def test_a_finding_in_one_slice_group_is_not_diluted():
    """The focal branch pools the volume's top k cells: one bright 4 x 4 pixel spot in one slice
    group of nine moves the logit by that cell's score over k, not over k * 9 slice groups."""
    model = build(top_k=1)
    with torch.no_grad():
        model.fc.weight.zero_()  # AxialNet's part silent: only the focal branch speaks
        model.fc.bias.zero_()
    x = torch.full((1, *SHAPE), -0.449 + (1000 + 40) / 1800)  # soft tissue everywhere
    spot = x.clone()
    spot[0, 4, :, 32:36, 32:36] = -0.449 + (1000 + 600) / 1800  # a calcification, one group
    with torch.no_grad():
        cells = model.focal_fc(model.local(model.histogram(spot[0])))  # [H, M, G1, G2]
        base = model.focal_fc(model.local(model.histogram(x[0]))).amax(dim=(0, 2, 3))
        expected = cells.amax(dim=(0, 2, 3))
        assert torch.allclose(model(spot)[0], expected, atol=1e-5)
        assert torch.allclose(model(x)[0], base, atol=1e-5)
    assert not torch.allclose(expected, base)


def test_its_trunk_split_gives_the_model_and_contract_holds():
    """from_backbone_features(backbone_features(x)) == model(x), and the architectures contract
    checks pass (gradients, bf16, channels-last, seeded construction, declarations)."""
    from ctbench.testing import check_architecture

    model = build(layers=("layer3",))
    x = torch.randn(2, *SHAPE) * 0.3
    with torch.no_grad():
        split = model.from_backbone_features(model.backbone_features(x))
        assert torch.allclose(split, model(x), atol=1e-5)
    check_architecture("axialnet-ms")


def test_it_refuses_unknown_options():
    with pytest.raises(ValueError, match="layer2, layer3"):
        ctbench.create_model("axialnet-ms", 4, SHAPE, layers=("layer1",))
    with pytest.raises(ValueError, match="top_k"):
        ctbench.create_model("axialnet-ms", 4, SHAPE, top_k=0)
