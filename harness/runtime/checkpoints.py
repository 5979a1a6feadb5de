"""Model checkpoints: everything needed to rebuild a model, loaded without unpickling code.

A checkpoint is a dict of tensors and plain values (``torch.load(weights_only=True)`` reads
it): the architecture name, ``n_classes``, ``input_shape``, ``label_names``, the options the
model was built with, its ``state_dict`` and the ctbench version; training adds its own keys
(optimizer state, epoch, ...). Written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ctbench
import torch
from ctbench.runtime.storage import atomic_open
from torch import nn

FORMAT = "ctbench-checkpoint"
REQUIRED = ("format", "arch", "n_classes", "input_shape", "label_names", "state_dict")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    input_shape: tuple[int, int, int, int],
    label_names: list[str] | tuple[str, ...],
    model_options: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Write ``model`` and how to rebuild it; ``extra`` keys must be tensors or plain values."""
    payload = {
        "format": FORMAT,
        "version": 1,
        "ctbench_version": ctbench.__version__,
        "arch": arch,
        "n_classes": len(label_names),
        "input_shape": list(input_shape),
        "label_names": list(label_names),
        "model_options": dict(model_options or {}),
        "state_dict": model.state_dict(),
        **extra,
    }
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)
    return path


def safe_torch_load(path: Path, kind: str) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU; any failure is one ValueError that
    names the file and says it is not a readable ``kind``. Nothing is ever unpickled."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path}: not a readable {kind} ({type(error).__name__}: {error})"
        ) from error


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); errors name the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint does not exist")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file (a checkpoint is a file)")
    payload = safe_torch_load(path, "checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a ctbench checkpoint (no format: {FORMAT!r})")
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return payload


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture and load its weights; returns ``(model in eval mode, payload)``."""
    payload = load_checkpoint(path)
    options = {
        k: v for k, v in payload["model_options"].items() if k not in ("pretrained", "weights")
    }  # the trained weights replace any ImageNet start
    model = ctbench.create_model(
        payload["arch"], payload["n_classes"], tuple(payload["input_shape"]), **options
    )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit {payload['arch']}: {error}") from error
    return model.eval(), payload
