"""``axialnet-ms``: AxialNet plus a branch that sees findings of a few pixels (issue 31, part 2).

AxialNet reads ResNet-18's layer4 through a 4 x 4 grid (at the phantom's 128 x 128) and
averages 16 slice groups: a 6-10 mm nodule (2-4 pixels) or a plaque is a small part of one cell
of one slice group, and the mean dilutes it away. ``axialnet-ms`` keeps AxialNet whole (trunk,
custom convolutions, per-slice linear map, mean over slices) and adds a focal branch on a grid
four times finer in-plane (cells of 4 x 4 pixels, ResNet's layer1 resolution):

- per cell, the soft HU histogram of its voxels (``hu-histogram``'s 20 bands, a fixed transform
  of the input), standardised per band;
- one 3 x 3 convolution over neighbouring cells and a ReLU (``hidden`` channels): whether a
  cell of soft tissue sits in lung, is round or part of a tube, needs its neighbours;
- optionally (``layers``) per-cell features from ResNet's layer2 and layer3 of the same forward,
  each through a 1 x 1 convolution and a ReLU, brought to the fine grid by nearest upsampling;
- one linear score per cell, pooled by the mean of the volume's ``top_k`` highest cells (over
  all slice groups and cells): a finding in one slice group is not diluted by the others.

The volume's logit is AxialNet's plus the focal branch's. The CAM layer is the concatenation,
on the fine grid, of AxialNet's ``z_h`` (nearest-upsampled) and the focal features; the logit is
piecewise linear in it and positively homogeneous apart from the biases, so generic HiResCAM's
maps (gradient times activation) sum to the logit less the biases: the completeness identity of
AxialNet, on a grid 8 times finer (``tests/test_axialnet_ms.py``).

Under the default recipe the pretrained ResNet-18 is frozen and cached (with the histograms,
which have nothing to learn) and everything else trains for the preset's head epochs, as
AxialNet's head does. What was tried, and what each gave, is in docs/models.md.
"""

from __future__ import annotations

import math
from pathlib import Path

import ctbench
import torch
from ctbench.plugins.architectures.components import (
    SliceBackboneModel,
    SliceTrunk,
    check_input,
    full_precision,
    resnet_grid,
)
from ctbench.plugins.architectures.hu_histogram import HU_EDGES, SoftHistogram
from torch import nn
from torch.nn import functional as F

FOCAL_LAYERS = ("layer2", "layer3")
"""The ResNet-18 layers the focal branch may read (``layers=``)."""

RESNET_LAYERS = {"layer2": (5, 128, 2), "layer3": (6, 256, 3), "layer4": (7, 512, 4)}
"""Each layer's index in ``resnet18_features``' children, its channels and its number."""


class Representation(nn.Module):
    """The CAM layer: ``(z4 [N, 16, D1, D2], focal [N, C, G1, G2]) -> [N, 16 + C, G1, G2]``,
    AxialNet's representation brought onto the fine grid beside the focal features."""

    def __init__(self, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, z4: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.interpolate(z4, size=self.grid, mode="nearest"), focal], dim=1)


