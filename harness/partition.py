"""PARTITION: allowed regions ``G_true [M, H', D1, D2]`` from report text and organ masks.

For each case: the report labeler gives the present labels and the organs that hold them; the
segmenter gives right lung, left lung and mediastinum on the model's padded/cropped grid; the
downsampler brings each organ to the representation grid. For a present label the allowed
region is the union of its organs' small masks (heart, great vessel and mediastinum findings all
use the segmented mediastinum, which holds them); for an absent label nothing is allowed
(paper section 3.7, appendix 7.2; reference facts 7.3). Computed once per case and
configuration, cached on disk with atomic writes (safe with several loader workers); training
applies each sample's flip/rotation record to it exactly as to the volume.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ctbench.cases import Case, InvalidCaseError
from ctbench.preprocess import Preprocessing, fit_to_shape
from ctbench.storage import config_key, read_npz, write_json, write_npz

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


class AllowedRegions:
    """Allowed regions for the cases of one source, under one PARTITION configuration."""

    def __init__(
        self,
        label_names: tuple[str, ...] | list[str],
        representation_shape: tuple[int, int, int],
        preprocessing: Preprocessing,
        *,
        segmenter: str = "morphological",
        downsampler: str = "nearest",
        dilate: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        import ctbench

        self.label_names = tuple(label_names)
        self.representation_shape = tuple(representation_shape)
        self.preprocessing = preprocessing
        self.segment = ctbench.create_segmenter(segmenter)
        self.downsample = ctbench.create_downsampler(downsampler)
        self.dilate = dilate
        self.config = {
            "labels": list(self.label_names),
            "representation_shape": list(representation_shape),
            "volume_shape": list(preprocessing.volume_shape),
            "segmenter": segmenter,
            "downsampler": downsampler,
            "dilate": dilate,
            "version": 1,
        }
        key = config_key(self.config)
        self.folder = Path(cache_dir) / f"allowed-{key}" if cache_dir is not None else None
        if self.folder is not None and not (self.folder / "config.json").exists():
            write_json(self.folder / "config.json", self.config)

    def compute(self, case: Case) -> tuple[np.ndarray, dict]:
        """``(G_true, record)``; the record says how the organs were found (QC, fallback)."""
        if not case.report:
            raise InvalidCaseError(f"{case.case_id}: no report, so no labels to place")
        from ctbench.labeler import label_report

        located = label_report(case.report)["locations"]
        volume = fit_to_shape(case.volume, self.preprocessing.volume_shape)
        organs = self.segment(volume, case.spacing)
        grids = {
            name: self.downsample(mask, self.representation_shape, self.dilate)
            for name, mask in organs.as_dict().items()
        }
        record = {
            "method": organs.method,
            "qc_passed": organs.qc.passed,
            "qc_reason": organs.qc.reason,
            "labels": sorted(set(located) & set(self.label_names)),
        }
        return allowed_regions(self.label_names, located, grids), record

    def __call__(self, case: Case) -> np.ndarray:
        """``G_true`` for ``case``, from the cache when present."""
        if self.folder is None:
            return self.compute(case)[0]
        path = self.folder / f"{case.case_id}.npz"
        if path.exists():
            try:
                return read_npz(path)["allowed"]
            except (ValueError, KeyError) as error:
                raise InvalidCaseError(f"{case.case_id}: {error}") from error
        regions, record = self.compute(case)
        write_npz(path, allowed=regions, record=np.array(json.dumps(record)))
        return regions
