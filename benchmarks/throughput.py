"""AxialNet throughput: training and inference volumes/s, the loader beside them, peak memory,
model FLOPs utilisation, and 2-process DDP step time against 1 process.

    python benchmarks/throughput.py --shape default --json docs/throughput-cpu-default.json
    python benchmarks/throughput.py --shape paper --device cuda --precision bf16 --batch 4
    python benchmarks/throughput.py --ddp --shape default --json docs/ddp-scaling-cpu.json

Training is one optimiser step of the run's trainer path per batch: int16 volumes on the
device, augmented and normalised there (``data.to_model_batch``), forward under autocast,
classification loss, backward, SGD step. Inference is AxialNet's forward with HiResCAM of all
80 classes (the closed form: one forward pass). The loader is the run's own: a ``VolumeDataset``
over memory-mapped int16 volumes of the volume cache, the run's worker count, pinned memory,
copied to the device and finished there, with no model. FLOPs come from
``torch.utils.flop_counter`` (a training step counts 3x the forward); MFU divides the achieved
FLOP/s by the device's peak (from its name, or ``--peak-tflops``). Synthetic volumes (random
HU) are used: throughput does not depend on content.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SHAPES = {"default": (48, 128, 128), "paper": (405, 420, 420)}
CLASSES = 80  # the paper's outputs

PEAK_TFLOPS = {  # dense bf16/fp16 tensor-core peak per GPU, from the vendors' data sheets
    "H200": 989.0,
    "H100": 989.0,  # SXM; the PCIe card is 756
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "V100": 125.0,
    "RTX 4090": 165.0,
}


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given is not None:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(model, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops()


def make_model(shape, device, channels_last: bool = True, compile_it: bool = False):
    import ctbench
    from ctbench.runtime.devices import compile_model
    from ctbench.runtime.memory_format import to_channels_last

    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", CLASSES, (shape[0] // 3, 3, shape[1], shape[2]))
    if channels_last:
        model = to_channels_last(model)
    model = model.to(device)
    return compile_model(model) if compile_it else model


def volume_batch(shape, batch: int, device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    volumes = torch.randint(-1024, 1500, (batch, *shape), generator=generator, dtype=torch.int16)
    records = torch.tensor([[-1, 1], [1, 0], [2, 3], [-1, 0]] * batch)[:batch]
    return {"volume": volumes.to(device), "augmentation": records.to(device)}


def timed(work, steps: int, warmup: int, device) -> float:
    """Seconds per call of ``work`` after ``warmup`` calls (the device synchronised)."""
    for _ in range(warmup):
        work()
    synchronise(device)
    began = time.perf_counter()
    for _ in range(steps):
        work()
    synchronise(device)
    return (time.perf_counter() - began) / steps


def measure_model(
    shape, batch, steps, warmup, device, precision, compile_it, job=None, train_too=True
):
    """``(train s/step or None, inference s/batch, forward FLOPs per volume)``."""
    from ctbench.data.loader import to_model_batch
    from ctbench.data.preprocess import Preprocessing
    from ctbench.plugins.explainers.cam import HiResCAM
    from ctbench.runtime.distributed import Distributed
    from ctbench.train.losses import classification_loss

    job = job or Distributed()
    preprocessing = Preprocessing(volume_shape=shape)
    model = make_model(shape, device, compile_it=compile_it)
    flops = forward_flops(model, to_model_batch(volume_batch(shape, 1, device), preprocessing)["x"])
    trained = job.wrap(model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = precision.grad_scaler()
    data = volume_batch(shape, batch, device)
    truth = (torch.rand(batch, CLASSES, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    truth = truth.to(device)

    def train_step():
        x = to_model_batch(data, preprocessing)["x"]
        with precision.autocast():
            loss = classification_loss(trained(x), truth)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    model.train()
    train = timed(train_step, steps, warmup, device) if train_too else None
    model.eval()
    explainer = HiResCAM()

    def explain_batch():
        x = to_model_batch(data, preprocessing)["x"]
        with torch.no_grad(), precision.autocast():
            maps, _ = explainer.explain(model, x)
        maps.float().sum().item()  # the maps exist (and, on a GPU, are finished)

    infer = timed(explain_batch, steps, warmup, device)
    return train, infer, flops


def measure_loader(shape, batch, batches, device, workers) -> float:
    """Volumes/s of the run's data path alone: memory-mapped int16 cache -> device batch."""
    from ctbench.core.cases import Case
    from ctbench.data.loader import VolumeDataset, to_model_batch
    from ctbench.data.preprocess import Preprocessing
    from ctbench.data.volume_cache import VolumeCache
    from ctbench.runtime.devices import to_device

    class Synthetic:
        name, label_names, volume_shape = "synthetic", tuple(f"l{i}" for i in range(CLASSES)), shape

        def __init__(self, n):
            self.ids = [f"s{i:03d}" for i in range(n)]

        def case_ids(self, split):
            return self.ids

        def load(self, case_id):
            rng = np.random.default_rng(int(case_id[1:]))
            volume = rng.integers(-1024, 1500, shape, dtype=np.int16)
            return Case(case_id, volume, (1.0, 1.0, 1.0), np.zeros(CLASSES, bool))

    n = batch * batches
    source = Synthetic(min(n, 16))  # at most 16 distinct files (2.3 GB at the paper's shape)
    with tempfile.TemporaryDirectory() as folder:
        cache = VolumeCache(folder, {"dataset": "synthetic"}, shape)
        for case_id in source.ids:
            cache.store(source.load(case_id))
        dataset = VolumeDataset(
            source, "train", augment=True, raw=True, volume_cache=cache,
            preprocessing=Preprocessing(volume_shape=shape),
        )  # fmt: skip
        dataset.case_ids = [source.ids[i % len(source.ids)] for i in range(n)]
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch, shuffle=True, num_workers=workers,
            pin_memory=device.type == "cuda", drop_last=True,
        )  # fmt: skip
        for _ in range(2):  # the first pass fills the page cache, as a second epoch finds it
            began = time.perf_counter()
            seen = 0
            for sample in loader:
                x = to_model_batch(to_device(sample, device), dataset.preprocessing)["x"]
                seen += len(x)
            synchronise(device)
            seconds = time.perf_counter() - began
        return seen / seconds


