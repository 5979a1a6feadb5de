"""The preprocessing shared by every dataset, as in the paper's reference code.

Pad to at least the target shape with the volume minimum (extra voxel at the end),
centre-crop (floor(excess / 2) removed at the start), augment (training only; after the crop,
as the paper's reference code does), clamp HU to [-1000, 800], scale to [0, 1], subtract 0.449, and
group three adjacent slices into ``[H, 3, Y, X]``. Masks go through the same pad, crop and
augmentation, so they stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ctbench.core import paper


@dataclass(frozen=True)
class Preprocessing:
    """The configurable numbers of the pipeline; the defaults are the paper's."""

    volume_shape: tuple[int, int, int] = paper.VOLUME_SHAPE
    hu_range: tuple[float, float] = paper.HU_RANGE
    centre: float = 0.449
    slices_per_group: int = paper.SLICES_PER_GROUP

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The model input ``(H, 3, Y, X)`` this pipeline produces."""
        s, y, x = self.volume_shape
        if s % self.slices_per_group:
            raise ValueError(
                f"volume_shape {self.volume_shape}: {s} slices do not split into groups of "
                f"{self.slices_per_group}"
            )
        return (s // self.slices_per_group, self.slices_per_group, y, x)


def pad_to_at_least(array: np.ndarray, shape: tuple[int, ...], value) -> np.ndarray:
    """Pad symmetrically (the extra voxel at the end) so every axis is at least ``shape``."""
    widths = []
    for size, target in zip(array.shape, shape, strict=True):
        extra = max(0, target - size)
        widths.append((extra // 2, extra - extra // 2))
    if not any(before or after for before, after in widths):
        return array
    return np.pad(array, widths, mode="constant", constant_values=value)


def centre_crop(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Crop each axis to ``shape``, removing floor(excess / 2) at the start."""
    slices = []
    for size, target in zip(array.shape, shape, strict=True):
        start = max(0, size - target) // 2
        slices.append(slice(start, start + target))
    return array[tuple(slices)]


def fit_to_shape(array: np.ndarray, shape: tuple[int, int, int], fill=None) -> np.ndarray:
    """Pad the last three axes with ``fill`` (default: the array's minimum), then centre-crop
    them: a volume, or stacked masks (``fill=False``), on the model's grid."""
    full = array.shape[:-3] + tuple(shape)
    return centre_crop(pad_to_at_least(array, full, array.min() if fill is None else fill), full)


def normalise(volume_hu: np.ndarray, config: Preprocessing) -> np.ndarray:
    """Clamp to ``hu_range``, scale to [0, 1], subtract ``centre``: float32, same shape."""
    low, high = config.hu_range
    scaled = (np.clip(volume_hu.astype(np.float32), low, high) - low) / (high - low)
    return scaled - np.float32(config.centre)


def model_inputs(volumes, config: Preprocessing):
    """Torch ``[B, S, Y, X]`` HU (int16 or float, any device) -> float32 ``[B, H, 3, Y, X]``:
    :func:`normalise` and :func:`group_slices` on whole batches, bit for bit the same numbers."""
    import torch

    low, high = config.hu_range
    batch, s, y, x = volumes.shape
    k = config.slices_per_group
    if s % k:
        raise ValueError(f"{s} slices do not split into groups of {k}")
    scaled = volumes.to(torch.float32, copy=True)  # in place from here: one buffer, not five
    scaled.clamp_(low, high).sub_(low).div_(high - low).sub_(config.centre)
    return scaled.reshape(batch, s // k, k, y, x)


def group_slices(volume: np.ndarray, slices_per_group: int = 3) -> np.ndarray:
    """``[S, Y, X] -> [S / k, k, Y, X]``: k adjacent slices become the channels of one group."""
    s, y, x = volume.shape
    if s % slices_per_group:
        raise ValueError(f"{s} slices do not split into groups of {slices_per_group}")
    return volume.reshape(s // slices_per_group, slices_per_group, y, x)
