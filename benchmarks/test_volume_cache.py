"""Reading one paper-shape volume: RAD-ChestCT's own file (an ``np.savez_compressed`` npz,
array ``ct``, int16) against ctbench's volume cache (the same voxels as a plain ``.npy``,
memory-mapped), in the same process. The volume is the real CT of ``../shared/data``
resampled to 405 x 420 x 420, so that it compresses like CT (random voxels would not).

    python -m pytest benchmarks/test_volume_cache.py -s
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from ctbench.cases import Case
from ctbench.volume_cache import VolumeCache

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"
PAPER = (405, 420, 420)
ROUNDS = 5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from ctbench.io import load_volume
    from scipy import ndimage

    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    volume, _ = load_volume(SHARED / "example_ct.nii.gz")
    factors = [p / s for p, s in zip(PAPER, volume.shape, strict=True)]
    ct = np.clip(ndimage.zoom(volume, factors, order=1), -1000, 1000).astype(np.int16)
    folder = tmp_path_factory.mktemp("volumes")
    npz = folder / "trn00001.npz"
    np.savez_compressed(npz, ct=ct)
    cache = VolumeCache(folder, {"dataset": "rad-chestct-like"}, PAPER)
    cache.store(Case("trn00001", ct, (0.8, 0.8, 0.8), np.zeros(1, bool)))
    return npz, cache, ct


def test_cached_volume_reads_faster_than_the_npz(benchmark, files):
    npz, cache, ct = files

    def from_npz():
        with np.load(npz) as data:
            return data["ct"]

    def from_cache():
        return np.array(cache.volume("trn00001"))  # every voxel read, as a batch copy does

    assert np.array_equal(from_npz(), ct) and np.array_equal(from_cache(), ct)
    times = {"npz": [], "cache": []}
    for _ in range(ROUNDS):
        for name, read in (("npz", from_npz), ("cache", from_cache)):
            began = time.perf_counter()
            read()
            times[name].append(time.perf_counter() - began)
    benchmark.group = "volume-read"
    benchmark.pedantic(from_cache, rounds=ROUNDS, warmup_rounds=1)
    npz_s, cache_s = (float(np.median(times[name])) for name in ("npz", "cache"))
    size_mb = npz.stat().st_size / 1e6
    print(
        f"\none paper-shape volume ({ct.nbytes / 1e6:.0f} MB int16; npz {size_mb:.0f} MB): "
        f"npz {npz_s:.3f} s, cache {cache_s:.3f} s, {npz_s / cache_s:.1f}x faster "
        f"(median of {ROUNDS})"
    )
    benchmark.extra_info.update({"npz_s": npz_s, "cache_s": cache_s, "ratio": npz_s / cache_s})
    assert cache_s < npz_s
