"""``check_explainer`` and its rules (``ctbench.core.contracts.MEMBERS["explainers"]``).

An explainer is checked on :class:`ReferenceSliceNet`, the smallest model of the explainable
contract whose truth is known: per slice group a convolution and a ReLU (the CAM layer, a
4 x 4 grid), one linear map, the mean over slices. Its class score is affine in the CAM layer's
output, so a faithful explainer's map sums to the score less the bias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from ctbench.core.contracts import declared
from ctbench.testing.rules import registered, rule_table, run_checks
from torch import nn


class ReferenceSliceNet(nn.Module):
    """A tiny mean-MIL explainable model with a per-slice linear head (module docstring)."""

    explainable = True
    cam_layout = "per_slice"
    slice_aggregation = "mean"
    head_is_affine = True

    def __init__(self, n_classes: int = 3, slices: int = 5, features: int = 6) -> None:
        super().__init__()
        grid = 4
        self.features = nn.Sequential(
            nn.Conv2d(3, features, kernel_size=3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(grid),
            nn.ReLU(),
        )
        self.fc = nn.Linear(features * grid * grid, n_classes)
        self.representation_shape = (slices, grid, grid)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]

    def linear_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.fc.weight.view(self.fc.out_features, -1, *self.representation_shape[1:])
        return weight, self.fc.bias

    def slice_scores(self, x: torch.Tensor) -> torch.Tensor:
        batch, slices = x.shape[:2]
        z = self.features(x.flatten(0, 1))
        return self.fc(z.flatten(1)).view(batch, slices, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slice_scores(x).mean(dim=2)


@dataclass(frozen=True)
class ExplainerCase:
    """How to build the explainer (``factory(**options)``), what it declares, the model."""

    factory: Callable[..., Any]
    declares: dict = field(default_factory=lambda: declared("explainers", {}))
    n_classes: int = 3
    slices: int = 5
    seed: int = 0

    def model(self) -> ReferenceSliceNet:
        torch.manual_seed(self.seed)
        return ReferenceSliceNet(self.n_classes, self.slices).eval()

    def batch(self, size: int = 2) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + 1)
        return torch.rand(size, self.slices, 3, 16, 16, generator=generator) - 0.5


def _explain(case: ExplainerCase, model, x, classes=None, **options):
    """As the core calls it: under ``torch.no_grad()`` for evaluation (an explainer that needs
    gradients enables them), with gradients on when it trains through the maps."""
    context = torch.enable_grad() if options.get("create_graph") else torch.no_grad()
    with context:
        result = case.factory(**options).explain(model, x, classes=classes)
    assert isinstance(result, tuple) and len(result) == 2, (
        "explain(model, x, classes) must return (maps, logits)"
    )
    return result


def check_maps_and_logits(case: ExplainerCase) -> None:
    """Maps ``[B, M, H', D1, D2]`` on the representation grid, finite; logits ``[B, M]`` equal
    the model's own."""
    model, x = case.model(), case.batch()
    maps, logits = _explain(case, model, x)
    want = (len(x), case.n_classes, *model.representation_shape)
    assert isinstance(maps, torch.Tensor) and tuple(maps.shape) == want, (
        f"maps shape {tuple(getattr(maps, 'shape', ()))}, expected {want}"
    )
    assert torch.isfinite(maps).all(), "maps are not finite"
    with torch.no_grad():
        torch.testing.assert_close(logits.detach(), model(x), rtol=1e-4, atol=1e-5)


def check_chosen_classes(case: ExplainerCase) -> None:
    """``classes=[2, 0]`` gives those classes' maps, in that order."""
    model, x = case.model(), case.batch()
    every, _ = _explain(case, model, x)
    chosen, _ = _explain(case, model, x, classes=[2, 0])
    assert tuple(chosen.shape[:2]) == (len(x), 2), f"maps shape {tuple(chosen.shape)} for 2 classes"
    torch.testing.assert_close(chosen.detach(), every.detach()[:, [2, 0]], rtol=1e-4, atol=1e-5)


def check_batch_consistency(case: ExplainerCase) -> None:
    """A batch of two gives the maps of two batches of one."""
    model, x = case.model(), case.batch()
    together, _ = _explain(case, model, x)
    apart = torch.cat([_explain(case, model, x[i : i + 1])[0] for i in range(len(x))])
    torch.testing.assert_close(together.detach(), apart.detach(), rtol=1e-4, atol=1e-5)


def check_declared_faithful(case: ExplainerCase) -> None:
    """``faithful=True``: on the linear-head model each map sums to its score less the bias."""
    if not case.declares["faithful"]:
        return
    model, x = case.model(), case.batch()
    maps, logits = _explain(case, model, x)
    total = maps.detach().sum(dim=(2, 3, 4))
    torch.testing.assert_close(
        total, logits.detach() - model.fc.bias.detach(), rtol=1e-4, atol=1e-4
    )


def check_declared_differentiable(case: ExplainerCase) -> None:
    """``differentiable=True``: ``create_graph=True`` keeps the maps differentiable, and a loss
    on them sends gradients to the model's parameters (the mask loss trains through them)."""
    if not case.declares["differentiable"]:
        return
    model, x = case.model().train(), case.batch()
    maps, _ = _explain(case, model, x, create_graph=True)
    assert maps.requires_grad, "maps with create_graph=True do not require grad"
    maps.square().sum().backward()
    reached = [p.grad is not None and p.grad.abs().sum() > 0 for p in model.features.parameters()]
    assert any(reached), "no gradient of the maps reaches the model's convolution"


EXPLAINER_CHECKS: dict[str, Callable[[ExplainerCase], None]] = rule_table(
    check_maps_and_logits,
    check_chosen_classes,
    check_batch_consistency,
    check_declared_faithful,
    check_declared_differentiable,
)


def explainer_case(name_or_factory: str | Callable[..., Any], **declares: Any) -> ExplainerCase:
    """A registered name (its declarations read from its registration) or a factory (with
    the declarations given here)."""
    return ExplainerCase(*registered("explainers", name_or_factory, declares))


def check_explainer(name_or_factory: str | Callable[..., Any], **declares: Any) -> None:
    """Run every explainer rule; the first failure raises ``AssertionError`` naming it."""
    run_checks("explainer", EXPLAINER_CHECKS, explainer_case(name_or_factory, **declares))
