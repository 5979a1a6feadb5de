"""PARTITION: allowed regions ``G_true [M, H', D1, D2]`` from report text and organ masks.

For each case: the report labeler gives the present labels and the organs that hold them (or
the dataset states them, as RAD-ChestCT's location columns do: ``Case.located``); the
segmenter gives right lung, left lung and mediastinum on the model's padded/cropped grid; the
downsampler brings each organ to the representation grid. For a present label the allowed
region is the union of its organs' small masks (heart, great vessel and mediastinum findings all
use the segmented mediastinum, which holds them); for an absent label nothing is allowed
(paper section 3.7, appendix 7.2).

Training flips and rotates the volume. The allowed regions of an augmented sample are those of
its augmented organ masks: each of the 16 possible augmentations is applied to the full-size
masks *before* downsampling. (Flipping the small grid instead, as the reference does, is exact
only for whole-factor ``area`` downsampling; with ``nearest`` it moves most organs' cells.)
The organ grids of every augmentation are computed once per case and configuration and cached
on disk with atomic writes (safe with several loader workers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ctbench.core.cases import Case, InvalidCaseError
from ctbench.data.augment import ALL_AUGMENTATIONS, Augmentation
from ctbench.data.preprocess import Preprocessing, fit_to_shape
from ctbench.regions.segmentation import SEGMENTED_ORGANS
from ctbench.runtime.storage import config_key, read_npz, write_json, write_npz

SEGMENTED_ORGAN_OF = {
    "right_lung": "right_lung",
    "left_lung": "left_lung",
    "heart": "mediastinum",
    "great_vessel": "mediastinum",
    "mediastinum": "mediastinum",
}


def allowed_regions(
    label_names: tuple[str, ...] | list[str],
    locations: dict[str, list[str]],
    organ_grids: dict[str, np.ndarray],
) -> np.ndarray:
    """``bool [M, H', D1, D2]``: the union of each present label's organs; absent labels none."""
    shape = next(iter(organ_grids.values())).shape
    regions = np.zeros((len(label_names), *shape), bool)
    for m, label in enumerate(label_names):
        for organ in locations.get(label, []):
            regions[m] |= organ_grids[SEGMENTED_ORGAN_OF[organ]]
    return regions


def report_locations(case: Case) -> dict[str, list[str]]:
    """``{label: organs}`` PARTITION places: the dataset's own placement when it states one
    (``Case.located``: RAD-ChestCT's location columns, CT-RATE's labels placed through its
    report), else what the report labeler (the default one, ctbench.regions.labeling) reads in the
    report."""
    if case.located is not None:
        return case.located
    if not case.report:
        raise InvalidCaseError(f"{case.case_id}: no report, so no labels to place")
    from ctbench.regions.labeling import locations

    return locations(case.report)


class AllowedRegions:
    """Allowed regions for the cases of one source, under one PARTITION configuration."""

    def __init__(
        self,
        label_names: tuple[str, ...] | list[str],
        representation_shape: tuple[int, int, int],
        preprocessing: Preprocessing,
        *,
        segmenter: str | None = None,
        downsampler: str | None = None,
        dilate: bool = False,
        cache_dir: str | Path | None = None,
        device: str = "cpu",
    ) -> None:
        """``device``: where the segmenter and the downsampler compute, when they can;
        ``segmenter`` and ``downsampler`` default to the plugins that declare ``default=True``."""
        import ctbench
        from ctbench.core.contracts import default_name
        from ctbench.regions import labeling

        segmenter = segmenter or default_name("segmenters")
        downsampler = downsampler or default_name("downsamplers")

        self.label_names = tuple(label_names)
        self.representation_shape = tuple(representation_shape)
        self.preprocessing = preprocessing
        self.segment = ctbench.create_segmenter(segmenter, device=device)
        self.downsample = ctbench.create_downsampler(downsampler, device=device)
        self.dilate = dilate
        self.config = {
            "labels": list(self.label_names),
            "representation_shape": list(representation_shape),
            "volume_shape": list(preprocessing.volume_shape),
            "segmenter": segmenter,
            "downsampler": downsampler,
            "dilate": dilate,
            # the placements of each case are cached too: a new labeler, or new rules, re-reads
            "labeler": labeling.identity(),
            "version": 2,  # 2: organ grids of every augmentation, downsampled after it
        }
        key = config_key(self.config)
        self.folder = Path(cache_dir) / f"allowed-{key}" if cache_dir is not None else None
        if self.folder is not None and not (self.folder / "config.json").exists():
            write_json(self.folder / "config.json", self.config)

    def compute(self, case: Case) -> tuple[np.ndarray, dict]:
        """``(organ grids, record)`` of one case.

        The grids are ``bool [len(ALL_AUGMENTATIONS), len(SEGMENTED_ORGANS), H', D1, D2]``:
        the segmented organs, augmented at full size, then downsampled. The record says how
        the organs were found (QC, fallback) and which organs the report gives each label.
        """
        located = report_locations(case)
        volume = fit_to_shape(case.volume, self.preprocessing.volume_shape)
        organs = self.segment(volume, case.spacing)
        masks = organs.as_dict().values()  # in SEGMENTED_ORGANS order
        shape, dilate = self.representation_shape, self.dilate
        grids = np.stack(
            [
                [self.downsample(augmentation.apply(mask), shape, dilate) for mask in masks]
                for augmentation in ALL_AUGMENTATIONS
            ]
        )
        record = {
            "method": organs.method,
            "qc_passed": organs.qc.passed,
            "qc_reason": organs.qc.reason,
            "locations": {k: v for k, v in located.items() if k in self.label_names},
        }
        return grids, record

    def organ_grids(self, case: Case) -> tuple[np.ndarray, dict]:
        """:meth:`compute`'s result, from the cache when present (and written there if not)."""
        if self.folder is None:
            return self.compute(case)
        if self.is_cached(case.case_id):
            return self._read(case.case_id)
        grids, record = self.compute(case)
        write_npz(self._path(case.case_id), organ_grids=grids, record=np.array(json.dumps(record)))
        return grids, record

    def _path(self, case_id: str) -> Path:
        from ctbench.core.cases import case_file_name

        return self.folder / f"{case_file_name(case_id)}.npz"

    def is_cached(self, case_id: str) -> bool:
        """True when ``case_id``'s organ grids are on disk (no need to load the case)."""
        return self.folder is not None and self._path(case_id).exists()

    def _read(self, case_id: str) -> tuple[np.ndarray, dict]:
        try:
            stored = read_npz(self._path(case_id))
            return stored["organ_grids"], json.loads(str(stored["record"]))
        except (ValueError, KeyError) as error:
            raise InvalidCaseError(f"{case_id}: {error}") from error

    def cached(self, case_id: str, augmentation: Augmentation | None = None) -> np.ndarray:
        """:meth:`__call__` of a case whose grids are cached, from its id alone."""
        return self._regions(*self._read(case_id), augmentation)

    def __call__(self, case: Case, augmentation: Augmentation | None = None) -> np.ndarray:
        """``G_true [M, H', D1, D2]`` of ``case`` under ``augmentation`` (default: none)."""
        return self._regions(*self.organ_grids(case), augmentation)

    def sample_regions(
        self,
        case_id: str,
        case: Case | None,
        augmentation: Augmentation | None,
        organ_cells: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(G_true, each label's organ cells or None)`` of one training or evaluation sample,
        its organ grids read once (from the cache by id when ``case`` is None). A label's
        organ cells are its organs whether the report names it or not (the vocabulary's
        ``label_organs``: where the label can be; ``--oracle organ-head``)."""
        grids, record = self._read(case_id) if case is None else self.organ_grids(case)
        allowed = self._regions(grids, record, augmentation)
        if not organ_cells:
            return allowed, None
        return allowed, self._regions(grids, record, augmentation, every_label=True)

    def _regions(
        self, grids, record, augmentation: Augmentation | None, every_label: bool = False
    ) -> np.ndarray:
        from ctbench.vocabulary import label_organs

        chosen = grids[(augmentation or Augmentation()).index]
        by_organ = dict(zip(SEGMENTED_ORGANS, chosen, strict=True))
        locations = label_organs() if every_label else record["locations"]
        return allowed_regions(self.label_names, locations, by_organ)
