"""Forward and forward+backward time per volume and peak memory of every architecture.

At the phantom's default preset (16 slice groups of 128 x 128), batch 2, 80 outputs, on
whatever device ``CTBENCH_BENCH_DEVICE`` names (default cpu). The README table comes from
``python benchmarks/architecture_table.py``, which runs this file and formats its JSON.
"""

from __future__ import annotations

import os

import ctbench
import pytest
import torch

from .memory import peak_memory_mib

ARCHITECTURES = ctbench.list_plugins()["architectures"]
INPUT_SHAPE = (16, 3, 128, 128)
BATCH = 2
N_CLASSES = 80
DEVICE = os.environ.get("CTBENCH_BENCH_DEVICE", "cpu")


def _setup(name: str, train: bool):
    torch.manual_seed(0)
    model = ctbench.create_model(name, N_CLASSES, INPUT_SHAPE).to(DEVICE).train(train)
    x = torch.rand(BATCH, *INPUT_SHAPE, device=DEVICE) - 0.449
    return model, x


def _forward(model, x):
    with torch.no_grad():
        model(x)
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def _forward_backward(model, x):
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward(benchmark, name):
    model, x = _setup(name, train=False)
    benchmark.group = "forward"
    benchmark.extra_info.update(
        phase="forward",
        batch=BATCH,
        input_shape=list(INPUT_SHAPE),
        device=DEVICE,
        parameters=sum(p.numel() for p in model.parameters()),
        peak_mib=peak_memory_mib(name, "forward", INPUT_SHAPE, BATCH, DEVICE),
    )
    benchmark.pedantic(_forward, args=(model, x), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_backward(benchmark, name):
    model, x = _setup(name, train=True)
    benchmark.group = "forward+backward"
    benchmark.extra_info.update(
        phase="forward+backward",
        batch=BATCH,
        input_shape=list(INPUT_SHAPE),
        device=DEVICE,
        peak_mib=peak_memory_mib(name, "forward+backward", INPUT_SHAPE, BATCH, DEVICE),
    )
    benchmark.pedantic(_forward_backward, args=(model, x), rounds=5, warmup_rounds=1)
