"""How a model's AUROC moves with a planted cue: ``metrics.json["shift"]`` (issue 30).

A dataset with confounders offers the same test cases with their cues drawn three ways
(``shift_source("iid")``: agreeing with the label as in training; ``"balanced"``: by chance;
the run's own test split: reversed) and says which case carries which label's cue
(``cue_present``, read into each split's ``cues``). Per label, the test AUROC on each; per
confounded label, the worst-group AUROC on the balanced split: its positives without the cue
against its negatives with it, the pairs a model that reads the cue ranks backwards.
"""

from __future__ import annotations

import numpy as np
from ctbench.evaluate.metrics import per_label_auroc

SHIFTS = ("iid", "balanced", "reversed")
"""The test splits, by how their cues agree with the labels."""


def confounded_labels(source, dataset: str) -> tuple[str, ...]:
    """The labels ``source`` plants a cue for: its own ``confounded_labels`` when it says
    (a configurable dataset), else its registration's declaration."""
    from ctbench.core.contracts import declared_of

    own = getattr(source, "confounded_labels", None)
    return (
        tuple(own)
        if own is not None
        else tuple(declared_of("datasets", dataset)["confounded_labels"])
    )


def worst_groups(truth: np.ndarray, cue: np.ndarray) -> np.ndarray:
    """The cases of the worst group: the positives without the cue and the negatives with it."""
    return (truth & ~cue) | (~truth & cue)


def worst_group_auroc(truth: np.ndarray, scores: np.ndarray, cue: np.ndarray) -> float | None:
    """AUROC of the positives without the cue against the negatives with it (None when a
    group is empty)."""
    keep = worst_groups(truth, cue)
    if truth[keep].all() or not truth[keep].any():
        return None
    return per_label_auroc(truth[keep][:, None], scores[keep][:, None], ["x"])["x"]


def shift_scores(splits: dict, labels: list[str], confounded) -> dict[str, dict[str, float | None]]:
    """``{label: {"iid", "balanced", "reversed", ["worst_group"]}}`` from the three splits'
    outputs (``SplitOutputs``: truth, float64 logits, and ``cues[label]``, whether each case
    carries the label's cue, on the balanced split)."""
    aurocs = {kind: per_label_auroc(out.truth, out.logits, labels) for kind, out in splits.items()}
    out: dict[str, dict[str, float | None]] = {}
    for m, label in enumerate(labels):
        row = {kind: _finite(aurocs[kind][label]) for kind in SHIFTS}
        if label in confounded:
            balanced = splits["balanced"]
            cue = np.asarray(balanced.cues[label], bool)
            row["worst_group"] = worst_group_auroc(balanced.truth[:, m], balanced.logits[:, m], cue)
        out[label] = row
    return out


def _finite(value: float) -> float | None:
    return None if value != value else float(value)
