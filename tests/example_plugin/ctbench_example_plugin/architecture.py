"""``example-tinynet``: a tiny explainable MIL model without a trunk split
(docs/plugins/architectures.md).

``model(x)`` maps ``x: [B, H, 3, Y, X]`` to logits ``[B, M]``; ``cam_layer`` is the module whose
output ``[B*H, F, D1, D2]`` explainers read; ``representation_shape`` is ``(H, D1, D2)``;
``slice_scores(x)`` gives per-slice scores ``[B, M, H]`` whose mean over slices is the logits.
It declares neither ``pretrainable`` nor ``trunk``: a run trains it end to end from its own
initialisation under every preset.
"""

from __future__ import annotations

import torch
from ctbench.plugin import hookimpl
from torch import nn


class TinySliceNet(nn.Module):
    """Per slice group: a small conv stem, a ReLU (the CAM layer), one linear map, then the mean."""

    explainable = True
    cam_layout = "per_slice"
    slice_aggregation = "mean"
    head_is_affine = True  # the score is the mean over slices of one linear map

    def __init__(
        self, n_classes: int, input_shape: tuple[int, int, int, int], features: int = 8
    ) -> None:
        super().__init__()
        slices, channels, _, _ = input_shape
        grid = 4
        self.features = nn.Sequential(
            nn.Conv2d(channels, features, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(grid),
            nn.Conv2d(features, features, kernel_size=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(features * grid * grid, n_classes)
        self.representation_shape = (slices, grid, grid)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]

    def slice_scores(self, x: torch.Tensor) -> torch.Tensor:
        batch, slices = x.shape[:2]
        z = self.features(x.flatten(0, 1))  # [B*H, F, 4, 4]
        scores = self.head(z.flatten(1))  # [B*H, M]
        return scores.view(batch, slices, -1).transpose(1, 2)  # [B, M, H]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slice_scores(x).mean(dim=2)  # [B, M]


def tiny_slice_net(
    n_classes: int, input_shape: tuple[int, int, int, int], **options
) -> TinySliceNet:
    """The factory ctbench calls: ``create_model("example-tinynet", M, shape, **options)``."""
    if options.pop("pretrained", False):
        raise ValueError("example-tinynet has no pretrained weights; use pretrained=False")
    return TinySliceNet(n_classes, input_shape, **options)


@hookimpl
def register_architectures(register):
    register(
        "example-tinynet",
        tiny_slice_net,
        description="Example plugin: tiny explainable slice-wise MIL classifier",
        explainable=True,
        mil=True,
    )
