"""Training augmentation (the paper's reference code): one random flip and one random rotation.

With probability 1/2 the volume is flipped along one axis drawn uniformly from {0, 1, 2}; with
probability 1/2 it is rotated by k x 90 degrees in the axial plane (axes 1, 2), k in {1, 2, 3}.
The draw is an :class:`Augmentation` record, applied identically to the volume and to every
mask, and kept with the sample so that allowed regions can follow it exactly. There are only
:data:`ALL_AUGMENTATIONS` (16) distinct records, so per-augmentation results can be cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """``flip_axis`` in {0, 1, 2} or None; ``rotations`` = k quarter turns in the axial plane."""

    flip_axis: int | None = None
    rotations: int = 0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Augmentation:
        flip = int(rng.integers(3)) if rng.random() < 0.5 else None
        turns = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
        return cls(flip, turns)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Transform the last three axes ``[..., S, Y, X]`` (volume or stacked masks)."""
        offset = array.ndim - 3
        if self.flip_axis is not None:
            array = np.flip(array, axis=offset + self.flip_axis)
        if self.rotations:
            array = np.rot90(array, k=self.rotations, axes=(offset + 1, offset + 2))
        return np.ascontiguousarray(array)

    @classmethod
    def from_array(cls, record) -> Augmentation:
        """The inverse of :meth:`as_array` (a sample's ``augmentation`` entry)."""
        flip, turns = (int(v) for v in record)
        return cls(None if flip < 0 else flip, turns)

    @property
    def index(self) -> int:
        """This record's position in :data:`ALL_AUGMENTATIONS` (0 is the identity)."""
        return ALL_AUGMENTATIONS.index(self)

    def as_array(self) -> np.ndarray:
        """``[flip_axis or -1, rotations]`` as int64, for batching."""
        return np.array([-1 if self.flip_axis is None else self.flip_axis, self.rotations])


ALL_AUGMENTATIONS: tuple[Augmentation, ...] = tuple(
    Augmentation(flip, turns) for flip in (None, 0, 1, 2) for turns in range(4)
)
"""Every record :meth:`Augmentation.draw` can give, the identity first."""


def augment_batch(volumes, records):
    """Each ``[S, Y, X]`` of a torch batch ``[B, S, Y, X]`` under its ``[flip, turns]`` record
    (``records [B, 2]``, as :meth:`Augmentation.as_array`): :meth:`Augmentation.apply` on the
    device, for whole batches; identity records cost nothing."""
    import torch

    out = []
    for volume, (flip, turns) in zip(volumes, records.tolist(), strict=True):
        if flip >= 0:
            volume = torch.flip(volume, dims=(flip,))
        if turns:
            volume = torch.rot90(volume, k=turns, dims=(1, 2))
        out.append(volume)
    return torch.stack(out)
