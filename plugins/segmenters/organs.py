"""Unsupervised organ segmentation for PARTITION (paper appendix 7.2.2).

``morphological``:

1. Binarise at -300 HU.
2. Clear the border: drop every in-slice component touching the slice's edge (outside air).
3. Keep the two largest components of each slice (ties keep more).
4. Remove small 3-D objects; the size is in millilitres (default 20 mL), so any spacing works.
5. (ctbench) Gas is not lung: components whose median is below -900 HU (bowel and stomach gas,
   which the reference removed with a 512 mL size cut tuned on full chest CTs; lung parenchyma
   sits around -850 HU) are dropped, in each slice before step 3 and again in 3-D after step 4.
   In-slice holes (vessels, nodules) of what remains are filled.
6. Split the lungs at the midline of their bounding box (the paper's words; the reference code
   used the array's midline instead).
7. Mediastinum: the non-lung voxels inside the lung bounding box, between x = rig + q and
   x = lef - q/2, q = (lef - rig) / 4 (centre-left, where the heart sits).
8. Quality control: both lungs present, of plausible relative volume, each on its own side;
   on failure the heuristic masks are returned and the reason recorded. A volume with no lung
   at all is a :class:`ctbench.regions.segmentation.NoLungError` instead: halves of it would be
   invented organs, not a fallback.

Steps 2-3 label every slice at once with an in-plane structuring element and step 4 uses one
3-D labelling, which gives exactly the result of the per-slice scikit-image loop
(``per_slice_reference``, used by the tests and the benchmark).
"""

from __future__ import annotations

import ctbench
import numpy as np
from ctbench.regions.segmentation import QC, NoLungError, OrganMasks, heuristic_masks
from scipy import ndimage

THRESHOLD_HU = -300.0  # step 1 (the paper's reference code)
MIN_VOLUME_ML = 20.0  # step 4
GAS_HU = -900.0  # step 5: a component whose median is below this is gas, not lung

IN_PLANE = np.zeros((3, 3, 3), bool)
IN_PLANE[1] = True  # 8-connectivity within a slice, none across slices (skimage's 2-D default)
IN_PLANE_CROSS = np.zeros((3, 3, 3), bool)
IN_PLANE_CROSS[1] = ndimage.generate_binary_structure(2, 1)  # 4-connectivity within a slice


