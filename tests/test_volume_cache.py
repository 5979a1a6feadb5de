"""The GPU data path: cached int16 volumes (memory-mapped) and batches finished on the device,
with the same numbers and the same augmentation as the per-sample path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctbench.core.cases import Case, InvalidCaseError
from ctbench.data.augment import ALL_AUGMENTATIONS, Augmentation, augment_batch
from ctbench.data.loader import VolumeDataset, make_loader, to_model_batch
from ctbench.data.preprocess import Preprocessing, fit_to_shape, group_slices, normalise
from ctbench.data.volume_cache import VolumeCache, cache_for


@pytest.fixture()
def cache(tmp_path, tiny_phantom) -> VolumeCache:
    """An empty cache of the tiny phantom's grid (runs keep theirs beside the phantom)."""
    return VolumeCache(tmp_path, {"dataset": "tiny-under-test"}, tiny_phantom.volume_shape)


def test_every_augmentation_on_a_batch_matches_numpy():
    volumes = np.random.default_rng(0).integers(-1200, 1500, (16, 6, 8, 8)).astype(np.int16)
    records = torch.tensor(np.stack([a.as_array() for a in ALL_AUGMENTATIONS]))
    done = augment_batch(torch.from_numpy(volumes), records).numpy()
    for k, augmentation in enumerate(ALL_AUGMENTATIONS):
        assert np.array_equal(done[k], augmentation.apply(volumes[k]))


def test_batch_normalisation_is_bit_identical_to_numpy():
    preprocessing = Preprocessing(volume_shape=(6, 8, 8))
    volumes = np.random.default_rng(1).integers(-2000, 3000, (3, 6, 8, 8)).astype(np.int16)
    batch = {"volume": torch.from_numpy(volumes), "augmentation": torch.tensor([[-1, 0]] * 3)}
    x = to_model_batch(batch, preprocessing)["x"].numpy()
    for k in range(3):
        assert np.array_equal(x[k], group_slices(normalise(volumes[k], preprocessing)))


def test_cache_stores_fitted_int16_memory_mapped(cache, tiny_phantom):
    case = tiny_phantom.load(tiny_phantom.case_ids("train")[0])
    assert not cache.has(case.case_id)
    cache.store(case)
    volume = cache.volume(case.case_id)
    assert isinstance(volume, np.memmap) and volume.dtype == np.int16
    assert np.array_equal(volume, fit_to_shape(case.volume, tiny_phantom.volume_shape))
    assert np.array_equal(cache.labels(case.case_id), case.labels)
    assert sorted(p.suffix for p in cache.folder.iterdir()) == [".json", ".json", ".npy"]


def test_cache_rounds_float_hu_and_refuses_a_wrong_file(tmp_path):
    cache = VolumeCache(tmp_path, {"dataset": "t"}, (3, 4, 4))
    volume = np.full((3, 4, 4), -1000.4, np.float32)
    cache.store(Case("f", volume, (1, 1, 1), np.ones(2, bool)))
    assert cache.volume("f").dtype == np.int16 and int(cache.volume("f")[0, 0, 0]) == -1000
    np.save(cache.folder / "g.npy", np.zeros((2, 4, 4), np.int16))
    with pytest.raises(InvalidCaseError, match=r"g\.npy: cached volume is int16 \(2, 4, 4\)"):
        cache.volume("g")


def test_raw_samples_finished_on_the_device_equal_per_sample_inputs(cache, tiny_phantom):
    """The run's path (cached int16, augmented and normalised on whole batches) gives the
    model exactly the input of the per-sample path, under every augmentation drawn."""
    from ctbench.regions.partition import AllowedRegions

    regions = AllowedRegions(
        tiny_phantom.label_names, (9, 2, 2), Preprocessing(volume_shape=(27, 64, 64)),
        downsampler="area", cache_dir=cache.folder.parent / "partition",
    )  # fmt: skip
    common = {"augment": True, "seed": 4, "allowed_regions": regions}
    plain = VolumeDataset(tiny_phantom, "train", **common)
    raw = VolumeDataset(tiny_phantom, "train", raw=True, volume_cache=cache, **common)
    for index in range(len(raw)):
        cache.store(raw.load_case(index))
        regions(raw.load_case(index))
    raw.load_case = lambda index: pytest.fail(f"case {index} decoded though cached")
    seen = set()
    for epoch in range(3):
        plain.set_epoch(epoch)
        raw.set_epoch(epoch)
        for batch in make_loader(raw, batch_size=4):
            x = to_model_batch(batch, raw.preprocessing)["x"]
            for k, index in enumerate(batch["index"].tolist()):
                expected = plain[index]
                assert torch.equal(x[k], expected["x"])
                assert torch.equal(batch["allowed"][k], expected["allowed"])
                assert torch.equal(batch["y"][k], expected["y"])
                seen.add(Augmentation.from_array(batch["augmentation"][k]))
    assert len(seen) >= 8  # most of the 16 flips and turns were exercised


def test_check_cases_builds_both_caches_and_then_decodes_nothing(tmp_path, tiny_phantom):
    from ctbench.data.checks import check_cases

    loads = []

    class Counting:
        name, label_names = tiny_phantom.name, tiny_phantom.label_names
        volume_shape, config = tiny_phantom.volume_shape, tiny_phantom.config

        def case_ids(self, split):
            return tiny_phantom.case_ids(split)

        def load(self, case_id):
            loads.append(case_id)
            return tiny_phantom.load(case_id)

    source = Counting()
    cache = cache_for(source, source.volume_shape, tmp_path)  # no source.folder: tmp_path
    assert cache.folder.parent == tmp_path
    datasets = {"train": VolumeDataset(source, "train", raw=True, volume_cache=cache)}
    assert check_cases(datasets, progress=False) == []
    assert len(loads) == len(datasets["train"]) and all(cache.has(c) for c in loads)
    loads.clear()
    assert check_cases(datasets, progress=False) == []
    datasets["train"][0]
    assert loads == []


def test_loader_workers_map_the_cache_and_give_the_same_batches(cache, tiny_phantom):
    """Worker processes read the memory-mapped files themselves: the same batches, bit for bit,
    as the main process, shuffled and augmented from the same seed."""
    dataset = VolumeDataset(
        tiny_phantom, "train", augment=True, seed=2, raw=True, volume_cache=cache
    )
    for index in range(len(dataset)):
        cache.store(dataset.load_case(index))

    def epoch(workers: int):
        dataset.set_epoch(3)
        loader = make_loader(dataset, batch_size=4, shuffle=True, workers=workers, seed=9)
        return [(batch["case_id"], batch["volume"], batch["augmentation"]) for batch in loader]

    for serial, parallel in zip(epoch(0), epoch(2), strict=True):
        assert serial[0] == parallel[0]
        assert torch.equal(serial[1], parallel[1]) and torch.equal(serial[2], parallel[2])
