"""``hu-histogram``: a non-deep baseline that calibrates how hard each label is (issue 31).

Each slice group ``[3, Y, X]`` is turned back into HU (the inverse of the shared
preprocessing) and, per cell of a ``D1 x D2`` grid, into a soft histogram of HU bands: the share
of the cell's voxels in each band, each voxel counted by ``sigmoid((hu - low) / t) -
sigmoid((hu - high) / t)`` so that the histogram is differentiable in the input. Each (band,
cell) share is standardised (BatchNorm without affine: a fixed affine map in evaluation), and one
linear score per slice group reads them, ``c_h = <W, z_h> + b`` with ``W [M, K, D1, D2]``; the
volume's score is the mean over slice groups, as AxialNet's (paper eq. 1). HiResCAM is exact in
closed form on ``z_h`` (the standardised histograms are the CAM layer), so the row sits in Table 1
with OrganIoU like every model.

The default head is rank one per label, ``W_m = profile_m (x) where_m``: which HU bands state
the label, times a map of where they count (``head="full"`` keeps every weight free; on the
default preset's 192 training volumes it overfits, benchmarks/hu_histogram_heads.py). The
histograms have nothing to learn, so the model declares ``fixed_trunk=True`` and a run trains the
head alone on their cached output. A label it gets and AxialNet misses is a recipe or resolution
limit of AxialNet; one AxialNet gets and it misses needs shape or context, not density
(docs/models.md).
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
"""The head's weights are ``GAIN`` times its parameters: Adam moves a parameter by about the
learning rate a step, and a score needs weights of order one within the 60 head epochs."""

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
        # per edge, the cell's share of voxels above it (over the group's three slices); a
        # band's share is the difference of its two edges' (pooling is linear, so this equals
        # pooling each voxel's band membership, at a fraction of the memory traffic)
        above = torch.stack(
            [
                F.adaptive_avg_pool2d(
                    torch.sigmoid((hu - edge) / self.softness).mean(1, keepdim=True), self.grid
                )[:, 0]
                for edge in self.edges
            ],
            dim=1,
        )  # [N, K + 1, D1, D2]
        return above[:, :-1] - above[:, 1:]  # [N, K, D1, D2]


class CellStandardise(nn.Module):
    """``[N, K, D1, D2]`` -> each (band, cell) share standardised over the training data
    (BatchNorm without affine over the ``K * D1 * D2`` features): a lung cell's share of soft
    tissue is read against that cell's own usual share, not the band's over all cells."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(features, affine=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm(z.flatten(1)).view_as(z)


class HUHistogram(nn.Module):
    """Per-cell HU histograms, one linear score per slice group, the mean over slice groups."""

    explainable = True
    cam_layout = "per_slice"
    slice_aggregation = "mean"
    head_is_affine = True

    def __init__(
        self,
        n_classes: int,
        input_shape: tuple[int, int, int, int],
        *,
        grid: int = 8,
        head: str = "rank1",
        standardise: str = "cell",
    ) -> None:
        super().__init__()
        slices, _, height, width = input_shape
        if height < grid or width < grid:
            raise ValueError(f"hu-histogram: a {height} x {width} slice is smaller than its grid")
        if standardise not in ("cell", "band"):
            raise ValueError(f"hu-histogram: standardise must be cell or band, not {standardise!r}")
        self.input_shape = tuple(input_shape)
        bands = len(HU_EDGES) - 1
        # the fixed trunk: nothing in it learns, so a run trains the rest on its cached output
        self.backbone = SoftHistogram((grid, grid))
        self.standardise = (
            CellStandardise(bands * grid * grid)
            if standardise == "cell"
            else nn.BatchNorm2d(bands, affine=False)
        )
        if head == "full":
            self.rank = None
            self.fc = nn.Conv2d(bands, n_classes, (grid, grid))  # W [M, K, D1, D2], b [M]
            nn.init.normal_(self.fc.weight, std=0.01)
            nn.init.zeros_(self.fc.bias)
        elif head.startswith("rank") and head[4:].isdigit() and int(head[4:]) > 0:
            # W_m = sum_r profile_mr (x) where_mr, each map starting flat (the whole slice)
            self.rank = int(head[4:])
            self.profile = nn.Parameter(torch.randn(n_classes, self.rank, bands) * 0.01)
            self.where = nn.Parameter(torch.ones(n_classes, self.rank, grid, grid) / grid)
            self.bias = nn.Parameter(torch.zeros(n_classes))
        else:
            raise ValueError(f"hu-histogram: head must be full or rankR (R >= 1), not {head!r}")
        self.representation_shape = (slices, grid, grid)

    @property
    def cam_layer(self) -> nn.Module:
        return self.standardise

    def linear_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [M, K, D1, D2], b [M])``: ``c_mh = <W_m, z_h> + b_m`` (closed-form HiResCAM)."""
        if self.rank is None:
            return self.fc.weight * GAIN, self.fc.bias * GAIN
        weight = torch.einsum("mrk,mryx->mkyx", self.profile, self.where)
        return weight * GAIN, self.bias * GAIN

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, 3, Y, X]`` -> the histograms ``[B, H, K, D1, D2]`` (the fixed trunk)."""
        check_input(x, self.input_shape, type(self).__name__)
        return self.backbone(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def scores_from_histograms(self, f: torch.Tensor) -> torch.Tensor:
        """Per-slice-group scores ``C [B, M, H]`` from the histograms ``[B, H, K, D1, D2]``."""
        batch, slices = f.shape[:2]
        z = self.standardise(f.flatten(0, 1))  # [B*H, K, D1, D2]
        weight, bias = self.linear_head()
        scores = F.conv2d(z, weight, bias)  # [B*H, M, 1, 1]
        return scores.view(batch, slices, -1).transpose(1, 2)

    def from_backbone_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.scores_from_histograms(f).mean(dim=2)

    def slice_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-slice-group scores ``C [B, M, H]`` (bias included, before the sigmoid)."""
        return self.scores_from_histograms(self.backbone_features(x))

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
        trunk=True,
        fixed_trunk=True,
    )