def _counts(labels: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """Voxels per label (optionally only where ``where``), counted slice by slice: the same as
    one ``np.bincount`` of the whole volume, several times faster because each slice stays in
    cache."""
    total = np.zeros(n + 1, np.int64)
    for s in range(labels.shape[0]):
        ids = labels[s] if where is None else labels[s][where[s]]
        total += np.bincount(ids.ravel(), minlength=n + 1)
    return total


def _gas(labels: np.ndarray, below: np.ndarray, n: int, sizes: np.ndarray) -> np.ndarray:
    """Per label: True when more than half its voxels are below the gas level (median is gas)."""
    return _counts(labels, n, below) * 2 > sizes


def _keep_two_largest_per_slice(
    labels: np.ndarray, valid: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Per label: kept if valid and at least as large as its slice's second largest valid one.

    ``labels`` come from an in-plane labelling in raster order, so each slice's ids form one
    contiguous range and the slice of an id follows from the per-slice maximum id.
    """
    last_id = np.maximum.accumulate(labels.reshape(labels.shape[0], -1).max(axis=1))
    ids = np.flatnonzero(valid[1:]) + 1
    keep = np.zeros(len(sizes), bool)
    if len(ids) == 0:
        return keep
    slice_of = np.searchsorted(last_id, ids)
    order = np.lexsort((-sizes[ids], slice_of))  # by slice, then largest first
    ids, slice_of = ids[order], slice_of[order]
    starts = np.flatnonzero(np.r_[True, slice_of[1:] != slice_of[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(ids)], strict=True):
        group = ids[start:stop]
        cutoff = sizes[group[min(1, len(group) - 1)]]
        keep[group[sizes[group] >= cutoff]] = True
    return keep


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill in-slice holes: background components (4-connected, as scipy's binary_fill_holes
    counts them in 2-D) that do not touch their slice's edge."""
    background, _ = ndimage.label(~mask, structure=IN_PLANE_CROSS)
    edge = np.concatenate(
        [
            background[:, 0, :].ravel(),
            background[:, -1, :].ravel(),
            background[:, :, 0].ravel(),
            background[:, :, -1].ravel(),
        ]
    )
    outside = np.zeros(background.max() + 1, bool)
    outside[edge] = True
    outside[0] = True  # label 0 is the mask itself
    return mask | ~outside[background]


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    return tuple(
        slice(int(idx[0]), int(idx[-1]) + 1)
        for idx in (np.flatnonzero(mask.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
    )


def lung_mask(
    volume: np.ndarray,
    spacing: tuple[float, float, float],
    threshold_hu: float = THRESHOLD_HU,
    min_volume_ml: float = MIN_VOLUME_ML,
    gas_hu: float = GAS_HU,
) -> np.ndarray:
    """Both lungs as one boolean mask (steps 1-5), vectorised over slices."""
    out = np.zeros(volume.shape, bool)
    tissue = volume >= threshold_hu
    if not tissue.any():
        return out
    # Air outside the tissue's in-plane box (plus a one-voxel margin of air) is all connected to
    # the slice edge and would be cleared in step 2: leave it out of the work.
    rows, cols = np.flatnonzero(tissue.any(axis=(0, 2))), np.flatnonzero(tissue.any(axis=(0, 1)))
    crop = (
        slice(None),
        slice(max(rows[0] - 1, 0), rows[-1] + 2),
        slice(max(cols[0] - 1, 0), cols[-1] + 2),
    )
    out[crop] = _lungs_in(volume[crop], spacing, threshold_hu, min_volume_ml, gas_hu)
    return out


def _lungs_in(volume, spacing, threshold_hu, min_volume_ml, gas_hu) -> np.ndarray:
    labels, n = ndimage.label(volume < threshold_hu, structure=IN_PLANE)
    valid = np.ones(n + 1, bool)
    valid[0] = False
    edge = np.concatenate(
        [
            labels[:, 0, :].ravel(),
            labels[:, -1, :].ravel(),
            labels[:, :, 0].ravel(),
            labels[:, :, -1].ravel(),
        ]
    )
    valid[edge] = False
    sizes = _counts(labels, n)
    valid &= ~_gas(labels, volume < gas_hu, n, sizes)
    kept = _keep_two_largest_per_slice(labels, valid, sizes)[labels]
    out = np.zeros(volume.shape, bool)
    if not kept.any():
        return out
    box = _bounding_box(kept)  # everything after this happens inside the candidates' box
    kept, sub = kept[box], volume[box]
    components, m = ndimage.label(kept)
    sizes = _counts(components, m)
    keep = sizes * float(np.prod(spacing)) / 1000.0 >= min_volume_ml
    keep &= ~_gas(components, sub < gas_hu, m, sizes)
    keep[0] = False
    out[box] = _fill_holes_per_slice(keep[components])
    return out


def per_slice_reference(
    volume: np.ndarray,
    spacing: tuple[float, float, float],
    threshold_hu: float = THRESHOLD_HU,
    min_volume_ml: float = MIN_VOLUME_ML,
    gas_hu: float = GAS_HU,
) -> np.ndarray:
    """Steps 1-5 as a straightforward scikit-image loop over slices and regions (the reference's
    style); the benchmark and the tests check that :func:`lung_mask` gives the same output."""
    from skimage.measure import label, regionprops
    from skimage.segmentation import clear_border

    def is_gas(region) -> bool:
        return (region.image_intensity[region.image] < gas_hu).sum() * 2 > region.area

    kept = np.zeros(volume.shape, bool)
    for s in range(volume.shape[0]):
        labelled = label(clear_border(volume[s] < threshold_hu))
        regions = [r for r in regionprops(labelled, intensity_image=volume[s]) if not is_gas(r)]
        regions.sort(key=lambda r: -r.area)
        if regions:
            cutoff = regions[min(1, len(regions) - 1)].area
            for region in regions:
                if region.area >= cutoff:
                    kept[s][labelled == region.label] = True
    components = label(kept, connectivity=1)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lungs = np.zeros(volume.shape, bool)
    for region in regionprops(components, intensity_image=volume):
        if region.area * voxel_ml >= min_volume_ml and not is_gas(region):
            lungs[components == region.label] = True
    for s in range(volume.shape[0]):
        lungs[s] = ndimage.binary_fill_holes(lungs[s])
    return lungs


def split_and_check(lungs: np.ndarray, spacing) -> OrganMasks:
    """Steps 6-8: right/left at the bounding-box midline, mediastinum box, quality control."""
    shape = lungs.shape
    if not lungs.any():  # the heuristic halves would invent lungs: no answer is the answer
        raise NoLungError(
            f"no lung found: no air below {THRESHOLD_HU:g} HU enclosed by the body in this "
            f"{'x'.join(map(str, shape))} volume (not a chest CT, or not in HU?)"
        )
    s_idx, y_idx, x_idx = (np.flatnonzero(lungs.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
    rig, lef = int(x_idx[0]), int(x_idx[-1]) + 1
    midline = (rig + lef) // 2
    x = np.arange(shape[2])[None, None, :]
    right, left = lungs & (x < midline), lungs & (x >= midline)
    q = (lef - rig) // 4
    box = np.zeros(shape, bool)
    box[s_idx[0] : s_idx[-1] + 1, y_idx[0] : y_idx[-1] + 1, rig + q : lef - q // 2] = True
    mediastinum = box & ~lungs
    voxel_ml = float(np.prod(spacing)) / 1000.0
    right_ml, left_ml = right.sum() * voxel_ml, left.sum() * voxel_ml
    reason = ""
    if rig > 0.31 * shape[2]:
        reason = f"right lung missing: lungs start at x = {rig} of {shape[2]}"
    elif lef < 0.71 * shape[2]:
        reason = f"left lung missing: lungs end at x = {lef} of {shape[2]}"
    elif min(right_ml, left_ml) < 5.0 or not 0.25 <= right_ml / max(left_ml, 1e-9) <= 4.0:
        reason = f"implausible lung volumes: right {right_ml:.0f} mL, left {left_ml:.0f} mL"
    if reason:
        return _fallback(shape, reason)
    return OrganMasks(right, left, mediastinum, QC(True), "morphological")


def _fallback(shape, reason: str) -> OrganMasks:
    masks = heuristic_masks(shape)
    masks.qc = QC(False, reason)
    masks.method = "heuristic (fallback)"
    return masks


class MorphologicalSegmenter:
    """``segmenter(volume_hu, spacing_mm) -> OrganMasks`` (steps 1-8 above).

    ``device`` other than the CPU computes steps 1-5 there with torch
    (``lungs_on_device``: the same mask, by label propagation); the CPU keeps scipy, which is
    faster there. Steps 6-8 are a few reductions and run on the CPU.
    """

    def __init__(
        self,
        *,
        threshold_hu: float = THRESHOLD_HU,
        min_volume_ml: float = MIN_VOLUME_ML,
        gas_hu: float = GAS_HU,
        device: str = "cpu",
    ) -> None:
        self.options = {
            "threshold_hu": threshold_hu,
            "min_volume_ml": min_volume_ml,
            "gas_hu": gas_hu,
        }
        self.device = str(device)

    def __call__(self, volume: np.ndarray, spacing: tuple[float, float, float]) -> OrganMasks:
        if self.device == "cpu":
            lungs = lung_mask(volume, spacing, **self.options)
        else:
            from .lungs_on_device import lung_mask as lung_mask_on_device

            lungs = lung_mask_on_device(volume, spacing, **self.options, device=self.device)
        return split_and_check(lungs, spacing)


class HeuristicSegmenter:
    """Right half / centre half / left half, whatever the volume (appendix 7.2.2)."""

    def __call__(self, volume: np.ndarray, spacing: tuple[float, float, float]) -> OrganMasks:
        return heuristic_masks(volume.shape)


@ctbench.hookimpl
def register_segmenters(register):
    register(
        "morphological",
        MorphologicalSegmenter,
        default=True,
        on_device=True,
        description="Threshold, border clearing, two largest per slice, mL size and gas "
        "cuts, bbox midline split; QC with heuristic fallback",
    )
    register(
        "heuristic",
        HeuristicSegmenter,
        heuristic=True,
        description="Right half / centre half / left half of the volume (fallback)",
    )
