"""Several processes, one run: torchrun, DistributedDataParallel and exact global batches.

``torchrun --nproc-per-node N -m ctbench run ...`` starts N copies of ``ctbench run``; each
reads RANK, WORLD_SIZE and LOCAL_RANK, joins the process group (NCCL on CUDA, gloo on the CPU)
and trains its share of every global batch. ``--batch-size`` is the *global* batch: the same
run on 1 or N processes steps through the same batches of the same cases, because
:class:`GlobalBatchSampler` draws one permutation from ``(seed, epoch)`` (the single-process
DataLoader's own) and gives each rank a contiguous share of each global batch. Loss terms are
weighted by each rank's share of the global batch (:meth:`Distributed.batch_weights`), so
DDP's averaged gradient is the gradient of the global batch's loss, mask loss included.
Evaluation gives every case to exactly one rank and gathers the results in dataset order.
Only rank 0 writes files. A rank that raises exits with its error; torchrun then stops the
others (``record`` writes the traceback where torchrun reports it).
"""

from __future__ import annotations

import datetime
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

TIMEOUT_MINUTES = float(os.environ.get("CTBENCH_DIST_TIMEOUT_MINUTES", 60))
"""How long a collective waits for a slow rank (dataset generation, pretext build) before it
fails; a rank that *dies* stops the job at once through torchrun."""


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job; ``world_size == 1`` is an ordinary run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (tensors and arrays included), in rank order."""
        if not self.enabled:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks of a float64 CPU copy of ``values`` (no grad)."""
        total = values.detach().double().cpu()
        if self.enabled:
            if dist.get_backend() == "nccl":
                total = total.cuda()
            dist.all_reduce(total)
        return total.cpu()

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` in rank order on rank 0; None on the others."""
        if not self.enabled:
            return [value]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def main_first(self, work) -> Any:
        """``work()`` on rank 0, then on the others (which then find its files cached)."""
        if self.is_main:
            result = work()
            self.barrier()
            return result
        self.barrier()
        return work()

    def batch_weights(self, size: int, forbidden: int) -> tuple[float, float, int]:
        """``(class weight, mask weight, global batch size)`` of this rank's local means.

        The classification loss is a mean over cases, the mask loss a mean over forbidden
        cells; weighting each rank's local mean by its share of the global count makes the
        sum over ranks the global mean exactly (one all-reduce of two numbers per step).
        """
        total_size, total_forbidden = self.sum(torch.tensor([size, forbidden])).tolist()
        mask_weight = forbidden / total_forbidden if total_forbidden else 0.0
        return size / total_size, mask_weight, int(total_size)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in :class:`ExplainableDDP` when several processes train it."""
        if not self.enabled:
            return model
        # A channels-last 1x1 convolution weight ([C_out, C_in, 1, 1]) has the same memory in
        # either layout, but its strides differ on the size-1 axes and DDP warns of a slower
        # copy that does not happen; only that case is silenced.
        warnings.filterwarnings(
            "ignore", message=r"(?s)Grad strides do not match.*grad\.sizes\(\) = \[\d+, \d+, 1, 1\]"
        )
        ids = [device.index] if device.type == "cuda" else None
        return ExplainableDDP(model, device_ids=ids)


def from_environment() -> Distributed:
    """The job this process belongs to, from torchrun's variables (none: one process)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return Distributed()
    return Distributed(
        rank=int(os.environ["RANK"]),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", world)),
    )


def initialise(device: torch.device) -> Distributed:
    """Join torchrun's process group (when there is one) with the backend of ``device``."""
    job = from_environment()
    if not job.enabled or dist.is_initialized():
        return job
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        timeout=datetime.timedelta(minutes=TIMEOUT_MINUTES),
    )
    return job


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class ExplainableDDP(DistributedDataParallel):
    """DDP that still answers the explanation contract (``cam_layer``, ``linear_head``,
    ``slice_aggregation``, ...) from the model it wraps, so that explainers and the mask loss
    run through DDP's forward (and its gradient synchronisation) unchanged."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def global_permutation(n: int, seed: int) -> list[int]:
    """The order in which a seeded single-process ``DataLoader(shuffle=True)`` visits ``n``
    cases (it draws its workers' base seed from the generator before the permutation)."""
    generator = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(n, generator=generator).tolist()


class GlobalBatchSampler(Sampler[list[int]]):
    """This rank's share of every global batch, in the single-process order.

    Global batches are consecutive runs of ``batch_size`` cases of :func:`global_permutation`
    (or of ``0..n-1`` without shuffling); rank r takes the r-th of ``world_size`` near-equal
    contiguous parts. A last global batch with fewer cases than ranks is topped up from the
    start of the order (DDP needs every rank in every step); no other case repeats.
    """

    def __init__(
        self, n: int, batch_size: int, *, shuffle: bool, seed: int, job: Distributed
    ) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.seed, self.job = seed, job

    def __iter__(self) -> Iterator[list[int]]:
        order = global_permutation(self.n, self.seed) if self.shuffle else list(range(self.n))
        return iter(rank_batches(order, self.batch_size, self.job))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def rank_batches(order: list[int], batch_size: int, job: Distributed) -> list[list[int]]:
    """This rank's part of each global batch of ``order`` (see :class:`GlobalBatchSampler`)."""
    order = list(order)
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    if batches and len(batches[-1]) < job.world_size:
        batches[-1] = batches[-1] + order[: job.world_size - len(batches[-1])]
    return [np.array_split(np.asarray(b), job.world_size)[job.rank].tolist() for b in batches]


def shard(n: int, job: Distributed) -> list[int]:
    """The cases this rank evaluates: every case on exactly one rank (no padding)."""
    return list(range(job.rank, n, job.world_size))
