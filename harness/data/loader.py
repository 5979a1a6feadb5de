"""Torch datasets and loaders over any :class:`ctbench.core.cases.CaseSource`.

:class:`VolumeDataset` validates each case on load, runs the shared preprocessing
(``preprocess``) and, for training, one random flip/rotation (``augment``) applied identically
to the volume and to the organ and finding masks. Samples are dicts of tensors, so the default
collate batches them (batch size above 1, workers). Augmentation draws come from
``(seed, epoch, index)``: the same run gives the same batches whatever the number of workers.

Runs take the fast path (``raw=True``): a sample is the case's cached int16 volume
(``ctbench.data.volume_cache``, memory-mapped) and its augmentation record, and
:func:`to_model_batch` augments, clamps, scales and groups whole batches on the device, with
the same numbers bit for bit as the per-sample path (``x``) that tests and tools read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ctbench.core.cases import Case, CaseSource, InvalidCaseError, validate_volume
from ctbench.data.augment import Augmentation, augment_batch
from ctbench.data.preprocess import Preprocessing, fit_to_shape, model_inputs
from ctbench.vocabulary import ORGANS
from torch.utils.data import DataLoader, Dataset


class VolumeDataset(Dataset):
    """One split of a case source as model-ready samples.

    Each sample has ``x`` float32 ``[H, 3, Y, X]``, ``y`` float32 ``[M]``, ``case_id``,
    ``index`` and ``augmentation`` (``[flip_axis or -1, quarter turns]``). With
    ``with_organs`` it adds ``organs`` bool ``[len(ORGANS), S, Y, X]``; with ``with_findings``,
    ``findings`` uint8 ``[M, S, Y, X]`` (each label's finding instances: 0 outside, ``k`` in
    the ``k``-th, ``Case.finding_instances``; ``> 0`` is the union of its masks), both on the
    same grid and under the same augmentation as ``x``. With ``allowed_regions`` it adds
    ``allowed`` bool ``[M, H', D1, D2]``: PARTITION's G_true of the augmented organ masks, and
    with ``organ_cells`` also ``organ_cells`` (each label's organs, present or not).

    With ``raw`` the sample holds ``volume`` (int16 ``[S, Y, X]`` on the model's grid, *not*
    augmented) instead of ``x``; :func:`to_model_batch` finishes the batch on the device.
    ``volume_cache`` (a :class:`ctbench.data.volume_cache.VolumeCache`) serves cached cases without
    decoding them.
    """

    def __init__(
        self,
        source: CaseSource,
        split: str,
        *,
        preprocessing: Preprocessing | None = None,
        augment: bool = False,
        seed: int = 0,
        with_organs: bool = False,
        with_findings: bool = False,
        allowed_regions=None,
        organ_cells: bool = False,
        raw: bool = False,
        volume_cache=None,
    ) -> None:
        self.source = source
        self.raw = raw
        self.volume_cache = volume_cache
        self.split = split
        self.case_ids = source.case_ids(split)
        self.preprocessing = preprocessing or Preprocessing(volume_shape=tuple(source.volume_shape))
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.with_organs = with_organs
        self.with_findings = with_findings
        # a ctbench.regions.partition.AllowedRegions, or None
        self.allowed_regions = allowed_regions
        # with allowed_regions: each label's organ cells too (--oracle organ-head)
        self.organ_cells = organ_cells
        _, y, x = self.preprocessing.volume_shape
        if augment and y != x:
            raise ValueError(
                f"volume_shape {self.preprocessing.volume_shape}: quarter-turn augmentation "
                "needs a square axial plane (Y == X)"
            )

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draws of ``epoch`` (call before iterating a new epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.case_ids)

    def augmentation(self, index: int) -> Augmentation:
        if not self.augment:
            return Augmentation()
        return Augmentation.draw(np.random.default_rng([self.seed, self.epoch, index]))

    def load_case(self, index: int) -> Case:
        case_id = self.case_ids[index]
        case = self.source.load(case_id)
        validate_volume(case.volume, case_id)
        expected = len(self.source.label_names)
        if case.labels.shape != (expected,):
            raise InvalidCaseError(
                f"{case_id}: {case.labels.shape[0] if case.labels.ndim else 0} labels, "
                f"expected {expected} ({self.source.name} label_names)"
            )
        return case

    def _transform(self, array: np.ndarray, fill, augmentation: Augmentation) -> np.ndarray:
        """Pad and centre-crop the last three axes onto the model's grid, then augment them.

        Augmenting after the crop, as the paper's reference code does, keeps every sample on
        the one grid PARTITION segments, so its allowed regions are those of the augmented
        organ masks exactly (:class:`ctbench.regions.partition.AllowedRegions`).
        """
        return augmentation.apply(fit_to_shape(array, self.preprocessing.volume_shape, fill))

    def decodes(self, case_id: str) -> bool:
        """True when a sample of ``case_id`` reads the dataset's own files: its fitted volume
        or its allowed regions are not cached, the per-sample path (``x``) is on, or the
        split wants its masks. Otherwise the caches serve it whole."""
        regions = self.allowed_regions
        served = (
            self.raw
            and self.volume_cache is not None
            and self.volume_cache.has(case_id)
            and (regions is None or regions.is_cached(case_id))
        )
        return not served or self.with_organs or self.with_findings

    def __getitem__(self, index: int) -> dict[str, Any]:
        case_id = self.case_ids[index]
        augmentation = self.augmentation(index)
        case = self.load_case(index) if self.decodes(case_id) else None
        if case is None:  # the fast path: the cached, fitted volume, mapped from disk
            labels = self.volume_cache.labels(case_id)
            volume = torch.from_numpy(self.volume_cache.volume(case_id))
        else:
            labels = case.labels
            volume = torch.from_numpy(
                np.ascontiguousarray(fit_to_shape(case.volume, self.preprocessing.volume_shape))
            )
        sample: dict[str, Any] = {
            "y": torch.from_numpy(labels.astype(np.float32)),
            "case_id": case_id,
            "index": index,
            "augmentation": torch.from_numpy(augmentation.as_array()),
        }
        if self.raw:
            sample["volume"] = volume
        else:
            sample["x"] = to_model_batch(
                {"volume": volume[None], "augmentation": sample["augmentation"][None]},
                self.preprocessing,
            )["x"][0]
        if self.with_organs:
            if case.organs is None:
                raise InvalidCaseError(f"{case.case_id}: the dataset has no organ masks")
            stack = np.stack([case.organs[name] for name in ORGANS])
            sample["organs"] = torch.from_numpy(self._transform(stack, False, augmentation))
        if self.with_findings:
            empty = np.zeros(case.volume.shape, np.uint8)
            stack = np.stack(
                [
                    m if (m := case.finding_instances(name)) is not None else empty
                    for name in self.source.label_names
                ]
            )
            sample["findings"] = torch.from_numpy(self._transform(stack, False, augmentation))
        if self.allowed_regions is not None:
            allowed, cells = self.allowed_regions.sample_regions(
                case_id, case, augmentation, self.organ_cells
            )
            sample["allowed"] = torch.from_numpy(allowed)
            if cells is not None:
                sample["organ_cells"] = torch.from_numpy(cells)
        return sample


def to_model_batch(batch: dict[str, Any], preprocessing: Preprocessing | None) -> dict[str, Any]:
    """A batch of ``volume`` (int16 ``[B, S, Y, X]``, any device) -> the same batch with
    ``x`` float32 ``[B, H, 3, Y, X]``: each volume under its ``augmentation`` record, then
    clamped, scaled, centred and grouped, all where the batch is (the GPU in runs)."""
    if "volume" not in batch:
        return batch
    volumes = augment_batch(batch["volume"], batch["augmentation"])
    out = {key: value for key, value in batch.items() if key != "volume"}
    out["x"] = model_inputs(volumes, preprocessing)
    return out


def model_input(volume_hu: np.ndarray, preprocessing: Preprocessing) -> torch.Tensor:
    """An ``[S, Y, X]`` HU volume already of ``volume_shape`` -> float32 ``[H, 3, Y, X]``."""
    return model_inputs(torch.from_numpy(np.ascontiguousarray(volume_hu))[None], preprocessing)[0]


def prepare_volume(
    volume_hu: np.ndarray, preprocessing: Preprocessing
) -> tuple[np.ndarray, torch.Tensor]:
    """Pad and centre-crop one volume (no augmentation): ``(HU [S, Y, X], model input)``."""
    fitted = fit_to_shape(volume_hu, preprocessing.volume_shape)
    return fitted, model_input(fitted, preprocessing)


def make_loader(
    dataset: VolumeDataset,
    *,
    batch_size: int = 2,
    shuffle: bool = False,
    workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffling is seeded; workers are fresh each epoch (see set_epoch).
    ``pin_memory`` (for CUDA) lets batches be copied to the GPU while the next one loads."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        persistent_workers=False,
        pin_memory=pin_memory,
    )
