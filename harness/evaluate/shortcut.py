"""Shortcut reliance measured by counterfactuals: ``metrics.json["shortcut"]`` (issue 30).

A dataset with planted cues can render each test case again with one label's cue toggled,
and again with that label's finding removed, everything else identical
(``source.counterfactual(case_id, label, "cue" | "finding")``). Per confounded label:

- ``cue_effect``: mean |logit change| when the cue is toggled, over every test case;
- ``finding_effect``: mean |logit change| when the finding is removed, over the positives;
- ``ratio``: ``cue_effect / finding_effect``: how much more the model reads the cue than the
  finding (0: never the cue; 1: both alike);
- ``allowed_share``: of the cue-induced change of the explainer's raw map (sum over cells of
  |map after - map before|, over the positives, whose allowed cells PARTITION gives), the share
  in the label's allowed cells: a cue that moved into the organ shows as a rising share while
  ``cue_effect`` stays;
- ``n`` (cases of ``cue_effect``) and ``n_positive`` (of ``finding_effect``, ``allowed_share``),
  and ``per_case`` (case ids with each case's cue and finding effect and map changes) for
  the ladder's paired intervals (``ctbench.report.ladder``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ctbench.data.loader import VolumeDataset, make_loader, to_model_batch
from ctbench.runtime.devices import Precision, to_device
from ctbench.runtime.progress import progress_bar
from ctbench.train.oracles import organ_masked

Response = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One case's (logits [M], raw map [M, H, D1, D2], truth [M]) (:func:`responses`)."""


class CounterfactualSource:
    """One split of ``source`` rendered again with ``label``'s cue or finding changed: a
    CaseSource for a VolumeDataset, holding only the cases the change applies to."""

    def __init__(self, source, label: str, change: str, case_ids: list[str]) -> None:
        self.source, self.label, self.change = source, label, change
        self.name = f"{source.name} ({change} of {label} changed)"
        self.label_names = source.label_names
        self.volume_shape, self.spacing = source.volume_shape, source.spacing
        self._ids = list(case_ids)

    def case_ids(self, split: str) -> list[str]:
        return list(self._ids) if split == "test" else []

    def load(self, case_id: str):
        return self.source.counterfactual(case_id, self.label, self.change)


def responses(
    model: torch.nn.Module,
    explainer,
    dataset: VolumeDataset,
    *,
    batch_size: int = 2,
    device: torch.device | str = "cpu",
    precision=None,
    progress: bool | None = None,
) -> dict[str, Response]:
    """``{case_id: (logits [M], raw map [M, H, D1, D2], truth [M])}`` of the model in eval
    mode (the organ-masked head's where the dataset gives ``organ_cells``)."""
    device = torch.device(device)
    precision = precision or Precision("fp32", device.type)
    model.eval()
    out = {}
    loader = make_loader(dataset, batch_size=batch_size)
    for batch in progress_bar(loader, enabled=progress, desc="counterfactuals", unit="batch"):
        inputs = {key: batch[key] for key in ("x", "volume", "augmentation") if key in batch}
        x = to_model_batch(to_device(inputs, device), dataset.preprocessing)["x"]
        with torch.no_grad(), precision.autocast():
            maps, logits = explainer.explain(model, x)
            if "organ_cells" in batch:  # --oracle organ-head: the masked head's own
                logits, maps = organ_masked(logits, maps, batch["organ_cells"].to(device))
        logits, maps = logits.detach().double().cpu().numpy(), maps.detach().double().cpu().numpy()
        truth = batch["y"].numpy() > 0.5
        for k, case_id in enumerate(batch["case_id"]):
            out[case_id] = (logits[k], maps[k], truth[k])
    return out


def shortcut_row(
    base: dict[str, Response],
    cue: dict[str, Response],
    removed: dict[str, Response],
    allowed: dict[str, np.ndarray] | None,
    m: int,
) -> dict[str, Any]:
    """One confounded label's ``shortcut`` entry from the responses (``responses``) of the
    cases as they are (``base``), with the cue toggled (``cue``: every case) and with the
    finding removed (``removed``: the positives); ``allowed[case_id]`` is the label's allowed
    cells ``[H, D1, D2]`` of each positive (None: no allowed share); ``m`` the label's index."""
    ids = list(cue)
    cue_change = np.array([abs(cue[c][0][m] - base[c][0][m]) for c in ids])
    finding_change = {c: abs(removed[c][0][m] - base[c][0][m]) for c in removed}
    shares: dict[str, tuple[float, float]] = {}  # case -> (change inside, change in all)
    for case_id in removed if allowed is not None else ():
        moved = np.abs(cue[case_id][1][m] - base[case_id][1][m])
        shares[case_id] = (float(moved[allowed[case_id]].sum()), float(moved.sum()))
    inside = sum(a for a, _ in shares.values())
    total = sum(b for _, b in shares.values())
    cue_effect = float(cue_change.mean()) if ids else None
    finding_effect = float(np.mean(list(finding_change.values()))) if removed else None
    return {
        "cue_effect": cue_effect,
        "finding_effect": finding_effect,
        "ratio": cue_effect / finding_effect if cue_effect is not None and finding_effect else None,
        "allowed_share": inside / total if total > 0 else None,
        "n": len(ids),
        "n_positive": len(removed),
        "per_case": {
            "case_ids": ids,
            "cue": cue_change.tolist(),
            "finding": [float(finding_change[c]) if c in removed else None for c in ids],
            # each positive's cue-induced map change: in the allowed cells, and in all cells
            "map_allowed": [shares[c][0] if c in shares else None for c in ids],
            "map_total": [shares[c][1] if c in shares else None for c in ids],
        },
    }


def shortcut_scores(
    model: torch.nn.Module,
    explainer,
    test: VolumeDataset,
    labels: list[str],
    confounded: tuple[str, ...],
    allowed_of: Callable[[str], np.ndarray] | None,
    **options,
) -> dict[str, dict[str, Any]]:
    """``metrics.json["shortcut"]``: :func:`shortcut_row` of every confounded label, the
    counterfactuals of ``test``'s cases rendered by its source; ``allowed_of(case_id)`` gives
    a case's allowed regions ``[M, H, D1, D2]`` (None: no explainer map to share out);
    ``explainer`` None reads the logits alone; ``options`` go to :func:`responses`."""
    explainer = explainer or LogitsOnly()
    source, ids = test.source, test.case_ids

    def dataset(cases) -> VolumeDataset:
        regions = test.allowed_regions if test.organ_cells else None
        return VolumeDataset(
            cases,
            "test",
            preprocessing=test.preprocessing,
            allowed_regions=regions,
            organ_cells=test.organ_cells,
        )

    base = responses(model, explainer, test, **options)
    out = {}
    for label in confounded:
        m = labels.index(label)
        positives = [c for c in ids if base[c][2][m]]
        cue = responses(
            model, explainer, dataset(CounterfactualSource(source, label, "cue", ids)), **options
        )
        removed = responses(
            model,
            explainer,
            dataset(CounterfactualSource(source, label, "finding", positives)),
            **options,
        )
        allowed = None
        if allowed_of is not None:
            allowed = {c: np.asarray(allowed_of(c)[m], bool) for c in positives}
        out[label] = shortcut_row(base, cue, removed, allowed, m)
    return out


class LogitsOnly:
    """An explainer stand-in for a model no explainer explains: its logits and an empty map."""

    def explain(self, model, x):
        logits = model(x)
        return logits.new_zeros((*logits.shape, 1, 1, 1)), logits
