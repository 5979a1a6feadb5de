"""``example-maxpool``: an organ mask onto the map's grid by max pooling
(docs/plugins/downsamplers.md).

``downsample(mask bool [S, Y, X], representation_shape (H', D1, D2), dilate) -> bool [H', D1,
D2]``: a cell is allowed where any voxel of the organ falls in it; ``dilate`` adds the cells
next to those (3 x 3 x 3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from ctbench.plugin import hookimpl


def max_pool_downsampler(**_options):
    def downsample(mask: np.ndarray, representation_shape, dilate: bool = False) -> np.ndarray:
        grid = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        small = F.adaptive_max_pool3d(grid, tuple(representation_shape))
        if dilate:
            small = F.max_pool3d(small, kernel_size=3, stride=1, padding=1)
        return small[0, 0].numpy() > 0

    return downsample


@hookimpl
def register_downsamplers(register):
    register(
        "example-maxpool",
        max_pool_downsampler,
        description="Example plugin: organ mask -> map grid by max pooling",
    )
