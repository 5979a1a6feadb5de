"""Where a run computes and in which precision: ``--device`` and ``--precision``.

``resolve_device("auto")`` is CUDA when present, else the CPU (``mps`` is used only when
named). A device that is not there is one clear error, never a silent fall back to the CPU.
:class:`Precision` wraps ``torch.autocast``: ``auto`` is bf16 on a CUDA device that supports
it and fp32 elsewhere; fp16 comes with a gradient scaler. Under torchrun each process takes the
CUDA device of its ``LOCAL_RANK`` (``ctbench.runtime.distributed``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
from ctbench.runtime.device_names import DEVICE_HELP, PRECISIONS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """The asked-for device or precision is not available on this machine."""


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto|cpu|cuda|cuda:N|mps`` -> a ``torch.device`` that exists here (else DeviceError).

    Under torchrun, ``cuda`` (and ``auto`` on a CUDA machine) means ``cuda:LOCAL_RANK``.
    """
    text = str(spec or "auto").strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError as error:
        raise DeviceError(f"--device {spec!r}: {error}; choose {DEVICE_HELP}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {spec}: CUDA is not available here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu"
            )
        index = device.index if device.index is not None else int(os.environ.get("LOCAL_RANK", 0))
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {spec}: cuda:{index} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    ):
        raise DeviceError(f"--device {spec}: MPS (Apple GPU) is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {spec}: unsupported device type; choose {DEVICE_HELP}")
    return device


def device_name(device: torch.device) -> str:
    """A human name: the GPU's, or the CPU's model from /proc/cpuinfo (platform elsewhere)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    from ctbench.runtime.resources import cpu_model

    return cpu_model()


def device_record(device: torch.device, precision: Precision) -> dict[str, Any]:
    """What config.json records of where the run computed."""
    return {
        "device": str(device),
        "name": device_name(device),
        "precision": precision.name,
        "count": torch.cuda.device_count() if device.type == "cuda" else 1,
    }


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


@dataclass(frozen=True)
class Precision:
    """The autocast precision of one device: ``fp32`` (autocast off), ``bf16`` or ``fp16``."""

    name: str
    device_type: str

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> Precision:
        """``auto`` -> bf16 on CUDA devices that support it, else fp32; checks the others."""
        if name not in PRECISIONS:
            raise DeviceError(f"--precision {name!r}: choose {', '.join(PRECISIONS)}")
        if name == "auto":
            cuda_bf16 = device.type == "cuda" and bf16_supported(device)
            name = "bf16" if cuda_bf16 else "fp32"
        if name == "bf16" and not bf16_supported(device):
            raise DeviceError(f"--precision bf16: {device} does not support bfloat16")
        if name == "fp16" and device.type == "cpu":
            raise DeviceError(
                "--precision fp16 is for GPUs: on the CPU its convolutions have no fast kernels "
                "(an epoch of the tiny preset took 282 s instead of 3 s); use bf16 or fp32"
            )
        return cls(name, device.type)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES.get(self.name, torch.float32)

    def autocast(self):
        """``torch.autocast`` for this precision; a no-op context for fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled for fp16 only (bf16 has fp32's exponent range)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Every tensor of a batch on ``device``; non-blocking (pinned memory makes it overlap)."""
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def default_workers(device: torch.device, processes_per_node: int = 1) -> int:
    """Loader workers for ``--workers auto``: on the CPU none (the model needs the cores; the
    cached int16 volumes are read by the main process), on a GPU the node's cores shared by its
    processes, one kept for the process itself, at most 8."""
    if device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(8, (cores or 1) // max(1, processes_per_node) - 1))


def compile_model(model: torch.nn.Module, **options: Any) -> torch.nn.Module:
    """``torch.compile`` the model's backbone (where its FLOPs are) in place, or the whole
    model when it explains nothing. The CAM layer must stay outside the compiled part:
    explainers hook it per call, and a hook added inside a compiled module is not seen.
    State-dict keys are unchanged (``Module.compile``); ``options`` go to ``torch.compile``.
    """
    cam = getattr(model, "cam_layer", None) if getattr(model, "explainable", False) else None
    target = getattr(model, "backbone", model)
    if cam is not None and any(inner is cam for inner in target.modules()):
        raise ValueError(
            f"--compile: {type(model).__name__}'s CAM layer is inside its "
            f"{'backbone' if target is not model else 'only module'}, where explainers could "
            "not hook a compiled module; run it without --compile"
        )
    target.compile(**options)
    return model
