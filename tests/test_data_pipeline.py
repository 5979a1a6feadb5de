"""The shared preprocessing, augmentation and loaders (as in the paper's reference code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctbench.core.cases import Case, InvalidCaseError, validate_volume
from ctbench.data.augment import Augmentation
from ctbench.data.loader import VolumeDataset, make_loader
from ctbench.data.preprocess import (
    Preprocessing,
    centre_crop,
    group_slices,
    normalise,
    pad_to_at_least,
)
from ctbench.vocabulary import ORGANS, check_labels, label_organs, output_labels


def test_vocabulary_is_the_papers_80_labels():
    labels = output_labels()
    assert len(labels) == 80 and len(set(labels)) == 80
    assert sum(n.startswith("lung_") for n in labels) == 51
    assert labels[:2] == ("h_great_vessel_aneurysm", "h_great_vessel_atherosclerosis")
    assert label_organs()["lung_nodule"] == ("right_lung", "left_lung")
    assert label_organs()["heart_cardiomegaly"] == ("heart",)
    with pytest.raises(
        ValueError, match=r"labels\.csv: unknown label 'lung_nodul'. Did you mean 'lung_nodule'\?"
    ):
        check_labels(["lung_nodul"], "labels.csv")


def test_pad_puts_the_extra_voxel_at_the_end_and_crop_removes_floor_half_at_the_start():
    volume = np.arange(5 * 4 * 4).reshape(5, 4, 4).astype(np.int16)
    padded = pad_to_at_least(volume, (8, 4, 7), value=-1000)
    assert padded.shape == (8, 4, 7)
    assert np.array_equal(padded[1:6, :, 1:5], volume)  # 3 extra slices: 1 before, 2 after
    assert (padded[0] == -1000).all() and (padded[6:] == -1000).all()
    cropped = centre_crop(np.arange(7), (4,))
    assert cropped.tolist() == [1, 2, 3, 4]  # excess 3: floor(3/2) = 1 removed at the start


def test_normalise_clamps_scales_and_centres():
    config = Preprocessing(volume_shape=(3, 2, 2))
    values = normalise(np.array([[[-2000, -1000], [800, 3000]]] * 3, np.int16), config)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values[0].ravel(), [-0.449, -0.449, 0.551, 0.551], atol=1e-6)


def test_group_slices_takes_three_adjacent_slices_as_channels():
    volume = np.arange(6)[:, None, None] * np.ones((6, 2, 2))
    grouped = group_slices(volume)
    assert grouped.shape == (2, 3, 2, 2)
    assert grouped[1, 2, 0, 0] == 5  # group h, channel c is slice 3h + c
    assert Preprocessing().input_shape == (135, 3, 420, 420)


def test_augmentation_transforms_volume_and_masks_identically():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(6, 5, 5))
    mask = volume > 0.5
    seen = set()
    for seed in range(400):
        aug = Augmentation.draw(np.random.default_rng(seed))
        seen.add((aug.flip_axis, aug.rotations))
        assert np.array_equal(aug.apply(mask), aug.apply(volume) > 0.5)
        stacked = aug.apply(np.stack([mask, ~mask]))  # leading axes are left alone
        assert np.array_equal(stacked[0], aug.apply(mask))
    assert len(seen) == 16  # {none, 3 axes} x {0, 1, 2, 3 turns}
    flip = Augmentation(flip_axis=2)
    assert np.array_equal(flip.apply(flip.apply(volume)), volume)
    assert np.array_equal(
        Augmentation(rotations=2).apply(Augmentation(rotations=2).apply(volume)), volume
    )


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (np.zeros((4, 4)), "must be 3-D"),
        (np.full((2, 4, 4), np.nan, np.float32), "NaN or infinite"),
        (np.zeros((2, 4, 4), np.float32), "no voxel below -500 HU"),
        (np.full((2, 4, 4), 30000.0), "outside plausible Hounsfield units"),
    ],
)
def test_bad_volumes_name_the_case(volume, message):
    with pytest.raises(InvalidCaseError, match=f"case-7: .*{message}"):
        validate_volume(volume, "case-7")


def test_dataset_samples_are_model_ready(tiny_phantom):
    dataset = VolumeDataset(tiny_phantom, "train", with_organs=True, with_findings=True)
    sample = dataset[0]
    assert sample["x"].shape == (9, 3, 64, 64) and sample["x"].dtype == torch.float32
    assert float(sample["x"].min()) >= -0.45 and float(sample["x"].max()) <= 0.552
    assert sample["y"].shape == (12,)
    assert sample["organs"].shape == (len(ORGANS), 27, 64, 64)
    assert sample["findings"].shape == (12, 27, 64, 64)
    assert sample["findings"].dtype == torch.uint8  # instance ids: 0 outside, k in the k-th
    case = tiny_phantom.load(sample["case_id"])
    for k, name in enumerate(tiny_phantom.label_names):
        union = case.finding_mask(name)
        assert bool(sample["findings"][k].any()) == (union is not None) == bool(case.labels[k])
        instances = [f for f in case.findings if f.label == name and f.mask is not None]
        assert int(sample["findings"][k].max()) == len(instances)


def test_finding_instances_number_each_instance_first_come_first_kept():
    from ctbench.core.cases import Finding

    first, second = np.zeros((2, 2, 2), bool), np.zeros((2, 2, 2), bool)
    first[0, 0, :] = True
    second[0, 0, 1] = second[1, 1, 1] = True  # overlaps the first on one voxel
    case = Case(
        "c",
        np.zeros((2, 2, 2), np.int16),
        (1.0, 1.0, 1.0),
        np.array([True, False]),
        findings=[Finding("a", ("heart",), first), Finding("a", ("heart",), second)],
    )
    ids = case.finding_instances("a")
    assert ids.dtype == np.uint8 and ids[0, 0].tolist() == [1, 1] and ids[1, 1, 1] == 2
    assert np.array_equal(ids > 0, case.finding_mask("a"))
    assert case.finding_instances("b") is None


def test_augmented_samples_keep_volume_and_masks_aligned(tiny_phantom):
    plain = VolumeDataset(tiny_phantom, "train", with_organs=True)
    augmented = VolumeDataset(tiny_phantom, "train", augment=True, seed=1, with_organs=True)
    flipped_or_turned = 0
    for index in range(len(plain)):
        raw, aug = plain[index], augmented[index]
        record = Augmentation.from_array(aug["augmentation"])
        flipped_or_turned += record != Augmentation()
        volume = raw["x"].reshape(27, 64, 64).numpy()
        assert np.array_equal(aug["x"].reshape(27, 64, 64).numpy(), record.apply(volume))
        assert np.array_equal(aug["organs"].numpy(), record.apply(raw["organs"].numpy()))
        lungs = aug["organs"][0] | aug["organs"][1]
        assert float(aug["x"].reshape(27, 64, 64)[lungs].median()) < -0.3  # masks still on lung
    assert flipped_or_turned > len(plain) // 2


def test_loader_batches_with_workers_and_is_deterministic(tiny_phantom):
    def first_epoch(workers):
        dataset = VolumeDataset(tiny_phantom, "train", augment=True, seed=5)
        dataset.set_epoch(1)
        loader = make_loader(dataset, batch_size=4, shuffle=True, workers=workers, seed=5)
        return [(batch["case_id"], batch["x"]) for batch in loader]

    serial, parallel = first_epoch(0), first_epoch(2)
    assert len(serial) == 6 and serial[0][1].shape == (4, 9, 3, 64, 64)
    for (ids_a, x_a), (ids_b, x_b) in zip(serial, parallel, strict=True):
        assert ids_a == ids_b
        assert torch.equal(x_a, x_b)


class BrokenSource:
    name = "broken"
    label_names = ("lung_nodule",)
    volume_shape = (3, 8, 8)

    def case_ids(self, split):
        return ["good", "nan"]

    def load(self, case_id):
        volume = np.full((3, 8, 8), -1000, np.float32)
        if case_id == "nan":
            volume[0, 0, 0] = np.nan
        return Case(case_id, volume, (1.0, 1.0, 1.0), np.zeros(1, bool))


def test_a_bad_case_in_a_loader_names_the_case():
    dataset = VolumeDataset(BrokenSource(), "train")
    assert dataset[0]["x"].shape == (1, 3, 8, 8)
    with pytest.raises(InvalidCaseError, match="nan: volume has 1 NaN"):
        dataset[1]
