"""``hu-histogram``: a non-deep baseline that calibrates how hard each label is (issue 31).

Each slice group ``[3, Y, X]`` is turned back into HU (the inverse of the shared
preprocessing: ``hu = (x + 0.449) * 1800 - 1000``) and, per cell of a ``D1 x D2`` grid, into a
soft histogram of HU bands: the share of the cell's voxels in each band, each voxel counted by
``sigmoid((hu - low) / t) - sigmoid((hu - high) / t)`` so that the histogram is differentiable
in the input. One linear score per slice group reads the histograms of all cells,
``c_h = <W, z_h> + b`` with ``W [M, K, D1, D2]``, and the volume's score is the mean over
slice groups, as AxialNet's (paper eq. 1). HiResCAM is then exact in closed form on ``z_h``
(the histograms are the CAM layer), so the row sits in Table 1 with OrganIoU like every model.

There is no trunk and nothing pretrained: what it learns is which HU bands, where, state each
label. A label it gets and AxialNet misses is a recipe or resolution limit of AxialNet; one
AxialNet gets and it misses needs shape or context, not density (docs/models.md).
"""

from __future__ import annotations

import ctbench
import torch
from ctbench.data.preprocess import Preprocessing
from ctbench.plugins.architectures.components import check_input
from torch import nn
from torch.nn import functional as F

HU_EDGES = (
    -1000.0, -950.0, -900.0, -850.0, -800.0, -700.0, -600.0, -450.0, -300.0, -150.0, -80.0,
    -30.0, 10.0, 30.0, 50.0, 70.0, 100.0, 150.0, 250.0, 400.0, 800.0,
)  # fmt: skip
"""Band edges in HU: air, lung and its densities (emphysema below -950, ground glass and
consolidation above -700), fat, water, soft tissue and blood, calcification and bone."""

GAIN = 10.0
"""The head's weights are ``GAIN`` times its parameters: SGD at the paper's learning rate moves
such a score GAIN^2 times faster, which a model trained for 3 epochs from scratch needs."""

SOFTNESS_HU = 5.0
"""``t``: how many HU a band's edge is blurred over (the histogram's derivative lives there)."""


class SoftHistogram(nn.Module):
    """``[N, 3, Y, X]`` model input -> ``[N, K, D1, D2]``: per cell, the share of its voxels
    (over the three slices of the group) in each of the K HU bands."""

    def __init__(self, grid: tuple[int, int], edges=HU_EDGES, softness: float = SOFTNESS_HU):
        super().__init__()
        self.grid = tuple(grid)
        self.register_buffer("edges", torch.tensor(edges, dtype=torch.float32), persistent=False)
        self.softness = float(softness)
        shared = Preprocessing()  # the inverse of the shared preprocessing's scaling
        low, high = shared.hu_range
        self.scale, self.offset, self.centre = high - low, low, shared.centre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hu = (x.float() + self.centre) * self.scale + self.offset  # [N, 3, Y, X]
        above = torch.sigmoid((hu.unsqueeze(2) - self.edges.view(1, 1, -1, 1, 1)) / self.softness)
        share = above[:, :, :-1] - above[:, :, 1:]  # [N, 3, K, Y, X]: in band k
        share = share.mean(dim=1)  # the group's three slices
        return F.adaptive_avg_pool2d(share, self.grid)  # [N, K, D1, D2]


class HUHistogram(nn.Module):
    """Per-cell HU histograms, one linear score per slice group, the mean over slice groups."""

    explainable = True
    cam_layout = "per_slice"
    slice_aggregation = "mean"
    head_is_affine = True

    def __init__(
        self, n_classes: int, input_shape: tuple[int, int, int, int], *, grid: int = 8
    ) -> None:
        super().__init__()
        slices, _, height, width = input_shape
        if height < grid or width < grid:
            raise ValueError(f"hu-histogram: a {height} x {width} slice is smaller than its grid")
        self.input_shape = tuple(input_shape)
        bands = len(HU_EDGES) - 1
        # the shares standardised per band (BatchNorm without affine: in evaluation a fixed
        # affine map, so the score stays affine in the CAM layer's output): a few hundred SGD
        # steps at the paper's learning rate then move the scores
        self.histogram = nn.Sequential(
            SoftHistogram((grid, grid)), nn.BatchNorm2d(bands, affine=False)
        )
        self.fc = nn.Conv2d(bands, n_classes, (grid, grid))  # W [M, K, D1, D2], b [M]
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)
        self.representation_shape = (slices, grid, grid)

    @property
    def cam_layer(self) -> nn.Module:
        return self.histogram

    def linear_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [M, K, D1, D2], b [M])``: ``c_mh = <W_m, z_h> + b_m`` (closed-form HiResCAM)."""
        return self.fc.weight * GAIN, self.fc.bias * GAIN

    def slice_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-slice-group scores ``C [B, M, H]`` (bias included, before the sigmoid)."""
        check_input(x, self.input_shape, type(self).__name__)
        batch, slices = x.shape[:2]
        z = self.histogram(x.flatten(0, 1))  # [B*H, K, D1, D2]
        weight, bias = self.linear_head()
        scores = F.conv2d(z, weight, bias)  # [B*H, M, 1, 1]
        return scores.view(batch, slices, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slice_scores(x).mean(dim=2)


def hu_histogram(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> HUHistogram:
    return HUHistogram(n_classes, input_shape, **options)


@ctbench.hookimpl
def register_architectures(register):
    register(
        "hu-histogram",
        hu_histogram,
        description="Calibration baseline: per-cell soft HU histograms, one linear score per "
        "slice group, the mean over slices (no deep features, nothing pretrained)",
        explainable=True,
        mil=True,
        paper_name="HU histogram",
    )
