"""Head warm-up: train everything after a frozen, pretrained backbone on its cached output.

A pretrained start (ImageNet, or the phantom pretext of ``ctbench.train.pretraining``) is only as
useful as the steps that read it: on a CPU's budget, full epochs through ResNet-18 give the
head about 150 optimiser steps, too few to learn from (docs/learning-investigation.md). The
backbone's output on every training and validation volume is computed once (eval mode, no
augmentation) and the rest of the model is trained on it for many cheap epochs, with the
mask loss when it is on. The model keeps its architecture: only its backbone is not updated.

Models opt in by exposing ``backbone``, ``backbone_features(x)`` and
``from_backbone_features(f)`` (``SliceBackboneModel`` in the architecture plugins).
"""

from __future__ import annotations

import copy

import torch
from ctbench.data.loader import VolumeDataset, make_loader, to_model_batch
from ctbench.runtime.devices import Precision, to_device
from ctbench.runtime.distributed import Distributed, shard
from ctbench.runtime.progress import progress_bar
from torch import nn
from torch.utils.data import Subset


def supports_warm_up(model: nn.Module) -> bool:
    """True for models that split into a backbone and the rest (see the module docstring)."""
    return all(
        hasattr(model, name) for name in ("backbone", "backbone_features", "from_backbone_features")
    )


class BackboneHead(nn.Module):
    """``model`` from its backbone's output on: ``forward(f) == model(x)`` for
    ``f = model.backbone_features(x)``. It exposes the model's explanation contract (CAM
    layer, per-slice head, aggregation), so explainers and the mask loss run on cached
    features. When the CAM layer is the backbone's last layer, an identity tap on the input
    stands for it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        inside = any(m is getattr(model, "cam_layer", None) for m in model.backbone.modules())
        self.tap = nn.Identity() if inside else None
        for name in ("explainable", "cam_layout", "slice_aggregation", "head_is_affine"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))
        if hasattr(model, "representation_shape"):
            self.representation_shape = model.representation_shape
        if hasattr(model, "linear_head"):
            self.linear_head = model.linear_head

    @property
    def cam_layer(self) -> nn.Module:
        return self.tap if self.tap is not None else self.model.cam_layer

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.tap is not None:  # in the CAM layer's own layout, [B*H, F, D1, D2]
            features = self.tap(features.flatten(0, 1)).unflatten(0, features.shape[:2])
        return self.model.from_backbone_features(features)


def cache_backbone_output(
    model: nn.Module,
    dataset: VolumeDataset,
    *,
    batch_size: int,
    progress=None,
    device: torch.device | str = "cpu",
    precision: Precision | None = None,
    job: Distributed | None = None,
) -> dict[str, torch.Tensor]:
    """The backbone's output, labels and (when the dataset has them) allowed regions of every
    case, unaugmented, in dataset order, on the CPU: ``{"x": [N, ...], "y": [N, M],
    "allowed": ...}``. The model runs on ``device``; under torchrun each rank computes a
    shard of the cases and every rank receives the whole cache."""
    job, device = job or Distributed(), torch.device(device)
    plain = copy.copy(dataset)
    plain.augment = False
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    indices = shard(len(plain), job)
    loader = make_loader(Subset(plain, indices), batch_size=batch_size)
    autocast = (precision or Precision("fp32", device.type)).autocast()
    with torch.no_grad(), autocast:
        for batch in progress_bar(
            loader, enabled=progress, desc=f"backbone {dataset.split}", unit="batch", leave=False
        ):
            batch = to_model_batch(to_device(batch, device), plain.preprocessing)
            parts.setdefault("x", []).append(model.backbone_features(batch["x"]).float().cpu())
            parts.setdefault("y", []).append(batch["y"].cpu())
            if "allowed" in batch:
                parts.setdefault("allowed", []).append(batch["allowed"].cpu())
    model.train(was_training)
    local = {key: torch.cat(values) for key, values in parts.items()}
    shards = job.all_gather((indices, local))
    order = torch.as_tensor([i for shard_indices, _ in shards for i in shard_indices]).argsort()
    return {key: torch.cat([part[key] for _, part in shards])[order] for key in local}


def cached_batches(cache: dict[str, torch.Tensor], batches: list[list[int]]):
    """The cache's rows of each batch of indices, as the trainer's batch dicts."""
    for index in batches:
        yield {key: value[index] for key, value in cache.items()}


class FrozenBackbone:
    """Context: the backbone's parameters take no gradient and its BatchNorm stays in eval."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.flags: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self) -> FrozenBackbone:
        for parameter in self.model.backbone.parameters():
            self.flags.append((parameter, parameter.requires_grad))
            parameter.requires_grad_(False)
        return self

    def __exit__(self, *_exc) -> None:
        for parameter, flag in self.flags:
            parameter.requires_grad_(flag)
        self.flags.clear()
