"""The paper's numbers, in one torch-free place (Draelos & Carin; docs/models.md).

Every module that defaults to the paper's setting reads it from here: the data geometry, the
model input, the mask loss weight and the training recipe of the ``paper`` preset.
"""

from __future__ import annotations

SPACING_MM = 0.8
"""Isotropic voxel side every volume is resampled to (RAD-ChestCT's)."""

VOLUME_SHAPE = (405, 420, 420)
"""``[S, Y, X]`` every volume is padded or cropped to (324 x 336 x 336 mm at 0.8 mm)."""

FIELD_OF_VIEW_MM = (324.0, 336.0, 336.0)
"""The physical extent of VOLUME_SHAPE at SPACING_MM, ``[S, Y, X]`` (written out: 405 * 0.8 is
not exactly 324.0 in floating point)."""

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
WEIGHT_DECAY = 1e-7
EPOCHS = 100
PATIENCE = 15
BATCH_SIZE = 1


# --- the paper's published results, keyed by the names its tables use -----------------------
# A plugin says which row or column it is by declaring ``paper_name`` (architectures: "AxialNet";
# explainers: "HiResCAM"; downsamplers: "nearest"), so ctbench's tables find the paper's number
# beside their own without the core naming any plugin.

TABLE1 = {  # validation median AUROC, OrganIoU Grad-CAM, HiResCAM (percent)
    "CTNet": (66.3, None, None),
    "3DConv": (53.8, 3.3, 4.5),
    "BodyConv": (50.2, 0.0, 14.6),
    "BodyCAM": (62.0, 15.7, 15.7),
    "MaxPool": (65.5, 9.3, 10.9),
    "RandInitResNet": (63.1, 15.1, 14.1),
    "NoCustomConv": (56.5, 10.0, 19.7),
    "AxialNet": (67.5, 18.7, 21.5),
}
"""Table 1, by the paper's model names, in the paper's row order."""

TABLE1_EXPLAINERS = ("Grad-CAM", "HiResCAM")
"""The explainers of Tables 1 and 2's OrganIoU columns, in their order."""

TABLE2 = {
    False: {"Grad-CAM": 20.1, "HiResCAM": 20.7},
    True: {"Grad-CAM": 21.4, "HiResCAM": 27.6},
}
"""Test OrganIoU (percent) of AxialNet without and with the mask loss."""

TABLE5 = {
    ("area", False): 0.658,
    ("area", True): 0.662,
    ("trilinear", False): 0.661,
    ("trilinear", True): 0.671,
    ("nearest", False): 0.679,
    ("nearest", True): 0.654,
}
"""Validation median AUROC of AxialNet with the mask loss, by downsampling and dilation."""

TABLE7 = {  # label: (pos %, AUROC class loss, AUROC with mask loss, DeLong p) in percent
    "lung_nodule": (70.9, 68.77, 67.66, 1.65e-4),
    "lung_opacity": (47.7, 62.17, 58.16, 2.12e-12),
    "lung_atelectasis": (28.9, 70.81, 71.09, 0.62),
    "lung_pleural_effusion": (20.0, 91.29, 90.11, 4.82e-4),
    "lung_consolidation": (14.4, 73.76, 67.76, 1.98e-15),
    "lung_mass": (7.9, 69.86, 65.36, 3.42e-6),
    "heart_pericardial_effusion": (15.7, 67.38, 67.81, 0.62),
    "heart_cardiomegaly": (9.6, 81.41, 81.36, 0.87),
    "lung_pneumothorax": (2.9, 81.62, 81.34, 0.80),
}
"""Table 7: per-label test AUROC without and with the mask loss."""
