"""One label explained on one volume: ``ctbench explain``'s work, as a library.

:func:`volume_from_file` or :func:`volume_from_dataset` reads the volume, :func:`explain_label`
runs the model and every explainer on it and picks the top slice groups (by the model's
per-slice scores, or by the first map's per-slice sum for a model without them), and
``ctbench.report.figures.plot_label_explanation`` draws the heatmaps side by side with the
per-slice scores.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Volume:
    """A volume to explain: its name, HU array, and its labels' truth where known."""

    name: str
    hu: np.ndarray
    truth: dict[str, bool] | None = None
    volume_shape: tuple[int, int, int] | None = None  # the source's, when it has one


@dataclass(frozen=True)
class LabelExplanation:
    """What ``plot_label_explanation`` draws: the model's probability, every explainer's map on the
    volume's grid, the per-slice scores and the top slice groups."""

    name: str
    label: str
    probability: float
    truth: bool | None
    ct: np.ndarray
    overlays: dict[str, np.ndarray]
    scores: np.ndarray
    score_label: str
    top: list[int]
    slices_per_group: int


def volume_from_file(path: Path) -> Volume:
    """A CT file (NIfTI, npz, npy, a DICOM folder), checked as every volume is."""
    from ctbench.core.cases import validate_volume
    from ctbench.data.io import load_volume

    hu, _ = load_volume(path)
    validate_volume(hu, path.name)
    return Volume(path.name, hu)


def volume_from_dataset(
    dataset: str,
    preset: str,
    label_names: list[str] | None,
    *,
    split: str = "test",
    index: int = 0,
    case_id: str | None = None,
) -> tuple[Volume, list[str]]:
    """A dataset's case (``case_id``, else the ``index``-th of ``split``) and the labels to
    explain it with (``label_names``, else the dataset's); its truth is kept when the two
    agree."""
    import ctbench
    from ctbench.core.cases import validate_volume

    source = ctbench.create_dataset(dataset, preset=preset)
    name = case_id or source.case_ids(split)[index]
    case = source.load(name)
    validate_volume(case.volume, name)
    names = list(label_names) if label_names else list(source.label_names)
    truth = None
    if list(source.label_names) == names:
        truth = dict(zip(names, (bool(v) for v in case.labels.tolist()), strict=True))
    return Volume(name, case.volume, truth, tuple(source.volume_shape)), names


def label_index(label: str, label_names: list[str]) -> int:
    """Where ``label`` is among the model's labels; a ValueError suggests the closest."""
    if label not in label_names:
        close = difflib.get_close_matches(label, label_names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"{label!r} is not among the model's labels.{hint}")
    return label_names.index(label)


def explain_label(
    model,
    volume: Volume,
    label: str,
    label_names: list[str],
    explainers: list[str],
    preprocessing,
    *,
    device="cpu",
    top_k: int = 3,
) -> LabelExplanation:
    """Every explainer's map of ``label`` on ``volume`` (ReLU'd, min-max normalised and
    upsampled to the CT grid), the model's probability, and the ``top_k`` slice groups."""
    import ctbench
    import torch
    from ctbench.data.loader import prepare_volume
    from ctbench.explain.explanations import relu_minmax, upsample_to_volume

    m = label_index(label, label_names)
    ct, x = prepare_volume(volume.hu, preprocessing)
    model, x = model.to(device), x[None].to(device)
    overlays, raw_maps, logits = {}, {}, None
    for name in explainers:
        maps, logits = ctbench.create_explainer(name).explain(model, x, classes=[m])
        raw_maps[name] = maps.detach().cpu()
        shown = upsample_to_volume(relu_minmax(maps.detach()), ct.shape)
        overlays[name] = shown[0, 0].cpu().numpy()
    if logits is None:  # no explainer: the model's own output
        with torch.no_grad():
            logits = model(x)
    probability = float(torch.sigmoid(logits[0, m].detach()))  # logits cover every class
    if hasattr(model, "slice_scores"):
        with torch.no_grad():
            scores = model.slice_scores(x)[0, m].cpu().numpy()
        score_label = "per-slice score (logit)"
    else:  # no per-slice scores: rank slice groups by the first explainer's total attention
        scores = raw_maps[explainers[0]][0, 0].sum(dim=(1, 2)).numpy()
        score_label = f"{explainers[0]} per-slice sum"
    return LabelExplanation(
        name=volume.name,
        label=label,
        probability=probability,
        truth=None if volume.truth is None else volume.truth[label],
        ct=ct,
        overlays=overlays,
        scores=scores,
        score_label=score_label,
        top=[int(g) for g in np.argsort(-scores)[:top_k]],
        slices_per_group=preprocessing.slices_per_group,
    )
