"""The CT-Net family: BodyConv, 3DConv and CTNet (paper Table 1; the paper's reference code).

These models mix information across slices with 3-D convolutions and end in a three-layer
classifier (128 -> 96 -> M), so their explanations are not guaranteed faithful:

- BodyConv: ResNet-18 per slice group, layer4 maps stacked into ``[512, H, G, G]``, three
  reducing Conv3d to ``[16, 5, 5, 5]``, then the classifier (dropout 0.5).
- 3DConv: the raw volume ``[1, 3H, Y, X]`` through four Conv3d (kernel 3, stride 3), two 1x1x1
  Conv3d to ``[64, 5, 5, 5]``, then the classifier (dropout 0.1). Never pretrained.
- CTNet: ResNet-18 per slice group, then the H slice maps become *channels* and the 512
  features become *depth* (``[H, 512, G, G]``); three reducing Conv3d and the classifier
  (dropout 0.5). The spatial link to the input is destroyed, so it is not explainable.

The CAM layer of BodyConv and 3DConv is the last ReLU of their reducing convolutions; its output
``[B, F, H', D1, D2]`` spans the whole input volume along depth (``cam_layout = "volume"``), so
explainers resample it onto the input's slice groups. Layer sizes follow the scaling rule of
``components`` (floor 5 per axis).
"""

from __future__ import annotations

import math
from pathlib import Path

import ctbench
import torch
from ctbench.plugins.architectures.components import (
    VOLUME_FLOOR,
    SliceBackboneModel,
    SliceTrunk,
    check_input,
    full_precision,
    mlp_head,
    refuse_pretrained,
    scaled_conv3d,
)
from torch import nn

# (out_channels, kernel, stride) of the three reducing Conv3d of BodyConv and CTNet.
REDUCING_CONVS = (
    (64, (3, 3, 3), (3, 1, 1)),
    (32, (3, 3, 3), (3, 1, 1)),
    (16, (3, 2, 2), (3, 2, 2)),
)


def reducing_convs(
    in_channels: int, sizes: tuple[int, int, int], plan=REDUCING_CONVS
) -> tuple[nn.Sequential, tuple[int, int, int], int]:
    """Conv3d + ReLU per step of ``plan``, scaled to ``sizes``; returns layers, sizes, channels."""
    layers: list[nn.Module] = []
    for out_channels, kernel, stride in plan:
        conv, sizes = scaled_conv3d(in_channels, out_channels, sizes, kernel, stride, VOLUME_FLOOR)
        layers += [conv, nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*layers), sizes, in_channels


class BodyConv(SliceBackboneModel):
    """ResNet-18 per slice group, then 3-D convolutions over the stack of layer4 maps."""

    explainable = True
    cam_layout = "volume"
    head_is_affine = False  # three FC layers with ReLUs: explanations are not complete

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
            input_shape, custom_convs=False, pretrained=pretrained, weights=weights
        )
        sizes = (input_shape[0], *self.trunk.grid)
        self.reducing_convs, sizes, channels = reducing_convs(self.trunk.out_channels, sizes)
        self.representation_shape = sizes
        self.classifier = mlp_head(channels * math.prod(sizes), n_classes, dropout=0.5)

    @property
    def cam_layer(self) -> nn.Module:
        return self.reducing_convs[-1]

    def from_backbone_features(self, features: torch.Tensor) -> torch.Tensor:
        maps = features.transpose(1, 2)  # [B, 512, H, G, G]
        z = self.reducing_convs(maps)  # [B, 16, H', D1, D2]
        with full_precision(z):
            return self.classifier(z.flatten(1).float())


# (out_channels, kernel, stride) of 3DConv's convolutions; the last two are 1x1x1.
THREE_D_CONVS = (
    (64, (3, 3, 3), (3, 3, 3)),
    (128, (3, 3, 3), (3, 3, 3)),
    (256, (3, 3, 3), (3, 3, 3)),
    (512, (3, 3, 3), (3, 3, 3)),
    (128, (1, 1, 1), (1, 1, 1)),
    (64, (1, 1, 1), (1, 1, 1)),
)


class ThreeDConv(nn.Module):
    """A plain 3-D CNN on the single-channel volume ``[1, 3H, Y, X]``, trained from scratch."""

    explainable = True
    cam_layout = "volume"
    head_is_affine = False  # three FC layers with ReLUs: explanations are not complete

    def __init__(self, n_classes: int, input_shape: tuple[int, int, int, int]) -> None:
        super().__init__()
        slices, channels, height, width = input_shape
        self.input_shape = tuple(input_shape)
        sizes = (slices * channels, height, width)
        self.reducing_convs, sizes, out_channels = reducing_convs(1, sizes, THREE_D_CONVS)
        self.representation_shape = sizes
        self.classifier = mlp_head(out_channels * math.prod(sizes), n_classes, dropout=0.1)

    @property
    def cam_layer(self) -> nn.Module:
        return self.reducing_convs[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_shape, type(self).__name__)
        batch, slices, channels, height, width = x.shape
        volume = x.reshape(batch, 1, slices * channels, height, width)  # slice 3h+c = group h, c
        z = self.reducing_convs(volume)  # [B, 64, S', D1, D2]
        with full_precision(z):
            return self.classifier(z.flatten(1).float())


class CTNet(SliceBackboneModel):
    """ResNet-18 per slice group; slice maps as channels and features as depth for 3-D convs."""

    explainable = False
    cam_layout = None
    head_is_affine = False

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
            input_shape, custom_convs=False, pretrained=pretrained, weights=weights
        )
        sizes = (self.trunk.out_channels, *self.trunk.grid)  # the 512 features become depth
        self.reducing_convs, sizes, channels = reducing_convs(input_shape[0], sizes)
        self.classifier = mlp_head(channels * math.prod(sizes), n_classes, dropout=0.5)

    def from_backbone_features(self, features: torch.Tensor) -> torch.Tensor:
        z = self.reducing_convs(features)  # [B, H as channels, 512 as depth, G, G]
        with full_precision(z):
            return self.classifier(z.flatten(1).float())


def bodyconv(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> BodyConv:
    return BodyConv(n_classes, input_shape, **options)


def three_d_conv(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> ThreeDConv:
    refuse_pretrained("3dconv", options)
    return ThreeDConv(n_classes, input_shape, **options)


def ctnet(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> CTNet:
    return CTNet(n_classes, input_shape, **options)


@ctbench.hookimpl
def register_architectures(register):
    register(
        "bodyconv",
        bodyconv,
        paper_name="BodyConv",
        pretrainable=True,
        trunk=True,
        explainable=True,
        mil=False,
        description="BodyConv: ResNet-18 per slice, 3-D convs over the stack, 3 FC",
    )
    register(
        "3dconv",
        three_d_conv,
        paper_name="3DConv",
        pretrainable=False,
        explainable=True,
        mil=False,
        description="3DConv: plain 3-D CNN on the raw volume, 3 FC, from scratch",
    )
    register(
        "ctnet",
        ctnet,
        paper_name="CTNet",
        pretrainable=True,
        trunk=True,
        explainable=False,
        mil=False,
        description="CT-Net: ResNet-18 per slice, slices as channels for 3-D convs, 3 FC",
    )
