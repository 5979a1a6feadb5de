"""``check_architecture`` and its rules (``ctbench.core.contracts.MEMBERS["architectures"]``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from ctbench.core.api import create_model
from ctbench.core.contracts import declared, declared_of
from ctbench.explain.explanations import capture_cam_layer
from ctbench.runtime.memory_format import to_channels_last
from ctbench.testing.rules import rule_table
from ctbench.testing.rules import run_checks as _run_checks
from torch import nn

Factory = Callable[..., nn.Module]

TINY_INPUT_SHAPE = (9, 3, 64, 64)
"""Nine slice groups of 64 x 64: small enough for CPU tests, large enough for ResNet-18."""


@dataclass(frozen=True)
class ArchitectureCase:
    """What a check needs: how to build the model, the input it is built for, and what its
    registration declares (``ctbench.core.contracts``; defaults when checking a bare factory)."""

    factory: Factory
    n_classes: int = 3
    input_shape: tuple[int, int, int, int] = TINY_INPUT_SHAPE
    batch_size: int = 2
    seed: int = 0
    declares: dict = field(default_factory=lambda: declared("architectures", {}))

    def build(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return self.factory(self.n_classes, self.input_shape)

    def batch(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + 1)
        return torch.rand(self.batch_size, *self.input_shape, generator=generator) - 0.449


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def check_logits_shape(case: ArchitectureCase) -> None:
    """``model(x)`` is finite logits ``[B, M]`` for several batch sizes."""
    model = case.build().eval()
    x = case.batch()
    for batch in (1, case.batch_size):
        logits = _logits(model, x[:batch])
        assert tuple(logits.shape) == (batch, case.n_classes), (
            f"logits shape {tuple(logits.shape)}, expected {(batch, case.n_classes)}"
        )
        assert torch.isfinite(logits).all(), "logits are not finite"


def check_batch_consistency(case: ArchitectureCase) -> None:
    """In eval mode a batch of B gives the same logits as B batches of 1."""
    model = case.build().eval()
    x = case.batch()
    together = _logits(model, x)
    one_by_one = torch.cat([_logits(model, x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, one_by_one, rtol=1e-4, atol=1e-5)


def check_gradients_reach_every_parameter(case: ArchitectureCase) -> None:
    """A classification loss sends a finite, non-zero gradient to every parameter."""
    model = case.build().train()
    x = case.batch()
    targets = (torch.arange(case.batch_size * case.n_classes) % 2).float()
    logits = model(x)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, targets.view_as(logits))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(parameter.grad).all(), f"gradient of {name} is not finite"
        assert parameter.grad.abs().sum() > 0, f"gradient of {name} is all zero"


def _capture_cam_output(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with capture_cam_layer(model, detach=False) as captured:
        logits = _logits(model, x)
    assert len(captured) == 1, f"cam_layer ran {len(captured)} times in one forward, expected 1"
    return captured[0], logits


def check_explainable_contract(case: ArchitectureCase) -> None:
    """``explainable`` is declared; explainable models expose ``cam_layer`` and its grid."""
    model = case.build().eval()
    assert isinstance(getattr(model, "explainable", None), bool), (
        "the model must declare explainable = True or False"
    )
    if not model.explainable:
        return
    shape = getattr(model, "representation_shape", None)
    assert (
        isinstance(shape, tuple)
        and len(shape) == 3
        and all(isinstance(n, int) and n > 0 for n in shape)
    ), f"representation_shape must be (H', D1, D2) positive ints, got {shape!r}"
    assert any(module is model.cam_layer for module in model.modules()), (
        "cam_layer must be a submodule of the model"
    )
    layout = getattr(model, "cam_layout", "per_slice")
    x = case.batch()
    z, _ = _capture_cam_output(model, x)
    batch, slices = x.shape[:2]
    if layout == "per_slice":
        assert shape[0] == slices, f"per-slice models have H' = H = {slices}, got {shape[0]}"
        assert z.dim() == 4 and z.shape[0] == batch * slices and tuple(z.shape[2:]) == shape[1:], (
            f"cam_layer output {tuple(z.shape)} is not [B*H, F, {shape[1]}, {shape[2]}]"
        )
    elif layout == "volume":
        assert z.dim() == 5 and z.shape[0] == batch and tuple(z.shape[2:]) == shape, (
            f"cam_layer output {tuple(z.shape)} is not [B, F, {', '.join(map(str, shape))}]"
        )
    else:
        raise AssertionError(f"cam_layout must be 'per_slice' or 'volume', got {layout!r}")


def check_slice_scores(case: ArchitectureCase) -> None:
    """MIL models: ``slice_scores(x)`` is ``[B, M, H]`` and its mean (or max) is the logits."""
    model = case.build().eval()
    if not hasattr(model, "slice_scores"):
        return
    x = case.batch()
    with torch.no_grad():
        scores = model.slice_scores(x)
        logits = model(x)
    assert tuple(scores.shape) == (len(x), case.n_classes, x.shape[1]), (
        f"slice_scores shape {tuple(scores.shape)}, expected [B, M, H]"
    )
    aggregation = getattr(model, "slice_aggregation", "mean")
    pooled = scores.mean(dim=2) if aggregation == "mean" else scores.amax(dim=2)
    torch.testing.assert_close(pooled, logits, rtol=1e-5, atol=1e-6)


def check_bf16_autocast(case: ArchitectureCase) -> None:
    """Under CPU bf16 autocast the logits keep their shape, stay finite and near fp32."""
    model = case.build().eval()
    x = case.batch()
    reference = _logits(model, x)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        low = _logits(model, x)
    assert tuple(low.shape) == tuple(reference.shape)
    assert torch.isfinite(low).all(), "bf16 logits are not finite"
    scale = float(reference.abs().max()) + 1.0
    error = float((low.float() - reference).abs().max())
    assert error <= 0.05 * scale, f"bf16 logits differ from fp32 by {error:.3g} (scale {scale:.3g})"


def check_channels_last(case: ArchitectureCase) -> None:
    """Channels-last weights (channels_last_3d for Conv3d) do not change the logits (a model
    without convolutions, such as hu-histogram, has no weight to convert)."""
    model = case.build().eval()
    x = case.batch()
    reference = _logits(model, x)
    to_channels_last(model)
    convolutions = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    assert not convolutions or any(
        p.dim() in (4, 5) and not p.is_contiguous() for p in model.parameters()
    ), "no convolution weight changed memory format"
    torch.testing.assert_close(_logits(model, x), reference, rtol=1e-4, atol=1e-5)


def check_seeded_construction(case: ArchitectureCase) -> None:
    """The same seed builds the same weights (runs are reproducible)."""
    first, second = case.build().state_dict(), case.build().state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{key} differs between seeded builds"


def check_declared_trunk(case: ArchitectureCase) -> None:
    """``trunk=True``: ``from_backbone_features(backbone_features(x))`` is ``model(x)`` and
    ``backbone`` is a submodule; a model that has the split should declare it."""
    model = case.build().eval()
    has_split = all(
        hasattr(model, name) for name in ("backbone", "backbone_features", "from_backbone_features")
    )
    if not case.declares["trunk"]:
        return
    assert has_split, (
        "declares trunk=True without backbone, backbone_features, from_backbone_features"
    )
    assert any(module is model.backbone for module in model.modules()), (
        "backbone is not a submodule"
    )
    x = case.batch()
    with torch.no_grad():
        split = model.from_backbone_features(model.backbone_features(x))
        whole = model(x)
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-5)


def check_declared_start(case: ArchitectureCase) -> None:
    """``pretrainable=True``: the factory takes ``pretrained=False, weights=None``."""
    if not case.declares["pretrainable"]:
        return
    torch.manual_seed(case.seed)
    model = case.factory(case.n_classes, case.input_shape, pretrained=False, weights=None)
    assert isinstance(model, nn.Module), "the factory with pretrained=False built no nn.Module"


ARCHITECTURE_CHECKS: dict[str, Callable[[ArchitectureCase], None]] = rule_table(
    check_logits_shape,
    check_batch_consistency,
    check_gradients_reach_every_parameter,
    check_explainable_contract,
    check_slice_scores,
    check_bf16_autocast,
    check_channels_last,
    check_seeded_construction,
    check_declared_trunk,
    check_declared_start,
)


def architecture_case(
    name_or_factory: str | Factory,
    *,
    n_classes: int = 3,
    input_shape: tuple[int, int, int, int] = TINY_INPUT_SHAPE,
    batch_size: int = 2,
    seed: int = 0,
) -> ArchitectureCase:
    """A registered name (looked up through ``create_model``, its registration's declarations
    checked too) or a factory, ready to check."""
    declares = declared("architectures", {})
    if isinstance(name_or_factory, str):
        name = name_or_factory
        declares = declared_of("architectures", name)

        def factory(n: int, shape: tuple[int, int, int, int], **options) -> nn.Module:
            return create_model(name, n, shape, **options)

    else:
        factory = name_or_factory
    return ArchitectureCase(factory, n_classes, tuple(input_shape), batch_size, seed, declares)


def check_architecture(name_or_factory: str | Factory, **case_options) -> None:
    """Run every architecture check; the first failure raises ``AssertionError`` naming it."""
    _run_checks(
        "architecture", ARCHITECTURE_CHECKS, architecture_case(name_or_factory, **case_options)
    )
