"""AxialNet, its three ablations and BodyCAM (paper sections 3.2, 4.4.2, appendices 7.3, 7.5).

All five share the slice-wise trunk: each slice group ``[3, Y, X]`` goes through ResNet-18
(layer4 output ``[512, Y/32, X/32]``) and, except NoCustomConv, the custom convolutions
(four valid 3x3 convs 512 -> 64 -> 32 -> 16 -> 16, each followed by ReLU) down to ``z_h``
``[F=16, D1, D2]`` (6 x 6 at 420 x 420). Then:

- AxialNet: one linear map per slice, ``c_h = W z_h + b`` (a Conv2d whose kernel covers the
  grid, so ``W`` is ``[M, F, D1, D2]`` as in the reference), and the mean over slices (eq. 1).
- MaxPool: the max over slices instead of the mean.
- RandInitResNet: AxialNet whose ResNet never loads ImageNet weights.
- NoCustomConv: the linear map reads ResNet's layer4 output directly.
- BodyCAM: global average pooling over ``[H, D1, D2]``, then one linear layer (a CAM
  architecture: CAM, Grad-CAM and HiResCAM coincide on it).

The CAM layer is the last ReLU of the custom convolutions (reference index '7'), or ResNet's
layer4 for NoCustomConv. Layer sizes follow the scaling rule of ``components``.
"""

from __future__ import annotations

from pathlib import Path

import ctbench
import torch
from ctbench.plugins.architectures.components import (
    SliceBackboneModel,
    SliceTrunk,
    full_precision,
    refuse_pretrained,
)
from torch import nn


class AxialNet(SliceBackboneModel):
    """Multiple-instance model: per-slice scores ``C [B, M, H]`` aggregated over slices (eq. 1)."""

    explainable = True
    cam_layout = "per_slice"
    head_is_affine = True  # s_m = mean (or max) over slices of <W_m, z_h> + b_m

    def __init__(
        self,
        n_classes: int,
        input_shape: tuple[int, int, int, int],
        *,
        aggregation: str = "mean",
        custom_convs: bool = True,
        pretrained: bool = False,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        if aggregation not in ("mean", "max"):
            raise ValueError(f"aggregation must be 'mean' or 'max', got {aggregation!r}")
        self.input_shape = tuple(input_shape)
        self.slice_aggregation = aggregation
        self.trunk = SliceTrunk(
            input_shape, custom_convs=custom_convs, pretrained=pretrained, weights=weights
        )
        # One linear map shared by all slices; its weight is [M, F, D1, D2].
        self.fc = nn.Conv2d(self.trunk.out_channels, n_classes, self.trunk.grid, self.trunk.grid)
        self.representation_shape = (input_shape[0], *self.trunk.grid)

    @property
    def cam_layer(self) -> nn.Module:
        return self.trunk.last_layer

    def linear_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [M, F, D1, D2], b [M])`` with ``c_mh = <W_m, z_h> + b_m`` (closed-form HiResCAM)."""
        return self.fc.weight, self.fc.bias

    def slice_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-slice abnormality scores ``C [B, M, H]`` (bias included, before the sigmoid)."""
        return self._slice_scores(self.backbone_features(x))

    def _slice_scores(self, features: torch.Tensor) -> torch.Tensor:
        batch, slices = features.shape[:2]
        z = self.trunk.from_backbone(features)
        with full_precision(z):
            scores = self.fc(z.float())  # [B*H, M, 1, 1]
        return scores.view(batch, slices, -1).transpose(1, 2)  # [B, M, H]

    def from_backbone_features(self, features: torch.Tensor) -> torch.Tensor:
        scores = self._slice_scores(features)
        return scores.mean(dim=2) if self.slice_aggregation == "mean" else scores.amax(dim=2)


class BodyCAM(SliceBackboneModel):
    """AxialNet's trunk, global average pooling over ``[H, D1, D2]``, then one linear layer."""

    explainable = True
    cam_layout = "per_slice"
    head_is_affine = True  # s_m = <w_m, mean(Z)> + b_m

    def __init__(
        self,
        n_classes: int,
        input_shape: tuple[int, int, int, int],
        *,
        pretrained: bool = False,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.trunk = SliceTrunk(
            input_shape, custom_convs=True, pretrained=pretrained, weights=weights
        )
        self.fc = nn.Linear(self.trunk.out_channels, n_classes)
        self.representation_shape = (input_shape[0], *self.trunk.grid)

    @property
    def cam_layer(self) -> nn.Module:
        return self.trunk.last_layer

    def from_backbone_features(self, features: torch.Tensor) -> torch.Tensor:
        batch, slices = features.shape[:2]
        z = self.trunk.from_backbone(features)  # [B*H, F, D1, D2]
        with full_precision(z):
            pooled = z.float().view(batch, slices, *z.shape[1:]).mean(dim=(1, 3, 4))  # [B, F]
            return self.fc(pooled)  # [B, M]


def axialnet(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> AxialNet:
    return AxialNet(n_classes, input_shape, **options)


def axialnet_maxpool(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> AxialNet:
    return AxialNet(n_classes, input_shape, aggregation="max", **options)


def axialnet_randinit(
    n_classes: int, input_shape: tuple[int, int, int, int], **options
) -> AxialNet:
    refuse_pretrained("axialnet-randinit", options)
    return AxialNet(n_classes, input_shape, **options)


def axialnet_nocustomconv(
    n_classes: int, input_shape: tuple[int, int, int, int], **options
) -> AxialNet:
    return AxialNet(n_classes, input_shape, custom_convs=False, **options)


def bodycam(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> BodyCAM:
    return BodyCAM(n_classes, input_shape, **options)


@ctbench.hookimpl
def register_architectures(register):
    mil = {"explainable": True, "mil": True, "scopes": ("layer4",)}
    register(
        "axialnet",
        axialnet,
        paper_name="AxialNet",
        pretrainable=True,
        trunk=True,
        **mil,
        description="AxialNet: ResNet-18 + custom convs per slice, per-slice linear scores, mean",
    )
    register(
        "axialnet-maxpool",
        axialnet_maxpool,
        paper_name="MaxPool",
        pretrainable=True,
        trunk=True,
        **mil,
        description="AxialNet ablation: max over slices instead of the mean",
    )
    register(
        "axialnet-randinit",
        axialnet_randinit,
        paper_name="RandInitResNet",
        pretrainable=False,
        trunk=True,
        **mil,
        description="AxialNet ablation: ResNet-18 never loads ImageNet weights",
    )
    register(
        "axialnet-nocustomconv",
        axialnet_nocustomconv,
        paper_name="NoCustomConv",
        pretrainable=True,
        trunk=True,
        **mil,
        description="AxialNet ablation: no custom convs, linear map on ResNet layer4",
    )
    register(
        "bodycam",
        bodycam,
        paper_name="BodyCAM",
        pretrainable=True,
        trunk=True,
        scopes=("layer4",),
        explainable=True,
        mil=False,
        description="BodyCAM: AxialNet trunk, global average pooling, one linear layer (CAM)",
    )
