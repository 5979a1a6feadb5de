"""The data path must not be the bottleneck: the run's loader (memory-mapped int16 volume
cache -> device, augmented and normalised there) delivers at least twice the volumes per
second that AxialNet trains, measured in the same process on the same machine, at the default
shape (issue goal: ratio >= 2 at the default and paper shapes; the paper shape is
``python benchmarks/throughput.py --shape paper``, too slow for a CPU test).

    python -m pytest benchmarks/test_throughput.py -s
"""

from __future__ import annotations

from ctbench.runtime.devices import Precision, default_workers, resolve_device

from benchmarks.throughput import SHAPES, measure_loader, measure_model


def test_loader_outpaces_training_at_the_default_shape(benchmark):
    device = resolve_device("auto")
    precision = Precision.resolve("auto", device)
    shape, batch = SHAPES["default"], 2
    train, infer, _ = measure_model(shape, batch, 5, 2, device, precision, False)
    benchmark.group = "data-path"
    loader = benchmark.pedantic(
        measure_loader,
        args=(shape, batch, 8, device, default_workers(device)),
        rounds=3,
        warmup_rounds=0,
    )
    train_rate = batch / train
    ratio = loader / train_rate
    print(
        f"\n{device}: training {train_rate:.2f} volumes/s, inference with all-class HiResCAM "
        f"{batch / infer:.2f}, loader {loader:.1f}; loader / training = {ratio:.1f} (goal >= 2)"
    )
    benchmark.extra_info.update(
        {"train_volumes_per_s": train_rate, "loader_volumes_per_s": loader, "ratio": ratio}
    )
    assert ratio >= 2
