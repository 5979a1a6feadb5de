"""Peak memory of one forward or forward+backward pass, measured in a fresh process.

PyTorch's CPU allocator bypasses Python's, so tracemalloc cannot see tensors, and in a long
process glibc keeps freed pages resident, which hides later peaks. So each measurement runs in
a new interpreter with a fixed mmap threshold (large tensors are mapped and unmapped, not
cached), builds the model and the batch, and reports the kernel's resident-set high-water mark
(VmHWM) minus the resident size just before the pass. On CUDA it reports the allocator's peak.

    python -m benchmarks.memory axialnet forward+backward 16,3,128,128 2 cpu
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_REPO = Path(__file__).resolve().parents[1]


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from {_STATUS}")


def peak_memory_mib(
    name: str, phase: str, input_shape: tuple[int, ...], batch: int, device: str = "cpu"
) -> float:
    """Peak MiB that one ``phase`` pass of architecture ``name`` adds, from a fresh process."""
    if not _CLEAR_REFS.exists() and not device.startswith("cuda"):
        return float("nan")  # not Linux: no resettable peak RSS
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    shape = ",".join(map(str, input_shape))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", name, phase, shape, str(batch), device],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=_REPO,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"]


def _measure(name: str, phase: str, input_shape: tuple[int, ...], batch: int, device: str) -> float:
    import ctbench
    import torch

    torch.manual_seed(0)
    model = ctbench.create_model(name, 80, input_shape).to(device)
    x = torch.rand(batch, *input_shape, device=device) - 0.449
    if phase == "forward":
        model.eval()

        def work():
            with torch.no_grad():
                model(x)
    else:
        model.train()

        def work():
            model(x).sum().backward()

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        work()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    _CLEAR_REFS.write_text("5")
    before = _status_kib("VmRSS")
    work()
    return (_status_kib("VmHWM") - before) / 1024


if __name__ == "__main__":
    arch, phase_name, shape_text, batch_text, device_name = sys.argv[1:6]
    peak = _measure(
        arch, phase_name, tuple(int(n) for n in shape_text.split(",")), int(batch_text), device_name
    )
    print(json.dumps({"peak_mib": peak}))
