"""Training a model's later part on the cached output of its frozen earlier part (``--finetune``).

A pretrained start (ImageNet, or the phantom pretext of ``ctbench.train.pretraining``) is only as
useful as the steps that read it: on a CPU's budget, full epochs through ResNet-18 give the
head about 150 optimiser steps, too few to learn from (docs/learning-investigation.md). So the
frozen part's output is computed once and the rest of the model trains on it for many cheap
epochs, with the mask loss when it is on. The model keeps its architecture: only its frozen
part is not updated (no gradient, BatchNorm in eval mode). Two scopes:

- ``head``: the backbone (ResNet-18) is frozen; its output on every training and validation
  volume is cached once, unaugmented, and everything after it trains. Models opt in with
  ``trunk=True``: ``backbone``, ``backbone_features(x)`` and ``from_backbone_features(f)``.
- ``layer4``: the layers up to ResNet's layer3 are frozen; their output is cached once per
  volume and augmentation (:class:`AugmentedCache`, filled as the epochs draw them), and
  layer4 and everything after it train on the augmented volumes. Models opt in with
  ``scopes=("layer4",)`` and ``split_at("layer4")``.
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

REGION_KEYS = frozenset({"allowed", "organ_cells"})
"""A sample's region masks, cached beside the frozen part's output."""


def supports_warm_up(model: nn.Module) -> bool:
    """True for models that split into a backbone and the rest (see the module docstring)."""
    return all(
        hasattr(model, name) for name in ("backbone", "backbone_features", "from_backbone_features")
    )


def split_of(model: nn.Module, scope: str):
    """``(frozen module, features(x), rest(f))`` of ``model`` at ``scope``: its own
    ``split_at`` where it has one, else (``head``) its backbone split."""
    if hasattr(model, "split_at"):
        return model.split_at(scope)
    if scope == "head" and supports_warm_up(model):
        return model.backbone, model.backbone_features, model.from_backbone_features
    raise ValueError(
        f"{type(model).__name__} has no backbone to freeze for --finetune {scope} (split_at, "
        "or backbone, backbone_features and from_backbone_features for the head)"
    )


class BackboneHead(nn.Module):
    """``model`` from its frozen part's output on: ``forward(f) == model(x)`` for
    ``f = features(x)`` of the ``scope``'s split (:func:`split_of`; ``head``: the backbone).
    It exposes the model's explanation contract (CAM layer, per-slice head, aggregation), so
    explainers and the mask loss run on cached features. When the CAM layer is inside the
    frozen part, an identity tap on the input stands for it."""

    def __init__(self, model: nn.Module, scope: str = "head") -> None:
        super().__init__()
        self.model = model
        frozen, _, self.rest = split_of(model, scope)
        inside = any(m is getattr(model, "cam_layer", None) for m in frozen.modules())
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
        return self.rest(features)


def cache_backbone_output(
    model: nn.Module,
    dataset: VolumeDataset,
    *,
    batch_size: int,
    progress=None,
    device: torch.device | str = "cpu",
    precision: Precision | None = None,
    job: Distributed | None = None,
    features=None,
) -> dict[str, torch.Tensor]:
    """The backbone's output (or ``features(x)``'s), labels and (when the dataset has them)
    allowed regions of every case, unaugmented, in dataset order, on the CPU: ``{"x": [N,
    ...], "y": [N, M], "allowed": ...}``. The model runs on ``device``; under torchrun each
    rank computes a shard of the cases and every rank receives the whole cache."""
    features = features or model.backbone_features
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
            parts.setdefault("x", []).append(features(batch["x"]).float().cpu())
            parts.setdefault("y", []).append(batch["y"].cpu())
            for key in REGION_KEYS & batch.keys():
                parts.setdefault(key, []).append(batch[key].cpu())
    model.train(was_training)
    local = {key: torch.cat(values) for key, values in parts.items()}
    shards = job.all_gather((indices, local))
    order = torch.as_tensor([i for shard_indices, _ in shards for i in shard_indices]).argsort()
    return {key: torch.cat([part[key] for _, part in shards])[order] for key in local}


def cached_batches(cache: dict[str, torch.Tensor], batches: list[list[int]]):
    """The cache's rows of each batch of indices, as the trainer's batch dicts."""
    for index in batches:
        yield {key: value[index] for key, value in cache.items()}


class AugmentedCache:
    """The frozen part's output of each (volume, augmentation) pair a dataset draws, computed on
    first use and kept (float32, on the CPU) with the sample's labels and allowed regions under
    the same augmentation: at most ``len(ALL_AUGMENTATIONS)`` forwards per volume, however many
    epochs run."""

    def __init__(
        self,
        features,
        dataset: VolumeDataset,
        *,
        device: torch.device | str = "cpu",
        precision: Precision | None = None,
    ) -> None:
        self.features, self.dataset = features, dataset
        self.device = torch.device(device)
        self.precision = precision or Precision("fp32", self.device.type)
        self.entries: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    def entry(self, index: int) -> dict[str, torch.Tensor]:
        """Volume ``index`` under this epoch's augmentation: ``{"x", "y"[, "allowed"]}``."""
        from torch.utils.data import default_collate

        augmentation = self.dataset.augmentation(index) if self.dataset.augment else None
        key = (index, augmentation.index if augmentation is not None else 0)
        if key not in self.entries:
            batch = default_collate([self.dataset[index]])
            batch = to_model_batch(to_device(batch, self.device), self.dataset.preprocessing)
            with torch.no_grad(), self.precision.autocast():
                output = self.features(batch["x"]).float().cpu()
            self.entries[key] = {"x": output[0], "y": batch["y"][0].cpu()}
            for name in REGION_KEYS & batch.keys():
                self.entries[key][name] = batch[name][0].cpu()
        return self.entries[key]

    def batches(self, epoch: int, batches: list[list[int]]):
        """The trainer's batch dicts of each batch of indices, under ``epoch``'s augmentation
        draws (the dataset's ``set_epoch``)."""
        self.dataset.set_epoch(epoch)
        for index in batches:
            rows = [self.entry(i) for i in index]
            yield {key: torch.stack([row[key] for row in rows]) for key in rows[0]}


class FrozenBackbone:
    """Context: the frozen part's parameters (default: the model's backbone) take no gradient
    and its BatchNorm stays in eval mode."""

    def __init__(self, model: nn.Module, frozen: nn.Module | None = None) -> None:
        self.model = model
        self.frozen = frozen if frozen is not None else model.backbone
        self.flags: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self) -> FrozenBackbone:
        for parameter in self.frozen.parameters():
            self.flags.append((parameter, parameter.requires_grad))
            parameter.requires_grad_(False)
        return self

    def __exit__(self, *_exc) -> None:
        for parameter, flag in self.flags:
            parameter.requires_grad_(flag)
        self.flags.clear()
