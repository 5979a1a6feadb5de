"""The model zoo (paper Table 1): contracts, reference parameter counts, scaling, weights."""

from __future__ import annotations

from pathlib import Path

import ctbench
import pytest
import torch
from ctbench.core.registry import default_registry
from ctbench.explain.explanations import capture_cam_layer
from ctbench.plugins.architectures.components import (
    PretrainedWeightsNotFoundError,
    resnet18_features,
    resnet_grid,
    scaled_step,
)
from ctbench.testing import ARCHITECTURE_CHECKS, architecture_case, check_architecture
from torchvision.models import resnet18

BUILT_IN = [
    "axialnet",
    "axialnet-maxpool",
    "axialnet-randinit",
    "axialnet-nocustomconv",
    "bodycam",
    "bodyconv",
    "3dconv",
    "ctnet",
]
REGISTERED = ctbench.list_plugins()["architectures"]
PAPER_SHAPE = (135, 3, 420, 420)
DEFAULT_SHAPE = (16, 3, 128, 128)

# Reference facts section 8: parameter counts at (135, 3, 420, 420) with 80 outputs.
REFERENCE_PARAMETERS = {
    "axialnet": 11_543_056,
    "axialnet-maxpool": 11_543_056,
    "axialnet-randinit": 11_543_056,
    "axialnet-nocustomconv": 19_204_752,
    "bodycam": 11_498_256,
    "bodyconv": 12_399_072,
    "3dconv": 5_765_744,
    "ctnet": 12_413_216,
}


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_built_in_architecture_is_registered_by_ctbench():
    assert set(BUILT_IN) <= set(REGISTERED)
    for name in BUILT_IN:
        assert default_registry().get("architectures", name).provider == "ctbench"


@pytest.mark.parametrize("check", list(ARCHITECTURE_CHECKS))
@pytest.mark.parametrize("name", REGISTERED)
def test_architecture_contract(name, check):
    ARCHITECTURE_CHECKS[check](architecture_case(name))


@pytest.mark.parametrize("name", BUILT_IN)
def test_parameter_count_at_paper_shape_equals_reference(name):
    model = ctbench.create_model(name, 80, PAPER_SHAPE)
    assert n_parameters(model) == REFERENCE_PARAMETERS[name]


@pytest.mark.parametrize(
    ("name", "grid"),
    [
        ("axialnet", (135, 6, 6)),
        ("axialnet-nocustomconv", (135, 14, 14)),
        ("bodycam", (135, 6, 6)),
        ("bodyconv", (5, 5, 5)),
        ("3dconv", (5, 5, 5)),
    ],
)
def test_representation_at_paper_shape_is_the_papers(name, grid):
    assert ctbench.create_model(name, 80, PAPER_SHAPE).representation_shape == grid


@pytest.mark.parametrize("name", [n for n in BUILT_IN if n != "ctnet"])
def test_default_preset_keeps_at_least_a_4x4_grid(name):
    model = ctbench.create_model(name, 80, DEFAULT_SHAPE)
    assert min(model.representation_shape[1:]) >= 4, model.representation_shape


def test_ctnet_declares_itself_not_explainable():
    assert ctbench.create_model("ctnet", 5, (9, 3, 64, 64)).explainable is False


def test_scaling_rule():
    assert scaled_step(14, 3, 1, 6) == (3, 1)  # 14 -> 12: the paper's layer is kept
    assert scaled_step(8, 3, 1, 6) == (3, 1)  # 8 -> 6 reaches the floor
    assert scaled_step(6, 3, 1, 6) == (1, 1)  # 6 -> 4 would go below it
    assert scaled_step(4, 3, 1, 6) == (1, 1)  # an input already under the floor is kept
    assert scaled_step(135, 3, 3, 5) == (3, 3)
    assert scaled_step(5, 3, 3, 5) == (1, 1)
    assert scaled_step(2, 3, 1, 6) == (1, 1)  # kernel larger than the axis


@pytest.mark.parametrize("side", [64, 96, 128, 420, 512])
def test_resnet_grid_matches_resnet18(side):
    features = resnet18_features()
    with torch.no_grad():
        out = features(torch.zeros(1, 3, side, side))
    assert out.shape[-1] == resnet_grid(side)


