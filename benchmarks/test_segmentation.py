"""Lung segmentation: vectorised (one in-plane labelling of the whole volume) against a
straightforward per-slice scikit-image loop, same output, at the default and paper shapes.

    python -m pytest benchmarks/test_segmentation.py -s
"""

from __future__ import annotations

import numpy as np
import pytest
from ctbench.plugins.datasets.phantom import PhantomConfig, generate_case
from ctbench.plugins.segmenters.organs import lung_mask, per_slice_reference

TIMES: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", params=["default", "paper"])
def volume(request):
    case = generate_case(PhantomConfig.from_preset(request.param), "train", 1)
    return request.param, case.volume, case.spacing


@pytest.mark.parametrize(
    "method", [lung_mask, per_slice_reference], ids=["vectorised", "per_slice"]
)
def test_lung_segmentation_time(benchmark, volume, method):
    preset, array, spacing = volume
    benchmark.group = f"segmentation-{preset}"
    rounds = 3
    result = benchmark.pedantic(method, args=(array, spacing), rounds=rounds, warmup_rounds=1)
    TIMES[preset, method.__name__] = benchmark.stats.stats.median
    assert np.array_equal(result, lung_mask(array, spacing))
    other = TIMES.get((preset, "lung_mask")), TIMES.get((preset, "per_slice_reference"))
    if all(other):
        print(f"\n{preset}: per-slice loop / vectorised = {other[1] / other[0]:.1f}x")
