"""Reading one paper-shape RAD-ChestCT volume: through the ``rad-chestct`` dataset (its own
``np.savez_compressed`` npz decompressed, the HU and lung checks) against ctbench's volume cache
(the same voxels as a plain ``.npy``, memory-mapped), in the same process. The volume is the
real CT of ``../shared/data`` resampled to 405 x 420 x 420, so that it compresses like CT
(random voxels would not).

    python -m pytest benchmarks/test_volume_cache.py -s
"""

from __future__ import annotations

import time
from pathlib import Path

import ctbench
import numpy as np
import pytest
from ctbench.data.volume_cache import cache_for

from tests.real_layouts import write_rad_chestct

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"
PAPER = (405, 420, 420)
ROUNDS = 5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from ctbench.data.io import load_volume
    from scipy import ndimage

    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    volume, _ = load_volume(SHARED / "example_ct.nii.gz")
    factors = [p / s for p, s in zip(PAPER, volume.shape, strict=True)]
    ct = np.clip(ndimage.zoom(volume, factors, order=1), -1000, 1000).astype(np.int16)
    root = tmp_path_factory.mktemp("rad-chestct")
    write_rad_chestct(root, {"trn00001": ct}, {"trn00001": {("nodule", "right_lung")}})
    source = ctbench.create_dataset(
        "rad-chestct", data_root=root, preset="paper", cache_dir=root / "cache"
    )
    cache = cache_for(source, PAPER, root / "cache")
    cache.store(source.load("trn00001"))
    return source, cache, ct, root / "volumes" / "trn00001.npz"


def test_cached_volume_reads_faster_than_the_dataset(benchmark, dataset):
    source, cache, ct, npz = dataset

    def from_dataset():
        return source.load("trn00001").volume

    def from_npz():
        with np.load(npz) as data:
            return data["ct"]

    def from_cache():
        return np.array(cache.volume("trn00001"))  # every voxel read, as a batch copy does

    assert np.array_equal(from_dataset(), ct) and np.array_equal(from_cache(), ct)
    reads = {"dataset": from_dataset, "npz": from_npz, "cache": from_cache}
    times = {name: [] for name in reads}
    for _ in range(ROUNDS):
        for name, read in reads.items():
            began = time.perf_counter()
            read()
            times[name].append(time.perf_counter() - began)
    benchmark.group = "volume-read"
    benchmark.pedantic(from_cache, rounds=ROUNDS, warmup_rounds=1)
    median = {name: float(np.median(t)) for name, t in times.items()}
    size_mb = npz.stat().st_size / 1e6
    print(
        f"\none paper-shape RAD-ChestCT volume ({ct.nbytes / 1e6:.0f} MB int16; npz "
        f"{size_mb:.0f} MB): rad-chestct load {median['dataset']:.3f} s (np.load alone "
        f"{median['npz']:.3f} s), cache {median['cache']:.3f} s, "
        f"{median['dataset'] / median['cache']:.1f}x faster (median of {ROUNDS})"
    )
    benchmark.extra_info.update(median | {"ratio": median["dataset"] / median["cache"]})
    assert median["cache"] < median["npz"] < median["dataset"]
