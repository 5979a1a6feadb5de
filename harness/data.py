"""Torch datasets and loaders over any :class:`ctbench.cases.CaseSource`.

:class:`VolumeDataset` validates each case on load, runs the shared preprocessing
(``preprocess``) and, for training, one random flip/rotation (``augment``) applied identically
to the volume and to the organ and finding masks. Samples are dicts of tensors, so the default
collate batches them (batch size above 1, workers). Augmentation draws come from
``(seed, epoch, index)``: the same run gives the same batches whatever the number of workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ctbench.augment import Augmentation
from ctbench.cases import Case, CaseSource, InvalidCaseError, validate_volume
from ctbench.preprocess import (
    Preprocessing,
    fit_to_shape,
    group_slices,
    normalise,
)
from ctbench.vocabulary import ORGANS
from torch.utils.data import DataLoader, Dataset


class VolumeDataset(Dataset):
    """One split of a case source as model-ready samples.

    Each sample has ``x`` float32 ``[H, 3, Y, X]``, ``y`` float32 ``[M]``, ``case_id``,
    ``index`` and ``augmentation`` (``[flip_axis or -1, quarter turns]``). With
    ``with_organs`` it adds ``organs`` bool ``[len(ORGANS), S, Y, X]``; with ``with_findings``,
    ``findings`` bool ``[M, S, Y, X]`` (the union of each label's finding masks), both on the
    same grid and under the same augmentation as ``x``. With ``allowed_regions`` it adds
    ``allowed`` bool ``[M, H', D1, D2]``: PARTITION's G_true of the augmented organ masks.
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
    ) -> None:
        self.source = source
        self.split = split
        self.case_ids = source.case_ids(split)
        self.preprocessing = preprocessing or Preprocessing(volume_shape=tuple(source.volume_shape))
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.with_organs = with_organs
        self.with_findings = with_findings
        self.allowed_regions = allowed_regions  # a ctbench.partition.AllowedRegions, or None
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
        organ masks exactly (:class:`ctbench.partition.AllowedRegions`).
        """
        return augmentation.apply(fit_to_shape(array, self.preprocessing.volume_shape, fill))

    def __getitem__(self, index: int) -> dict[str, Any]:
        case = self.load_case(index)
        augmentation = self.augmentation(index)
        volume = self._transform(case.volume, case.volume.min(), augmentation)
        sample: dict[str, Any] = {
            "x": model_input(volume, self.preprocessing),
            "y": torch.from_numpy(case.labels.astype(np.float32)),
            "case_id": case.case_id,
            "index": index,
            "augmentation": torch.from_numpy(augmentation.as_array()),
        }
        if self.with_organs:
            if case.organs is None:
                raise InvalidCaseError(f"{case.case_id}: the dataset has no organ masks")
            stack = np.stack([case.organs[name] for name in ORGANS])
            sample["organs"] = torch.from_numpy(self._transform(stack, False, augmentation))
        if self.with_findings:
            empty = np.zeros(case.volume.shape, bool)
            stack = np.stack(
                [
                    m if (m := case.finding_mask(name)) is not None else empty
                    for name in self.source.label_names
                ]
            )
            sample["findings"] = torch.from_numpy(self._transform(stack, False, augmentation))
        if self.allowed_regions is not None:
            sample["allowed"] = torch.from_numpy(self.allowed_regions(case, augmentation))
        return sample


def model_input(volume_hu: np.ndarray, preprocessing: Preprocessing) -> torch.Tensor:
    """An ``[S, Y, X]`` HU volume already of ``volume_shape`` -> float32 ``[H, 3, Y, X]``."""
    normalised = normalise(volume_hu, preprocessing)
    return torch.from_numpy(group_slices(normalised, preprocessing.slices_per_group))


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
) -> DataLoader:
    """A DataLoader whose shuffling is seeded; workers are fresh each epoch (see set_epoch)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        persistent_workers=False,
    )
