"""The paper's numbers, in one torch-free place (Draelos & Carin; docs/models.md).

Every module that defaults to the paper's setting reads it from here: the data geometry, the
model input, the mask loss weight and the training recipe of the ``paper`` preset.
"""

from __future__ import annotations

SPACING_MM = 0.8
"""Isotropic voxel side every volume is resampled to (RAD-ChestCT's)."""

VOLUME_SHAPE = (405, 420, 420)
"""``[S, Y, X]`` every volume is padded or cropped to (324 x 336 x 336 mm at 0.8 mm)."""

SLICES_PER_GROUP = 3
"""Adjacent slices stacked as the three channels of one slice group."""

INPUT_SHAPE = (VOLUME_SHAPE[0] // SLICES_PER_GROUP, SLICES_PER_GROUP, *VOLUME_SHAPE[1:])
"""The model input ``(H, C, Y, X)``: 135 slice groups of 3 x 420 x 420."""

HU_RANGE = (-1000.0, 800.0)
"""The Hounsfield window voxels are clipped to before scaling."""

MASK_LAMBDA = 1.0 / 3.0
"""The weight of the mask loss beside the classification loss."""

LEARNING_RATE = 1e-3
"""The learning rate (SGD with momentum 0.99, batch 1, up to 100 epochs, patience 15)."""

MOMENTUM = 0.99
EPOCHS = 100
PATIENCE = 15
BATCH_SIZE = 1
