"""What a run used and where it ran: peak memory, and the machine for timing-table captions."""

from __future__ import annotations

import os
import platform
import resource
import threading
from pathlib import Path
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux ``/proc/self/statm``); None elsewhere."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class PeakMemory:
    """The peak resident memory of this process while the block runs, sampled by a thread.

    ``ru_maxrss`` would do for one run per process, but a matrix runs many cells in one
    process and ``ru_maxrss`` never goes down; sampling every ``interval`` seconds measures each
    block on its own (a spike shorter than the interval can be missed). With a CUDA ``device``
    the peak of allocated device memory is recorded too.
    """

    def __init__(self, interval: float = 0.05, device=None) -> None:
        self.interval = interval
        self.device = device
        self.peak: int | None = None
        self._stop = threading.Event()

    def _sample(self) -> None:
        while True:
            now = resident_bytes()
            if now is not None:
                self.peak = max(self.peak or 0, now)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakMemory:
        self._cuda = getattr(self.device, "type", None) == "cuda"
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.peak is None:  # no /proc: the process's lifetime peak (kilobytes on Linux)
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.cuda_peak = None
        if self._cuda:
            import torch

            self.cuda_peak = int(torch.cuda.max_memory_allocated(self.device))

    def record(self) -> dict[str, float | None]:
        """Peaks in MiB, as ``metrics.json`` keeps them."""
        mib = 1024.0**2
        return {
            "peak_rss_mib": None if self.peak is None else self.peak / mib,
            "peak_cuda_mib": None if self.cuda_peak is None else self.cuda_peak / mib,
        }


def machine_description() -> dict[str, Any]:
    """CPU model, cores, memory and GPU names: what a timing table's caption states."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "gpus": gpus,
        "system": f"{platform.system()} {platform.machine()}",
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024.0**3
    except (ValueError, OSError, AttributeError):
        return None
