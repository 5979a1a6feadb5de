"""The one timing helper the benchmark drivers share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(call: Callable[[], object], rounds: int = 5) -> float:
    """The median wall time of ``rounds`` calls, in seconds."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)
