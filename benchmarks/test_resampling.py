"""Resampling a CT-RATE volume to the paper's 0.8 mm, and loading one through ``ct-rate``.

A CT-RATE reconstruction is typically 512 x 512 pixels of about 0.75 mm with 1.5 mm slices
(CT-RATE's metadata). The shared real CT is resampled to that geometry (300 slices), written as
a ``_fixed``-release NIfTI, then: resampling alone with torch (``F.interpolate``, the default)
and with scipy (``ndimage.zoom``, order 1), and the whole ``ct-rate`` load (gzip, reorient, HU
and lung checks, resample), medians in the same process.

    python -m pytest benchmarks/test_resampling.py -s
"""

from __future__ import annotations

from pathlib import Path

import ctbench
import numpy as np
import pytest
from ctbench.data.io import load_volume, resample

from benchmarks.timing import median_seconds
from tests.real_layouts import write_ct_rate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"
CT_RATE_SPACING = (1.5, 0.75, 0.75)
CT_RATE_SHAPE = (300, 512, 512)
PAPER_MM = (0.8, 0.8, 0.8)
ROUNDS = 3


def test_resampling_a_ct_rate_volume_to_0_8_mm(benchmark, tmp_path):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    from scipy import ndimage

    volume, _ = load_volume(SHARED / "example_ct.nii.gz")
    zoom = [n / m for n, m in zip(CT_RATE_SHAPE, volume.shape, strict=True)]
    ct = np.rint(ndimage.zoom(volume.astype(np.float32), zoom, order=1)).astype(np.int16)
    name = "train_1_a_1.nii.gz"
    write_ct_rate(tmp_path, {name: ct}, CT_RATE_SPACING, release="fixed")
    source = ctbench.create_dataset(
        "ct-rate", data_root=tmp_path, preset="paper", cache_dir=tmp_path / "c"
    )
    torch_s = median_seconds(
        lambda: resample(ct, CT_RATE_SPACING, PAPER_MM, method="torch"), ROUNDS
    )
    scipy_s = median_seconds(
        lambda: resample(ct, CT_RATE_SPACING, PAPER_MM, method="scipy"), ROUNDS
    )
    load_s = median_seconds(lambda: source.load("train_1_a_1"), ROUNDS)
    out = resample(ct, CT_RATE_SPACING, PAPER_MM)
    reference = resample(ct, CT_RATE_SPACING, PAPER_MM, method="scipy")
    benchmark.group = "resampling"
    benchmark.pedantic(lambda: resample(ct, CT_RATE_SPACING, PAPER_MM), rounds=ROUNDS)
    print(
        f"\nCT-RATE-shaped volume {ct.shape} at {CT_RATE_SPACING} mm -> {out.shape} at 0.8 mm: "
        f"torch {torch_s:.2f} s, scipy {scipy_s:.2f} s ({scipy_s / torch_s:.1f}x); whole "
        f"ct-rate load {load_s:.2f} s (median of {ROUNDS}); torch vs scipy max difference "
        f"{np.abs(out - reference).max():.1f} HU"
    )
    benchmark.extra_info.update({"torch_s": torch_s, "scipy_s": scipy_s, "load_s": load_s})
    assert out.shape == reference.shape == (562, 480, 480)
