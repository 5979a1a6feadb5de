"""Training: classification loss plus the optional mask loss, early stopping, resumable state.

One epoch = one pass over the training split (augmented) and one over validation (not
augmented); early stopping watches the validation loss, which includes the mask loss when it is
on (the paper's reference code). After every epoch the trainer writes ``last.pt`` (model,
optimizer, RNG state and history) and, when validation improved, ``best.pt``; both atomically.
Batches are shuffled from ``(seed, epoch)`` and augmented from ``(seed, epoch, index)``, so a
run resumed from ``last.pt`` after a crash or ``kill -9`` continues exactly as it would have.

The trainer computes on ``device`` under ``precision`` (``ctbench.runtime.devices``); batches arrive
as cached int16 volumes and become model input there (``ctbench.data.loader.to_model_batch``). Under
torchrun (``job``, ``ctbench.runtime.distributed``) the model trains inside DistributedDataParallel,
every rank takes its share of the same global batches, and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from ctbench.core import paper
from ctbench.data.loader import VolumeDataset, to_model_batch
from ctbench.runtime.checkpoints import load_checkpoint, save_checkpoint
from ctbench.runtime.devices import Precision, to_device
from ctbench.runtime.distributed import Distributed, GlobalBatchSampler, rank_batches
from ctbench.runtime.progress import progress_bar
from ctbench.train.losses import (
    classification_loss,
    mask_attention,
    mask_loss,
    mask_loss_count,
    slice_contributions,
)
from ctbench.train.oracles import organ_masked
from torch import nn
from torch.utils.data import DataLoader

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")

BEST, LAST = "best.pt", "last.pt"
"""The checkpoints a training keeps in its folder: the best validation loss, and the last epoch."""


@dataclass
class TrainSettings:
    """How to train; the defaults are the paper's (SGD, momentum 0.99, lr 1e-3, patience 15).

    ``schedule="cosine"`` anneals the learning rate to zero over all the run's steps (for short
    runs on a budget); the paper keeps it constant. ``head_epochs`` first train everything after
    the frozen backbone on its cached output (Adam at ``lr``), then ``layer4_epochs`` train
    ResNet's layer4 and everything after it on the cached output of the frozen layers up to
    layer3 (Adam at ``lr * layer4_lr_scale``; ``ctbench.train.warmup``); ``epochs`` full epochs
    follow, and may then be 0.
    """

    optimizer: str = "sgd"
    lr: float = paper.LEARNING_RATE
    schedule: str = "constant"
    momentum: float = paper.MOMENTUM
    weight_decay: float = paper.WEIGHT_DECAY
    epochs: int = paper.EPOCHS
    patience: int = paper.PATIENCE
    batch_size: int = paper.BATCH_SIZE
    mask_loss: bool = False
    mask_lambda: float = paper.MASK_LAMBDA
    mask_loss_form: str = "paper"  # ctbench.train.losses.MASK_LOSS_FORMS
    oracle: str = "none"  # ctbench.train.oracles.ORACLES; organ-head needs organ_cells batches
    seed: int = 0
    workers: int = 0
    head_epochs: int = 0
    layer4_epochs: int = 0
    layer4_lr_scale: float = 0.1  # the layer4 stage fine-tunes pretrained layers: a tenth of lr

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        stages = (self.epochs, self.head_epochs, self.layer4_epochs)
        if min(stages) < 0 or sum(stages) < 1:
            raise ValueError("epochs, head and layer4 epochs must not be negative, nor all zero")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch size must be at least 1, and lr positive")


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


class Trainer:
    """Fits one model; ``explain_for_loss(create_graph)`` gives the mask loss's explainer.

    ``checkpoint_info`` (architecture, input shape, labels, model options) goes into every
    checkpoint so that ``best.pt`` rebuilds the model on its own.
    """

    def __init__(
        self,
        model: nn.Module,
        settings: TrainSettings,
        train: VolumeDataset,
        valid: VolumeDataset,
        folder: str | Path,
        *,
        checkpoint_info: dict[str, Any],
        explain_for_loss: Callable[[bool], Any] | None = None,
        progress: bool | None = None,
        log: Callable[[str], None] | None = None,
        device: torch.device | str = "cpu",
        precision: Precision | None = None,
        job: Distributed | None = None,
    ) -> None:
        """``model`` must already be on ``device``; ``job`` is torchrun's (default: none)."""
        if (settings.mask_loss or settings.oracle == "organ-head") and explain_for_loss is None:
            raise ValueError("the mask loss and --oracle organ-head need an explainer")
        self.device = torch.device(device)
        self.precision = precision or Precision("fp32", self.device.type)
        self.scaler = self.precision.grad_scaler()
        self.job = job or Distributed()
        self.model = model
        self.train_model = self.job.wrap(model, self.device)
        self.settings = settings
        self.train_data = train
        self.valid_data = valid
        self.folder = Path(folder)
        self.checkpoint_info = checkpoint_info
        self.optimizer = make_optimizer(model, settings)
        steps = settings.epochs * math.ceil(len(train) / settings.batch_size)
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(steps, 1))
            if settings.schedule == "cosine"
            else torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)
        )
        self.progress = progress
        self.log = log or (lambda _message: None)
        self.train_explainer = explain_for_loss(True) if settings.mask_loss else None
        self.valid_explainer = explain_for_loss(False) if settings.mask_loss else None
        # --oracle organ-head: the logits come from the (complete, differentiable) maps
        organ_head = settings.oracle == "organ-head"
        self.oracle_explainer = explain_for_loss(True) if organ_head else None
        self.history: list[dict[str, float]] = []
        self.best_loss = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.finished = False
        self.head_done = settings.head_epochs == 0 and settings.layer4_epochs == 0

    @property
    def last_path(self) -> Path:
        return self.folder / LAST

    @property
    def best_path(self) -> Path:
        return self.folder / BEST

    def losses(
        self, batch: dict, explainer, model: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, classification, mask)`` for one batch (of ``model``, default the model)."""
        model = self.model if model is None else model
        if self.oracle_explainer is not None:  # the organ-masked head's logits and maps
            maps, logits = self.oracle_explainer.explain(model, batch["x"])
            logits, maps = organ_masked(logits, maps, batch["organ_cells"])
            if explainer is None:
                loss = classification_loss(logits, batch["y"])
                return loss, loss, torch.zeros(())
            attention = slice_contributions(model, maps)
        elif explainer is None:
            logits = model(batch["x"])
            loss = classification_loss(logits, batch["y"])
            return loss, loss, torch.zeros(())
        else:
            attention, logits = mask_attention(model, explainer, batch["x"])
        class_loss = classification_loss(logits, batch["y"])
        region_loss = mask_loss(attention, batch["allowed"], self.settings.mask_loss_form)
        return class_loss + self.settings.mask_lambda * region_loss, class_loss, region_loss

    def _epoch(self, epoch: int, training: bool) -> dict[str, float]:
        data = self.train_data if training else self.valid_data
        data.set_epoch(epoch)
        sampler = GlobalBatchSampler(
            len(data),
            self.settings.batch_size,
            shuffle=training,
            seed=self.settings.seed * 100_003 + epoch,
            job=self.job,
        )
        loader = DataLoader(
            data,
            batch_sampler=sampler,
            num_workers=self.settings.workers,
            pin_memory=self.device.type == "cuda",
        )
        self.model.train(training)
        return self._pass(
            loader,
            training,
            f"epoch {epoch + 1}/{self.settings.epochs}",
            self.train_model if training else self.model,
            self.optimizer,
            self.scheduler,
        )

    def _pass(self, batches, training: bool, desc: str, model, optimizer, scheduler=None):
        """One pass over ``batches``: optimiser steps when ``training``; mean losses."""
        explainer = self.train_explainer if training else self.valid_explainer
        phase = "train" if training else "valid"
        totals = {"loss": 0.0, "class_loss": 0.0, "mask_loss": 0.0}
        seen = 0
        bar = progress_bar(
            batches, enabled=self.progress, desc=f"{desc} {phase}", unit="batch", leave=False
        )
        for batch in bar:
            batch = to_model_batch(to_device(batch, self.device), self.train_data.preprocessing)
            forbidden = (
                mask_loss_count(batch["allowed"], self.settings.mask_loss_form)
                if explainer is not None
                else 0
            )
            class_weight, mask_weight, size = self.job.batch_weights(len(batch["y"]), forbidden)
            with torch.set_grad_enabled(training), self.precision.autocast():
                _, class_loss, region_loss = self.losses(batch, explainer, model)
            # this rank's share of the global batch's losses (the whole of them in one process)
            parts = (class_weight * class_loss, mask_weight * region_loss)
            total = parts[0] + self.settings.mask_lambda * parts[1]
            if training:
                optimizer.zero_grad(set_to_none=True)
                # DDP averages gradients over ranks: times world_size gives the global sum
                self.scaler.scale(total * self.job.world_size).backward()
                self.scaler.step(optimizer)
                self.scaler.update()
                if scheduler is not None:
                    scheduler.step()
            values = self.job.sum(torch.stack([total, *parts]))
            if not torch.isfinite(values[0]):
                raise FloatingPointError(
                    f"{desc}: {phase} loss is {float(values[0])}; lower the learning rate"
                )
            seen += size
            for key, value in zip(totals, values.tolist(), strict=True):
                totals[key] += value * size
            bar.set_postfix(loss=f"{totals['loss'] / seen:.4f}")
        return {f"{phase}_{key}": value / max(seen, 1) for key, value in totals.items()}

    def warm_up_head(self) -> None:
        """The stages on a frozen part's cached output (``ctbench.train.warmup``):
        ``head_epochs`` after the backbone, then ``layer4_epochs`` from layer4 on, each
        continuing from the best epoch of the one before; the last stage's epoch with the
        lowest validation loss is kept (a scope's epochs are never discarded for a warm-up's),
        then ``best.pt`` and ``last.pt`` are written."""
        settings = self.settings
        stages = (
            ("head", settings.head_epochs, settings.lr),
            ("layer4", settings.layer4_epochs, settings.lr * settings.layer4_lr_scale),
        )
        best: dict = {}
        for scope, epochs, lr in stages:
            if epochs:
                self._cached_stage(scope, epochs, lr, best)
                self.model.load_state_dict(best["state"])  # the next stage starts from it
        self.head_done = True
        self.finished = self.settings.epochs == 0
        self._save(self.best_path, -1)
        self._save(self.last_path, -1)

    def _cached_stage(self, scope: str, epochs: int, lr: float, best: dict) -> None:
        """``epochs`` epochs of the part after ``scope``'s frozen split, on its cached output;
        ``best["state"]`` holds the weights of the lowest validation loss so far."""
        from ctbench.train.warmup import BackboneHead, FrozenBackbone, split_of

        try:
            frozen, features, _ = split_of(self.model, scope)
        except ValueError as error:
            raise ValueError(f"{error}; use --head-epochs 0") from error
        size = self.settings.batch_size
        self.best_loss = math.inf  # each stage keeps its own best epoch; the run, the last's
        with FrozenBackbone(self.model, frozen):
            train, valid = self._cached_splits(scope, features)
            head = self.job.wrap(BackboneHead(self.model, scope), self.device)
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=self.settings.weight_decay)
            seed = self.settings.seed * 100_003 + (99_991 if scope == "head" else 99_989)
            generator = torch.Generator().manual_seed(seed)
            for epoch in range(epochs):
                began = time.perf_counter()
                self.model.train()
                frozen.eval()
                if scope != "head":  # pretrained layers keep their BatchNorm statistics
                    for module in self.model.modules():
                        if isinstance(module, nn.modules.batchnorm._BatchNorm):
                            module.eval()
                desc = f"{scope} epoch {epoch + 1}/{epochs}"
                record = {"stage": scope, "epoch": epoch}
                order = torch.randperm(len(self.train_data), generator=generator).tolist()
                batches = train(epoch, rank_batches(order, size, self.job))
                record |= self._pass(batches, True, desc, head, optimizer)
                self.model.eval()
                in_order = list(range(len(self.valid_data)))
                record |= self._pass(
                    valid(epoch, rank_batches(in_order, size, self.job)), False, desc, head, None
                )
                record["seconds"] = time.perf_counter() - began
                self.history.append(record)
                if record["valid_loss"] < self.best_loss:
                    self.best_loss, self.best_epoch = record["valid_loss"], len(self.history) - 1
                    best["state"] = {
                        k: v.detach().clone() for k, v in self.model.state_dict().items()
                    }
                if (epoch + 1) % max(1, epochs // 10) == 0 or epoch + 1 == epochs:
                    self.log(
                        f"{desc}: train loss {record['train_loss']:.4f}, valid loss "
                        f"{record['valid_loss']:.4f} (best {self.best_loss:.4f}), "
                        f"{record['seconds']:.1f} s"
                    )

    def _cached_splits(self, scope: str, features):
        """``(train(epoch, batches), valid(epoch, batches))``: batch dicts of the frozen part's
        output. ``head``: every case computed once, unaugmented, before the first epoch (the
        recipe the phantom presets keep); ``layer4``: each (volume, augmentation) pair computed
        when an epoch first draws it (``AugmentedCache``), validation unaugmented."""
        from ctbench.train.warmup import AugmentedCache, cache_backbone_output, cached_batches

        if scope == "head":
            train, valid = (
                cache_backbone_output(
                    self.model,
                    data,
                    batch_size=self.settings.batch_size,
                    progress=self.progress,
                    device=self.device,
                    precision=self.precision,
                    job=self.job,
                    features=features,
                )
                for data in (self.train_data, self.valid_data)
            )
            return (
                lambda _epoch, batches: cached_batches(train, batches),
                lambda _epoch, batches: cached_batches(valid, batches),
            )
        train, valid = (
            AugmentedCache(features, data, device=self.device, precision=self.precision)
            for data in (self.train_data, self.valid_data)
        )
        return train.batches, valid.batches

    def fit(self, resume: bool = False) -> list[dict[str, float]]:
        """Train until ``epochs`` or early stopping; returns the per-epoch history."""
        if resume and self.last_path.exists():
            start = self._restore()
            heads = sum(r.get("stage") != "full" for r in self.history)
            self.log(
                f"resuming from {self.last_path}: {heads} head epochs and {start} full epochs done"
            )
        else:
            start = 0
        if not self.head_done:
            self.warm_up_head()
        if start == 0:  # the full stage keeps its own best epoch, not a warm-up's
            self.best_loss = math.inf
        for epoch in range(start, self.settings.epochs):
            if self.finished:
                break
            began = time.perf_counter()
            record = {"stage": "full", "epoch": epoch}
            record |= {**self._epoch(epoch, True), **self._epoch(epoch, False)}
            record["seconds"] = time.perf_counter() - began
            self.history.append(record)
            improved = record["valid_loss"] < self.best_loss
            if improved:
                self.best_loss, self.bad_epochs = record["valid_loss"], 0
                self.best_epoch = len(self.history) - 1
                self._save(self.best_path, epoch)
            else:
                self.bad_epochs += 1
            self.log(
                f"epoch {epoch + 1}/{self.settings.epochs}: train loss {record['train_loss']:.4f}, "
                f"valid loss {record['valid_loss']:.4f}{' (best)' if improved else ''}, "
                f"{record['seconds']:.0f} s"
            )
            stop = self.bad_epochs >= self.settings.patience
            self.finished = stop or epoch + 1 == self.settings.epochs
            self._save(self.last_path, epoch)
            if stop:
                break
        self.job.barrier()  # every rank may read best.pt now
        return self.history

    def state(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "finished": self.finished,
            "head_done": self.head_done,
            "settings": asdict(self.settings),
        }

    def _save(self, path: Path, epoch: int) -> None:
        """``best.pt`` holds the model; ``last.pt`` also what resuming needs. Rank 0 only."""
        if not self.job.is_main:
            return
        resumable = {}
        if path == self.last_path:
            resumable = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "grad_scaler": self.scaler.state_dict(),
                "rng": torch.get_rng_state(),
            }
        save_checkpoint(
            path,
            self.model,
            **self.checkpoint_info,
            epoch=epoch,
            training=self.state(),
            **resumable,
        )

    def _restore(self) -> int:
        """Load ``last.pt``; returns the epoch to start from."""
        payload = load_checkpoint(self.last_path)
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if payload.get("grad_scaler"):
            self.scaler.load_state_dict(payload["grad_scaler"])
        torch.set_rng_state(payload["rng"])
        state = payload["training"]
        self.history = list(state["history"])
        self.best_loss = state["best_loss"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.finished = state["finished"]
        self.head_done = state.get("head_done", True)
        return int(payload["epoch"]) + 1