def main(argv=None) -> dict:
    from ctbench.runtime.devices import Precision, default_workers, device_name, resolve_device
    from ctbench.runtime.resources import PeakMemory

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="volumes per step")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--loader-batches", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument(
        "--skip-train",
        action="store_true",
        help="inference and loader only (paper-shape training keeps about 86 MiB of fp32 "
        "activations per slice group, 12 GB per volume)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    shape = SHAPES[args.shape]
    device = resolve_device(args.device)
    precision = Precision.resolve(args.precision, device)
    gpu = device.type == "cuda"
    batch = args.batch or (4 if gpu else (2 if args.shape == "default" else 1))
    steps = args.steps or (20 if gpu else (5 if args.shape == "default" else 1))
    workers = default_workers(device) if args.workers is None else args.workers
    with PeakMemory(device=device) as memory:
        train, infer, flops = measure_model(
            shape, batch, steps, args.warmup, device, precision, args.compile,
            train_too=not args.skip_train,
        )  # fmt: skip
    result = {
        "shape": args.shape,
        "input_shape": [shape[0] // 3, 3, shape[1], shape[2]],
        "device": str(device),
        "device_name": device_name(device),
        "precision": precision.name,
        "compile": args.compile,
        "batch": batch,
        "steps": steps,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "forward_tflop_per_volume": flops / 1e12,
        "train_volumes_per_s": None if train is None else batch / train,
        "inference_volumes_per_s": batch / infer,
        "memory": memory.record(),
    }
    peak = peak_tflops(device, args.peak_tflops)
    result["peak_tflops"] = peak
    if peak:
        if train is not None:
            result["train_mfu"] = 3 * flops * result["train_volumes_per_s"] / (peak * 1e12)
        result["inference_mfu"] = flops * result["inference_volumes_per_s"] / (peak * 1e12)
    if not args.skip_loader:
        loader_batches = args.loader_batches or (16 if gpu else 8)
        result["loader_workers"] = workers
        result["loader_volumes_per_s"] = measure_loader(
            shape, batch, loader_batches, device, workers
        )
        # a training step includes the forward, so inference bounds training from above
        bound = result["train_volumes_per_s"] or result["inference_volumes_per_s"]
        result["loader_over_train" if train else "loader_over_train_at_least"] = (
            result["loader_volumes_per_s"] / bound
        )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def ddp_step(argv=None) -> None:
    """Inside torchrun: seconds per DDP training step of this job (rank 0 writes the JSON)."""
    from ctbench.runtime.devices import Precision, resolve_device
    from ctbench.runtime.distributed import initialise, shutdown

    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--local-batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    job = initialise(device)
    precision = Precision.resolve("auto", device)
    train, _, _ = measure_model(
        SHAPES[args.shape], args.local_batch, args.steps, 2, device, precision, False, job
    )
    if job.is_main:
        record = {
            "processes": job.world_size,
            "local_batch": args.local_batch,
            "torch_threads": torch.get_num_threads(),
            "step_seconds": train,
            "volumes_per_s": job.world_size * args.local_batch / train,
        }
        args.out.write_text(json.dumps(record) + "\n")
    shutdown()


def ddp_scaling(shape: str, device: str, steps: int, out: Path | None) -> dict:
    """Step time of 2 DDP processes against 1 on this machine, the same local batch each
    (so the 2-process job trains twice the volumes per step); threads split between them."""
    import subprocess

    cores = len(os.sched_getaffinity(0))
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for processes in (1, 2):
            path = Path(folder) / f"{processes}.json"
            command = [
                sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                str(processes), __file__, "--ddp-step", "--shape", shape, "--device", device,
                "--steps", str(steps), "--out", str(path),
            ]  # fmt: skip
            threads = str(max(1, cores // processes))
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            subprocess.run(command, env=env, check=True)
            runs[processes] = json.loads(path.read_text())
    result = {
        "shape": shape,
        "device": device,
        "one_process": runs[1],
        "two_processes": runs[2],
        "step_time_ratio": runs[2]["step_seconds"] / runs[1]["step_seconds"],
        "throughput_ratio": runs[2]["volumes_per_s"] / runs[1]["volumes_per_s"],
    }
    print(json.dumps(result, indent=2))
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.path.insert(0, os.fspath(Path(__file__).resolve().parent.parent))
    if "--ddp-step" in sys.argv:
        ddp_step([a for a in sys.argv[1:] if a != "--ddp-step"])
    elif "--ddp" in sys.argv:
        scaling = argparse.ArgumentParser()
        scaling.add_argument("--ddp", action="store_true")
        scaling.add_argument("--shape", choices=sorted(SHAPES), default="default")
        scaling.add_argument("--device", default="auto")
        scaling.add_argument("--steps", type=int, default=5)
        scaling.add_argument("--json", type=Path, default=None)
        options = scaling.parse_args()
        ddp_scaling(options.shape, options.device, options.steps, options.json)
    else:
        main()
