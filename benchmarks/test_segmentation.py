"""Lung segmentation: vectorised (one in-plane labelling of the whole volume) against a
straightforward per-slice scikit-image loop, same output, at the default and paper shapes
(goal: at least 5 times faster, asserted on the medians of 5 rounds).

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
    result = benchmark.pedantic(method, args=(array, spacing), rounds=5, warmup_rounds=1)
    TIMES[preset, method.__name__] = benchmark.stats.stats.median
    assert np.array_equal(result, lung_mask(array, spacing))


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_vectorised_segmentation_is_five_times_faster(preset):
    vectorised, loop = TIMES.get((preset, "lung_mask")), TIMES.get((preset, "per_slice_reference"))
    if not (vectorised and loop):
        pytest.skip("run the whole file: the ratio needs both timings")
    print(f"\n{preset}: per-slice loop / vectorised = {loop / vectorised:.1f}x (goal >= 5)")
    assert loop / vectorised >= 5
