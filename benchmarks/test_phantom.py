"""Phantom generation speed (volumes per second) per preset, with and without confounders.

    python -m pytest benchmarks/test_phantom.py

Each round renders a fresh set of cases (plan, anatomy, findings, report, noise) without
touching the disk cache; ``extra_info["volumes_per_second"]`` is what the README reports.
"""

from __future__ import annotations

import pytest
from ctbench.plugins.datasets.phantom import PhantomConfig, generate_case

CASES_PER_ROUND = {"tiny": 12, "default": 6}


@pytest.mark.parametrize("confounders", [False, True], ids=["plain", "confounders"])
@pytest.mark.parametrize("preset", list(CASES_PER_ROUND))
def test_generation_speed(benchmark, preset, confounders):
    config = PhantomConfig.from_preset(preset, confounders=confounders)
    count = CASES_PER_ROUND[preset]
    rounds = iter(range(100))

    def generate():
        start = next(rounds) * count
        for index in range(start, start + count):
            generate_case(config, "train", index)

    benchmark.group = f"phantom-{preset}"
    benchmark.pedantic(generate, rounds=3, warmup_rounds=0)
    benchmark.extra_info["volumes_per_second"] = count / benchmark.stats.stats.median
    benchmark.extra_info["volume_shape"] = list(config.volume_shape)
