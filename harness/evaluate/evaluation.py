"""Evaluation of a trained model on one split: predictions, explanations and their scores.

:func:`predict_and_explain` runs the model and every explainer over a split once and keeps
what the metrics need: logits, per-slice scores (MIL models), each explainer's ReLU'd and
min-max-normalised map per (case, label), PARTITION's allowed regions and, where the dataset
has lesion masks, the lesion IoU at every threshold. :func:`score_run` turns the validation and
test outputs into ``metrics.json`` and the per-label table: thresholds are chosen on validation
and reused on test (docs/running.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from ctbench.data.loader import VolumeDataset, make_loader, to_model_batch
from ctbench.evaluate.metrics import (
    THRESHOLDS,
    at_thresholds,
    choose_thresholds,
    column_means,
    finite_mean,
    instance_cells,
    lesion_iou_curve,
    median_iqr,
    organ_iou_curves,
    per_label_auroc,
)
from ctbench.evaluate.stats import auroc_ci
from ctbench.explain.explanations import relu_minmax
from ctbench.runtime.devices import Precision, to_device
from ctbench.runtime.distributed import Distributed, shard
from ctbench.runtime.progress import progress_bar
from ctbench.train.oracles import organ_masked
from scipy.special import expit
from torch import nn
from torch.utils.data import Subset


@dataclass
class SplitOutputs:
    """Everything measured on one split; arrays are indexed ``[case, label, ...]``."""

    split: str
    case_ids: list[str]
    truth: np.ndarray  # [N, M] bool
    logits: np.ndarray  # [N, M] float64: every rank statistic is computed from these
    slice_scores: np.ndarray | None = None  # [N, M, H] for MIL models
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # [N, M, H, D1, D2] in [0, 1]
    # the raw maps, each divided by its largest absolute value: [N, M, H, D1, D2] in [-1, 1]
    signed_attention: dict[str, np.ndarray] = field(default_factory=dict)
    allowed: np.ndarray | None = None  # [N, M, H, D1, D2] bool
    lesion_instances: np.ndarray | None = None  # [N, M, H, D1, D2] int16: instance of each cell
    lesion_iou: dict[str, np.ndarray] = field(default_factory=dict)  # [T, N, M], NaN: no lesion
    explain_seconds: dict[str, float] = field(default_factory=dict)  # per explainer, whole split
    # OrganIoU per (case, label) at the validation-chosen thresholds, NaN where the label is
    # absent: [N, M] per explainer (score_run fills it in for the test split)
    organiou: dict[str, np.ndarray] = field(default_factory=dict)
    # with confounders: {label: [N] bool} whether each case carries the label's planted cue
    cues: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def lesion_grid(self) -> np.ndarray | None:
        """``[N, M, H, D1, D2]`` bool: the cells touching a lesion (any instance)."""
        return None if self.lesion_instances is None else self.lesion_instances > 0

    @property
    def probabilities(self) -> np.ndarray:
        """For display and the CSV only: float64 sigmoid still rounds logits above ~37 to 1."""
        return expit(self.logits)  # no overflow warning for large logits


def predict_and_explain(
    model: nn.Module,
    dataset: VolumeDataset,
    explainers: dict[str, Any],
    *,
    batch_size: int = 2,
    progress: bool | None = None,
    device: torch.device | str = "cpu",
    precision: Precision | None = None,
    job: Distributed | None = None,
    oracle=None,
) -> SplitOutputs | None:
    """One pass over ``dataset`` (no augmentation) with the model in eval mode on ``device``.

    ``oracle``: the complete explainer of ``--oracle organ-head`` (the dataset gives each
    sample's ``organ_cells``): the logits are the organ-masked head's, and every explainer's
    map is kept inside the label's organ cells as the masked model's is (exact for HiResCAM).

    Under torchrun every rank evaluates its own cases (each case on exactly one rank) and rank
    0 receives the whole split in dataset order; the other ranks get None.
    """
    job = job or Distributed()
    device = torch.device(device)
    precision = precision or Precision("fp32", device.type)
    model.eval()
    indices = shard(len(dataset), job)
    loader = make_loader(
        Subset(dataset, indices), batch_size=batch_size, pin_memory=device.type == "cuda"
    )
    case_ids, truth, logits, scores, allowed, instances = [], [], [], [], [], []
    attention = {name: [] for name in explainers}
    signed = {name: [] for name in explainers}
    lesion_iou = {name: [] for name in explainers}
    explain_seconds = dict.fromkeys(explainers, 0.0)
    for batch in progress_bar(
        loader, enabled=progress, desc=f"evaluate {dataset.split}", unit="batch"
    ):
        inputs = {key: batch[key] for key in ("x", "volume", "augmentation") if key in batch}
        x = to_model_batch(to_device(inputs, device), getattr(dataset, "preprocessing", None))["x"]
        batch_logits, cells = None, None
        if oracle is not None:
            cells = batch["organ_cells"].to(device)
            with torch.no_grad(), precision.autocast():
                oracle_maps, batch_logits = oracle.explain(model, x)
                batch_logits, _ = organ_masked(batch_logits, oracle_maps, cells)
        maps_of = {}
        for name, explainer in explainers.items():
            began = time.perf_counter()
            # explainers that need gradients enable them themselves
            with torch.no_grad(), precision.autocast():
                maps, out = explainer.explain(model, x)
            if cells is not None:
                maps = maps * cells.to(maps.dtype)
            maps_of[name] = relu_minmax(maps.detach().float()).cpu()
            explain_seconds[name] += time.perf_counter() - began  # .cpu() waited for the device
            attention[name].append(maps_of[name].numpy())
            signed[name].append(scaled_signed(maps.detach().float()).cpu().numpy())
            batch_logits = out.detach() if batch_logits is None else batch_logits
        with torch.no_grad(), precision.autocast():
            if batch_logits is None:
                batch_logits = model(x)
            if hasattr(model, "slice_scores"):
                scores.append(model.slice_scores(x).float().cpu().numpy())
        batch_logits = batch_logits.cpu()
        case_ids.extend(batch["case_id"])
        truth.append(batch["y"].numpy() > 0.5)
        logits.append(batch_logits.double().numpy())
        if "allowed" in batch:
            allowed.append(batch["allowed"].numpy())
        if "findings" in batch and maps_of:
            grid = next(iter(maps_of.values())).shape[2:]
            ids, curves = _localise(batch["findings"], maps_of, grid)
            instances.append(ids)
            for name in explainers:
                lesion_iou[name].append(curves[name])
    if not case_ids:  # more ranks than cases: this one had none
        return _gathered(job, indices, None)
    local = SplitOutputs(
        split=dataset.split,
        case_ids=case_ids,
        truth=np.concatenate(truth),
        logits=np.concatenate(logits),
        slice_scores=np.concatenate(scores) if scores else None,
        attention={name: np.concatenate(v) for name, v in attention.items()},
        signed_attention={name: np.concatenate(v) for name, v in signed.items()},
        allowed=np.concatenate(allowed) if allowed else None,
        lesion_instances=np.concatenate(instances) if instances else None,
        lesion_iou={name: np.concatenate(v, axis=1) for name, v in lesion_iou.items() if v},
        explain_seconds=explain_seconds,
    )
    return _gathered(job, indices, local)


def _gathered(job: Distributed, indices: list[int], local: SplitOutputs | None):
    """The whole split on rank 0 (the ranks' shards merged), None on the others."""
    shards = job.gather((indices, local))
    return None if shards is None else merge_shards(shards)


def merge_shards(shards: list[tuple[list[int], SplitOutputs]]) -> SplitOutputs:
    """One split's outputs from the ranks' shards, in dataset order (each case once); a rank
    with no case (more ranks than cases) sends None."""
    shards = [(indices, part) for indices, part in shards if part is not None]
    if len(shards) == 1:
        return shards[0][1]
    order = np.argsort([i for indices, _ in shards for i in indices], kind="stable")
    parts = [part for _, part in shards]

    def cases(get, axis: int = 0):
        arrays = [get(part) for part in parts]
        if arrays[0] is None:
            return None
        return np.take(np.concatenate(arrays, axis=axis), order, axis=axis)

    first = parts[0]
    ids = [case_id for part in parts for case_id in part.case_ids]
    return SplitOutputs(
        split=first.split,
        case_ids=[ids[i] for i in order],
        truth=cases(lambda p: p.truth),
        logits=cases(lambda p: p.logits),
        slice_scores=cases(lambda p: p.slice_scores),
        attention={name: cases(lambda p, n=name: p.attention[n]) for name in first.attention},
        signed_attention={
            name: cases(lambda p, n=name: p.signed_attention[n]) for name in first.signed_attention
        },
        allowed=cases(lambda p: p.allowed),
        lesion_instances=cases(lambda p: p.lesion_instances),
        lesion_iou={
            name: cases(lambda p, n=name: p.lesion_iou[n], axis=1) for name in first.lesion_iou
        },
        explain_seconds={
            name: sum(part.explain_seconds[name] for part in parts)
            for name in first.explain_seconds
        },
    )


def scaled_signed(maps: torch.Tensor) -> torch.Tensor:
    """Raw maps ``[B, M, ...]`` divided by each (scan, label)'s largest absolute value (all-zero
    maps stay zero): the sign and the ranking kept, the scale made comparable."""
    peak = maps.flatten(2).abs().amax(dim=2).clamp(min=torch.finfo(maps.dtype).tiny)
    return maps / peak.reshape(*peak.shape, *[1] * (maps.dim() - 2))


def _localise(findings: torch.Tensor, maps_of: dict[str, torch.Tensor], grid):
    """The lesion instance of each cell ``[B, M, *grid]`` (``metrics.instance_cells``) and, per
    explainer, lesion IoU curves ``[T, B, M]``; ``findings`` holds instance ids (or bools)."""
    batch, labels = findings.shape[:2]
    ids = np.zeros((batch, labels, *grid), np.int16)
    curves = {name: np.full((len(THRESHOLDS), batch, labels), np.nan) for name in maps_of}
    for b in range(batch):
        for m in range(labels):
            lesion = findings[b, m] > 0
            if not bool(lesion.any()):
                continue
            ids[b, m] = instance_cells(findings[b, m].to(torch.uint8), grid)
            for name, maps in maps_of.items():
                curves[name][:, b, m] = lesion_iou_curve(maps[b, m], lesion)
    return ids, curves


def score_run(
    valid: SplitOutputs, test: SplitOutputs, labels, device: torch.device | str = "cpu"
) -> tuple[dict, pd.DataFrame]:
    """Metrics (test headline, validation beside it) and the per-label table; the explanation
    metrics run on ``device``.

    AUROC and its CI are rank statistics: they are computed from the logits, which the sigmoid
    would tie (every logit above ~17 is 1.0 in float32, above ~37 in float64).
    """
    labels = list(labels)
    auroc = per_label_auroc(test.truth, test.logits, labels)
    valid_auroc = per_label_auroc(valid.truth, valid.logits, labels)
    median, iqr = median_iqr(auroc.values())
    table = pd.DataFrame({"label": labels})
    table["test_positives"] = test.truth.sum(axis=0)
    table["test_positives_pct"] = 100.0 * test.truth.mean(axis=0)
    cis = [
        auroc_ci(test.truth[:, m], test.logits[:, m])[1:]
        if np.isfinite(auroc[label])
        else (np.nan, np.nan)
        for m, label in enumerate(labels)
    ]
    table["auroc"] = [auroc[label] for label in labels]
    table["auroc_ci_low"] = [c[0] for c in cis]
    table["auroc_ci_high"] = [c[1] for c in cis]
    table["valid_auroc"] = [valid_auroc[label] for label in labels]
    metrics: dict[str, Any] = {
        "auroc": auroc,
        "auroc_median": median,
        "auroc_mean": finite_mean(np.array(list(auroc.values()), float)),
        "auroc_iqr": iqr,
        "auroc_ci": {label: list(c) for label, c in zip(labels, cis, strict=True)},
        "valid_auroc": valid_auroc,
        "valid_auroc_median": median_iqr(valid_auroc.values())[0],
        "valid_auroc_mean": finite_mean(np.array(list(valid_auroc.values()), float)),
        "n_cases": {"valid": len(valid.case_ids), "test": len(test.case_ids)},
    }
    if test.attention and test.allowed is not None and valid.allowed is not None:
        from ctbench.evaluate.explanation_scores import score_explanations

        metrics.update(_organ_iou(valid, test, labels, table))
        block, columns = score_explanations(valid, test, device=device)
        metrics.update(block)
        for column, values in columns.items():
            table[column] = values
    return metrics, table


def _organ_iou(valid: SplitOutputs, test: SplitOutputs, labels, table) -> dict:
    out: dict[str, dict] = {
        "organiou": {},
        "organiou_per_label": {},
        "organiou_thresholds": {},
        "valid_organiou": {},
    }
    for name in test.attention:
        valid_curves = organ_iou_curves(valid.attention[name], valid.allowed)
        chosen = choose_thresholds(valid_curves, valid.truth)
        valid_scores = np.where(valid.truth, at_thresholds(valid_curves, chosen), np.nan)
        test_scores = np.where(
            test.truth,
            at_thresholds(organ_iou_curves(test.attention[name], test.allowed), chosen),
            np.nan,
        )
        per_label = column_means(test_scores)
        test.organiou[name] = test_scores
        out["organiou"][name] = finite_mean(test_scores)
        out["valid_organiou"][name] = finite_mean(valid_scores)
        out["organiou_per_label"][name] = dict(zip(labels, per_label, strict=True))
        out["organiou_thresholds"][name] = dict(zip(labels, chosen.tolist(), strict=True))
        table[f"organiou_{name}"] = per_label
        table[f"threshold_{name}"] = chosen
    out["organiou_reference"] = {"random": _random_organ_iou(valid, test)}
    return out


def _random_organ_iou(valid: SplitOutputs, test: SplitOutputs, seed: int = 0) -> float:
    """OrganIoU of seeded uniform noise on the maps' grid, thresholds chosen on validation as
    for an explainer: the chance level that a chance-corrected OrganIoU, ``(x - r) / (1 -
    r)``, is measured from (docs/metrics.md)."""
    rng = np.random.default_rng(seed)
    shape_of = {"valid": valid.allowed.shape, "test": test.allowed.shape}
    maps = {split: rng.random(shape, dtype=np.float32) for split, shape in shape_of.items()}
    chosen = choose_thresholds(organ_iou_curves(maps["valid"], valid.allowed), valid.truth)
    scores = at_thresholds(organ_iou_curves(maps["test"], test.allowed), chosen)
    return finite_mean(np.where(test.truth, scores, np.nan))