class AxialNetMS(SliceBackboneModel):
    """AxialNet's logit plus a focal branch's top-k mean of fine-grid cell scores."""

    explainable = True
    cam_layout = "per_slice"
    slice_aggregation = None  # the focal branch pools cells of all slice groups together
    # piecewise linear in Z (top-k, as MaxPool's max over slices) and homogeneous apart from
    # the biases: HiResCAM's residual is the score of Z = 0, as for an affine head
    head_is_affine = True

    def __init__(
        self,
        n_classes: int,
        input_shape: tuple[int, int, int, int],
        *,
        hidden: int = 32,
        top_k: int = 4,
        layers: tuple[str, ...] = (),
        pretrained: bool = False,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        slices, _, height, width = input_shape
        unknown = set(layers) - set(FOCAL_LAYERS)
        if unknown:
            raise ValueError(f"axialnet-ms: layers must be among layer2, layer3; got {unknown}")
        if top_k < 1:
            raise ValueError(f"axialnet-ms: top_k must be at least 1, got {top_k}")
        self.input_shape = tuple(input_shape)
        self.layers = tuple(layers)
        self.top_k = top_k
        self.trunk = SliceTrunk(
            input_shape, custom_convs=True, pretrained=pretrained, weights=weights
        )
        self.fc = nn.Conv2d(self.trunk.out_channels, n_classes, self.trunk.grid)  # AxialNet's
        self.grid = (resnet_grid(height, 1), resnet_grid(width, 1))  # layer1's: 4 x 4 pixels
        bands = len(HU_EDGES) - 1
        self.histogram = SoftHistogram(self.grid)
        self.local = nn.Sequential(
            nn.BatchNorm2d(bands), nn.Conv2d(bands, hidden, 3, padding=1), nn.ReLU()
        )
        self.projections = nn.ModuleDict(
            {name: nn.Sequential(nn.Conv2d(RESNET_LAYERS[name][1], hidden, 1), nn.ReLU())
             for name in self.layers}
        )  # fmt: skip
        focal_channels = hidden * (1 + len(self.layers))
        self.representation = Representation(self.grid)
        self.focal_fc = nn.Conv2d(focal_channels, n_classes, 1)
        self.representation_shape = (slices, *self.grid)
        # AxialNet's weight spread evenly over the fine cells of each of its cells, so that
        # <W, z4> is a sum over the fine grid (each fine cell's share of a coarse cell)
        rows = self._cell_index(self.grid[0], self.trunk.grid[0])
        cols = self._cell_index(self.grid[1], self.trunk.grid[1])
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        counts = torch.bincount(rows)[rows][:, None] * torch.bincount(cols)[cols][None, :]
        self.register_buffer("share", 1.0 / counts.float(), persistent=False)

    @staticmethod
    def _cell_index(fine: int, coarse: int) -> torch.Tensor:
        """The coarse cell each fine cell's nearest upsampling copies (F.interpolate's rule)."""
        return (torch.arange(fine) * (coarse / fine)).floor().long().clamp(max=coarse - 1)

    @property
    def cam_layer(self) -> nn.Module:
        return self.representation

    # ---- the split the head epochs use: ResNet-18 (frozen) and the histograms (fixed) ----
    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, 3, Y, X] -> [B, H, P]``: layer4's output, the fine histograms and the
        layers the focal branch reads, flattened and packed (the cache of the head epochs)."""
        check_input(x, self.input_shape, type(self).__name__)
        flat = x.flatten(0, 1)
        parts, h = {}, flat
        wanted = {RESNET_LAYERS[name][0]: name for name in (*self.layers, "layer4")}
        for index, module in enumerate(self.trunk.resnet):
            h = module(h)
            if index in wanted:
                parts[wanted[index]] = h
        packed = [parts["layer4"], self.histogram(flat), *(parts[n] for n in self.layers)]
        return torch.cat([p.flatten(1) for p in packed], 1).unflatten(0, x.shape[:2])

    def _unpack(self, features: torch.Tensor) -> list[torch.Tensor]:
        """The packed features -> ``[layer4, histograms, *layers]``, each ``[B*H, C, ., .]``."""
        flat = features.flatten(0, 1)
        shapes = [self.trunk_shape("layer4"), (len(HU_EDGES) - 1, *self.grid)]
        shapes += [self.trunk_shape(name) for name in self.layers]
        sizes = [math.prod(s) for s in shapes]
        return [
            part.reshape(-1, *shape)
            for part, shape in zip(flat.split(sizes, dim=1), shapes, strict=True)
        ]

    def trunk_shape(self, layer: str) -> tuple[int, int, int]:
        """``(C, D1, D2)`` of ResNet-18's ``layer`` output for this input shape."""
        _, channels, number = RESNET_LAYERS[layer]
        height, width = self.input_shape[2:]
        return (channels, resnet_grid(height, number), resnet_grid(width, number))

    def from_backbone_features(self, features: torch.Tensor) -> torch.Tensor:
        batch, slices = features.shape[:2]
        layer4, histograms, *layers = self._unpack(features)
        z4 = self.trunk.from_backbone(layer4.unflatten(0, (batch, slices)))  # [B*H, 16, D1, D2]
        focal = [self.local(histograms.float())]
        for name, f in zip(self.layers, layers, strict=True):
            focal.append(F.interpolate(self.projections[name](f), size=self.grid, mode="nearest"))
        z = self.representation(z4, torch.cat(focal, 1))  # the CAM layer, [B*H, F, G1, G2]
        with full_precision(z):
            return self.scores(z.float(), batch, slices)

    def scores(self, z: torch.Tensor, batch: int, slices: int) -> torch.Tensor:
        """Logits ``[B, M]`` from the representation ``z [B*H, 16 + C, G1, G2]``: AxialNet's
        mean over slices of ``<W, z4> + b`` (``W`` spread over the fine cells) plus the mean of
        the ``top_k`` highest focal cell scores of each volume."""
        z4, focal = z[:, : self.trunk.out_channels], z[:, self.trunk.out_channels :]
        weight = self.fc.weight[:, :, self.rows][:, :, :, self.cols] * self.share  # [M, 16, G]
        axial = torch.einsum("nfyx,mfyx->nm", z4, weight) + self.fc.bias  # [B*H, M]
        axial = axial.view(batch, slices, -1).mean(1)
        cells = self.focal_fc(focal)  # [B*H, M, G1, G2]
        cells = cells.view(batch, slices, *cells.shape[1:]).transpose(1, 2).flatten(2)
        k = min(self.top_k, cells.shape[2])
        return axial + cells.topk(k, dim=2).values.mean(2)

    def split_at(self, scope: str):
        """Only ``head``: ResNet-18 frozen and cached with the histograms."""
        if scope != "head":
            raise ValueError(f"axialnet-ms has no split at {scope!r}: head only")
        return self.backbone, self.backbone_features, self.from_backbone_features

    def biases(self) -> torch.Tensor:
        """``[M]``: what the logit is beside the maps' sum (AxialNet's and the focal bias)."""
        return self.fc.bias + self.focal_fc.bias


def axialnet_ms(n_classes: int, input_shape: tuple[int, int, int, int], **options) -> AxialNetMS:
    if "layers" in options and isinstance(options["layers"], str):
        options["layers"] = tuple(n for n in options["layers"].split(",") if n)
    return AxialNetMS(n_classes, input_shape, **options)


@ctbench.hookimpl
def register_architectures(register):
    register(
        "axialnet-ms",
        axialnet_ms,
        description="AxialNet plus a focal branch: fine-grid HU histograms (4 x 4 pixel cells), "
        "a 3 x 3 conv, the mean of the volume's top 4 cell scores",
        pretrainable=True,
        trunk=True,
        explainable=True,
        mil=False,
    )