def test_axialnet_slice_scores_are_a_linear_map_of_the_representation():
    """c_mh = <W_m, z_h> + b_m (eq. 1), the identity closed-form HiResCAM rests on."""
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 4, (9, 3, 64, 64)).eval()
    x = torch.rand(2, 9, 3, 64, 64)
    with torch.no_grad(), capture_cam_layer(model, detach=False) as captured:
        scores = model.slice_scores(x)  # [B, M, H]
    z = captured[0].view(2, 9, *captured[0].shape[1:])  # [B, H, F, D1, D2]
    weight, bias = model.linear_head()  # [M, F, D1, D2], [M]
    expected = torch.einsum("bhfyx,mfyx->bmh", z, weight) + bias[None, :, None]
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_maxpool_takes_the_max_and_axialnet_the_mean():
    torch.manual_seed(0)
    x = torch.rand(1, 9, 3, 64, 64)
    for name, pool in (("axialnet", torch.mean), ("axialnet-maxpool", torch.amax)):
        model = ctbench.create_model(name, 3, (9, 3, 64, 64)).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x), pool(model.slice_scores(x), dim=2))


def test_bodycam_is_one_linear_layer_on_the_global_average():
    torch.manual_seed(0)
    model = ctbench.create_model("bodycam", 3, (9, 3, 64, 64)).eval()
    x = torch.rand(2, 9, 3, 64, 64)
    with torch.no_grad(), capture_cam_layer(model, detach=False) as captured:
        logits = model(x)
    pooled = captured[0].view(2, 9, *captured[0].shape[1:]).mean(dim=(1, 3, 4))
    torch.testing.assert_close(logits, model.fc(pooled))


def test_wrong_input_shape_is_one_clear_error():
    model = ctbench.create_model("axialnet", 3, (9, 3, 64, 64))
    with pytest.raises(
        ValueError, match=r"built for x of shape \[B, 9, 3, 64, 64\].*got \[1, 8, 3, 64, 64\]"
    ):
        model(torch.zeros(1, 8, 3, 64, 64))


# --- ImageNet weights: local file or torch hub cache, never a download -------------------


@pytest.fixture
def imagenet_like_weights(tmp_path: Path) -> tuple[Path, dict]:
    """A torchvision ResNet-18 state dict (random values stand in for ImageNet's)."""
    torch.manual_seed(123)
    state = resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def test_weights_path_loads_into_the_resnet(imagenet_like_weights, empty_hub):
    path, state = imagenet_like_weights
    for name in ("axialnet", "bodyconv", "ctnet"):
        model = ctbench.create_model(name, 3, (9, 3, 64, 64), weights=str(path))
        resnet = model.trunk.resnet
        torch.testing.assert_close(resnet[0].weight, state["conv1.weight"])
        torch.testing.assert_close(resnet[4][0].conv1.weight, state["layer1.0.conv1.weight"])


def test_pretrained_uses_the_torch_hub_cache(imagenet_like_weights, empty_hub):
    path, state = imagenet_like_weights
    checkpoints = empty_hub / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / path.name).write_bytes(path.read_bytes())
    model = ctbench.create_model("axialnet", 3, (9, 3, 64, 64), pretrained=True)
    torch.testing.assert_close(model.trunk.resnet[0].weight, state["conv1.weight"])


def fake_download(monkeypatch, behaviour):
    """torchvision's weights API with its download replaced (tests never reach the network)."""
    import torchvision.models._api as api

    calls = []

    def load_state_dict_from_url(url, *args, **kwargs):
        calls.append((url, kwargs))
        return behaviour(url, kwargs)

    monkeypatch.setattr(api, "load_state_dict_from_url", load_state_dict_from_url)
    return calls


