"""``example-threshold``: lungs as the air inside the body (docs/plugins/segmenters.md).

``segmenter(volume_hu [S, Y, X], spacing_mm) -> ctbench.regions.segmentation.OrganMasks``:
voxels below -400 HU that do not touch the volume's border, split at the middle of their extent
in X (the patient's right lung at low X), and the mediastinum as the rest of the box between
them. A volume without such air has no lungs: ``NoLungError``, never invented masks.
"""

from __future__ import annotations

import numpy as np
from ctbench.plugin import QC, NoLungError, OrganMasks, hookimpl
from scipy import ndimage


def threshold_segmenter(**_options):
    def segment(volume: np.ndarray, spacing) -> OrganMasks:
        labelled, _ = ndimage.label(volume < -400)
        border = np.unique(
            np.concatenate([labelled[[0, -1]].ravel(), labelled[:, [0, -1]].ravel(),
                            labelled[:, :, [0, -1]].ravel()])
        )  # fmt: skip
        lungs = (labelled > 0) & ~np.isin(labelled, border)
        if not lungs.any():
            raise NoLungError("no lung found: no air inside the body below -400 HU")
        columns = np.flatnonzero(lungs.any(axis=(0, 1)))
        middle = (columns[0] + columns[-1] + 1) // 2
        x = np.arange(volume.shape[2])[None, None, :]
        right, left = lungs & (x < middle), lungs & (x >= middle)
        mediastinum = np.zeros_like(lungs)
        rows = np.flatnonzero(lungs.any(axis=(0, 2)))
        mediastinum[:, rows[0] : rows[-1] + 1, middle - 2 : middle + 2] = True
        mediastinum &= ~lungs
        passed = bool(right.any() and left.any())
        return OrganMasks(right, left, mediastinum, QC(passed, "" if passed else "one lung"),
                          "example-threshold")  # fmt: skip

    return segment


@hookimpl
def register_segmenters(register):
    register(
        "example-threshold",
        threshold_segmenter,
        description="Example plugin: air inside the body, split at its middle",
    )
