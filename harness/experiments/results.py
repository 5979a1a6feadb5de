"""Writing a run's results: tables, arrays and figures listed in docs/run-folder.md.

``predictions.csv`` is long (one row per split, case and label: truth, logit, probability), so
that two runs pair up on ``(split, case_id, label)``. ``per_label.csv`` is the paper-style
table. ``metrics.json`` is written last and atomically; NaN (a label without positives, an
unscored explainer) is written as ``null``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ctbench.runtime.storage import atomic_open, write_json, write_npz


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN and infinities become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def predictions_frame(evaluated: dict, labels: list[str]) -> pd.DataFrame:
    """One row per (split, case, label): truth, logit, probability, and ``organiou_<explainer>``
    where the split has per-case OrganIoU (the test split; empty elsewhere). With confounders
    the splits include the cue-shifted ``iid`` and ``balanced`` test splits, and ``cue`` says
    whether the case carries the label's planted cue."""
    frames = []
    for split, outputs in evaluated.items():
        n, m = outputs.truth.shape
        columns = {
            "split": split,
            "case_id": np.repeat(outputs.case_ids, m),
            "label": np.tile(labels, n),
            "truth": outputs.truth.reshape(-1).astype(int),
            "logit": outputs.logits.reshape(-1),
            "probability": outputs.probabilities.reshape(-1),
        }
        for name, scores in outputs.organiou.items():
            columns[f"organiou_{name}"] = scores.reshape(-1)
        if outputs.cues:  # 1/0 where the label has a planted cue, empty elsewhere
            cue = np.full((n, m), np.nan)
            for k, label in enumerate(labels):
                if label in outputs.cues:
                    cue[:, k] = outputs.cues[label]
            columns["cue"] = cue.reshape(-1)
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Full float precision: rounded probabilities would tie and change the AUROC."""
    with atomic_open(path, "w") as handle:
        frame.to_csv(handle, index=False)


def write_results(
    folder: Path, metrics: dict, table: pd.DataFrame, evaluated: dict, labels: list[str]
) -> None:
    """Every table and array of the run, then ``metrics.json`` (which marks the run finished),
    with its ``schema_version``."""
    from ctbench.experiments.run_folder import SCHEMA_VERSION, RunFolder

    run = RunFolder(folder)
    write_csv(run.predictions, predictions_frame(evaluated, labels))
    write_csv(run.per_label, table)
    write_json(run.timing, json_safe(metrics["timing"]))
    test = evaluated["test"]
    if test.slice_scores is not None:
        write_npz(
            run.slice_scores,
            case_ids=np.array(test.case_ids),
            labels=np.array(labels),
            scores=test.slice_scores,
            truth=test.truth,
        )
    write_json(run.metrics, json_safe({"schema_version": SCHEMA_VERSION, **metrics}))


def run_title(options: dict[str, Any]) -> str:
    """A run's title on its figures and report: ``axialnet on phantom/default with mask loss``
    (``options``: config.json's ``run``)."""
    mask = " with mask loss" if options.get("mask_loss") else ""
    return f"{options['arch']} on {options['dataset']}/{options['preset']}{mask}"


def write_figures(folder: Path, history, test, dataset, labels: list[str], config) -> list[Path]:
    """Loss curves, per-slice score profiles (MIL models) and overlays of positive test cases."""
    from ctbench.report.figures import plot_loss_curves, plot_slice_score_profiles

    name = run_title(config.to_json())
    paths = [plot_loss_curves(history, folder / "loss_curves.png", name)]
    if test.slice_scores is not None:
        paths.append(
            plot_slice_score_profiles(
                test.slice_scores, test.truth, labels, folder / "slice_scores.png", name
            )
        )
    if test.attention:
        paths += write_overlays(folder / "overlays", test, dataset, labels, config.overlays)
    return paths


def write_overlays(folder: Path, test, dataset, labels: list[str], count: int) -> list[Path]:
    """Heatmaps of every explainer on the ``count`` most confident true positives (one per case)."""
    import torch
    from ctbench.data.preprocess import fit_to_shape
    from ctbench.explain.explanations import upsample_to_volume
    from ctbench.report.figures import plot_explanation

    confidence = np.where(test.truth, test.logits, -np.inf)  # logits: probabilities tie at 1
    chosen, seen = [], set()
    for flat in np.argsort(-confidence, axis=None, kind="stable"):
        n, m = np.unravel_index(flat, confidence.shape)
        if not np.isfinite(confidence[n, m]) or len(chosen) == count:
            break
        if n not in seen:
            seen.add(n)
            chosen.append((int(n), int(m)))
    paths = []
    index_of = {case_id: i for i, case_id in enumerate(dataset.case_ids)}
    for n, m in chosen:
        case_id = test.case_ids[n]
        case = dataset.load_case(index_of[case_id])
        ct = fit_to_shape(case.volume, dataset.preprocessing.volume_shape)
        overlays = {
            name: upsample_to_volume(torch.from_numpy(maps[n, m][None, None]), ct.shape)[
                0, 0
            ].numpy()
            for name, maps in test.attention.items()
        }
        first = next(iter(test.attention.values()))
        if test.slice_scores is not None:
            scores, score_label = test.slice_scores[n, m], "per-slice score (logit)"
        else:
            scores, score_label = first[n, m].sum(axis=(1, 2)), "attention per slice group"
        top = [int(g) for g in np.argsort(-scores)[:3]]
        title = f"{case_id}: {labels[m]} (present), p = {test.probabilities[n, m]:.2f}"
        paths.append(
            plot_explanation(
                ct,
                overlays,
                scores,
                top,
                folder / f"{case_id}_{labels[m]}.png",
                title=title,
                score_label=score_label,
                slices_per_group=dataset.preprocessing.slices_per_group,
            )
        )
    return paths