def test_missing_weights_offline_fail_with_instructions_and_no_download(empty_hub, monkeypatch):
    calls = fake_download(monkeypatch, lambda *_: pytest.fail("tried to download"))
    with pytest.raises(PretrainedWeightsNotFoundError) as caught:  # CTBENCH_OFFLINE (conftest)
        ctbench.create_model("axialnet", 3, (9, 3, 64, 64), pretrained=True)
    message = str(caught.value)
    assert "CTBENCH_OFFLINE is set" in message and calls == []
    assert str(empty_hub / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "--weights PATH" in message and "--no-pretrained" in message


def test_pretrained_downloads_through_torchvision_when_online(
    imagenet_like_weights, empty_hub, monkeypatch
):
    """Online (no CTBENCH_OFFLINE), --pretrained asks torchvision's weights API, which puts
    the file in the hub cache (hash checked, weights_only); the model then holds it."""
    path, state = imagenet_like_weights

    def download(url, kwargs):
        target = empty_hub / "checkpoints" / url.rsplit("/", 1)[-1]
        target.parent.mkdir(parents=True)
        target.write_bytes(path.read_bytes())
        return state

    monkeypatch.delenv("CTBENCH_OFFLINE")
    calls = fake_download(monkeypatch, download)
    model = ctbench.create_model("axialnet", 3, (9, 3, 64, 64), pretrained=True)
    torch.testing.assert_close(model.trunk.resnet[0].weight, state["conv1.weight"])
    ((url, kwargs),) = calls
    assert url.endswith("resnet18-f37072fd.pth")
    assert kwargs["check_hash"] is True and kwargs["weights_only"] is True
    ctbench.create_model("axialnet", 3, (9, 3, 64, 64), pretrained=True)
    assert len(calls) == 1  # the second model reads the cache


def test_a_failed_download_says_where_to_put_the_file(empty_hub, monkeypatch):
    from urllib.error import URLError

    def offline(url, kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.delenv("CTBENCH_OFFLINE")
    fake_download(monkeypatch, offline)
    with pytest.raises(PretrainedWeightsNotFoundError, match="downloading them failed") as caught:
        ctbench.create_model("axialnet", 3, (9, 3, 64, 64), pretrained=True)
    assert "Name or service not known" in str(caught.value) and "--weights PATH" in str(
        caught.value
    )


def test_bad_weight_files_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"corrupt\.pth: not a readable PyTorch weights file"):
        ctbench.create_model("axialnet", 3, (9, 3, 64, 64), weights=corrupt)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pth: not a torchvision ResNet-18 state dict"):
        ctbench.create_model("axialnet", 3, (9, 3, 64, 64), weights=wrong)
    with pytest.raises(FileNotFoundError, match=r"absent\.pth: weights file does not exist"):
        ctbench.create_model("axialnet", 3, (9, 3, 64, 64), weights=tmp_path / "absent.pth")


@pytest.mark.parametrize("name", ["axialnet-randinit", "3dconv"])
def test_models_trained_from_scratch_refuse_weights(name, imagenet_like_weights):
    with pytest.raises(ValueError, match="never loads pretrained weights"):
        ctbench.create_model(name, 3, (9, 3, 64, 64), pretrained=True)
    with pytest.raises(ValueError, match="never loads pretrained weights"):
        ctbench.create_model(name, 3, (9, 3, 64, 64), weights=imagenet_like_weights[0])


def test_default_is_not_pretrained(empty_hub):
    """As in timm: no weights are looked for unless asked (the cache here is empty)."""
    from_scratch = {"axialnet-randinit", "3dconv"}  # the paper trains these from scratch
    for name in BUILT_IN:
        ctbench.create_model(name, 3, (9, 3, 64, 64))
        pretrainable = default_registry().get("architectures", name).meta["pretrainable"]
        assert pretrainable is (name not in from_scratch), name


def test_check_architecture_passes_on_the_example_plugin(example_plugin):
    check_architecture("example-tinynet")


def test_check_architecture_names_the_broken_rule():
    class NoExplainableFlag(torch.nn.Module):
        def __init__(self, n_classes, input_shape):
            super().__init__()
            self.linear = torch.nn.Linear(3, n_classes)

        def forward(self, x):
            return self.linear(x.mean(dim=(1, 3, 4)))

    with pytest.raises(AssertionError, match="check 'explainable_contract' failed"):
        check_architecture(NoExplainableFlag)
