"""Oracles that bound what a spatial method could do against a planted cue (issue 30).

- ``organ-head``: each label's per-cell contributions outside the organs where that label can
  be (the vocabulary's ``label_organs``, on the segmented organs of the case, present label or
  not) are set to zero, in training and at test. For a model whose score is affine in its CAM
  layer (``head_is_affine``, mean over slices), HiResCAM is complete: ``logit = sum(map) + b``,
  so the masked logit is ``logit - sum(map outside the organ)``: the model can read nothing
  outside the organ, whatever it learns.
- ``input-mask``: every voxel outside the union of the segmented organs is replaced by a
  constant before the model sees it (segment, then classify): whatever is outside the organs
  (body wall, skin, table) cannot be read at all.

Both are ``ctbench run --oracle``; config.json records it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch-free at import: the run options read ORACLES
    import torch

ORACLES = {
    "none": "the model as it is",
    "organ-head": "each label's per-cell contributions outside its organs are zeroed, in "
    "training and at test",
    "input-mask": "voxels outside the segmented organs are set to a constant before the model",
}

MASKED_HU = 0
"""``input-mask``'s constant: soft tissue, so the lungs stay air inside a body for the
segmenter PARTITION runs on the masked volume (air would join them to the outside)."""


def organ_masked(
    logits: torch.Tensor, maps: torch.Tensor, cells: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, maps)`` of the organ-masked head from a complete explainer's raw maps
    ``[B, M, H, D1, D2]`` (``logit = sum(map) + b``) and the organ cells of each label, bool
    of the same shape: the contributions outside the cells are taken out of the logit and the
    map."""
    outside = maps * (~cells).to(maps.dtype)
    return logits - outside.sum(dim=(-3, -2, -1)), maps - outside


def check_oracle(oracle: str, arch: str, model: torch.nn.Module, explainer: dict[str, Any]) -> None:
    """One clear error, before any training, for an oracle the model cannot have;
    ``explainer``: the mask explainer's declaration (its name and ``faithful``)."""
    if oracle not in ORACLES:
        raise ValueError(f"unknown --oracle {oracle!r}; choose {', '.join(ORACLES)}")
    if oracle != "organ-head":
        return
    affine = getattr(model, "head_is_affine", False) and getattr(model, "explainable", False)
    if not affine or getattr(model, "slice_aggregation", "mean") != "mean":
        raise ValueError(
            "--oracle organ-head needs a score affine in the CAM layer and a mean over slices "
            f"(head_is_affine), whose HiResCAM map sums to the logit; {arch} is not"
        )
    if not explainer.get("faithful"):
        raise ValueError(
            f"--oracle organ-head reads the mask explainer's map as each cell's contribution; "
            f"{explainer['name']} does not declare faithful=True (use hirescam)"
        )


class InputMaskedSource:
    """``source`` with every voxel outside the union of ``segmenter``'s organs set to
    :data:`MASKED_HU` (``input-mask``); all else (labels, reports, cues, counterfactuals,
    shifted splits) passes through, masked the same way."""

    def __init__(self, source, segmenter: str) -> None:
        import ctbench

        self.inner, self.segmenter_name = source, segmenter
        self.segment = ctbench.create_segmenter(segmenter)
        if hasattr(source, "folder"):  # its own volume and PARTITION caches
            self.folder = source.folder / f"input-mask-{segmenter}"

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def masked(self, case):
        from dataclasses import replace

        organs = self.segment(case.volume, case.spacing).as_dict()
        inside = np.logical_or.reduce(list(organs.values()))
        volume = np.where(inside, case.volume, np.asarray(MASKED_HU, case.volume.dtype))
        return replace(case, volume=volume)

    def load(self, case_id: str):
        return self.masked(self.inner.load(case_id))

    def counterfactual(self, case_id: str, label: str, change: str):
        return self.masked(self.inner.counterfactual(case_id, label, change))

    def shift_source(self, kind: str):
        return InputMaskedSource(self.inner.shift_source(kind), self.segmenter_name)
