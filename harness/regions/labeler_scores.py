"""A report labeler against manually labelled reports: CT-RATE's label set, its folds, F1.

CT-RATE's manually labelled reports (``AccessionNo``, ``report_text``, one 0/1 column per
label) are scored under the mapping of :func:`ctbench.vocabulary.ct_rate_paper_labels`: a
report is predicted positive for a CT-RATE label when the labeler outputs any of its paper
labels. ``benchmarks/labeler_ct_rate.py`` prints the tables; docs/labeler.md says what they
showed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ctbench.vocabulary import ORGANS, ct_rate_paper_labels

N_FOLDS = 5
SEALED_FOLD = 4
"""Folds are the rows' positions modulo 5. Folds 0-3 were read while the rules were written;
fold 4 never was (docs/labeler.md)."""


@dataclass(frozen=True)
class Reports:
    """Manually labelled reports: ids, texts and the truth ``[N, L]`` over ``labels``."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    truth: np.ndarray

    def fold(self, k: int) -> np.ndarray:
        """Row mask of fold ``k``."""
        return np.arange(len(self.ids)) % N_FOLDS == k


def read_reports(path: str | Path) -> Reports:
    """CT-RATE's labelled-report CSV; the scored labels are those with paper labels. A missing
    column or a value other than 0/1 is one ValueError naming the file."""
    import pandas as pd

    table = pd.read_csv(path, dtype={"AccessionNo": str, "report_text": str})
    labels = tuple(ct_rate_paper_labels())
    missing = [c for c in ("AccessionNo", "report_text", *labels) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    truth = table[list(labels)].to_numpy()
    if not np.isin(truth, (0, 1)).all():
        raise ValueError(f"{path}: label values other than 0 and 1")
    texts = tuple(table["report_text"].fillna("").astype(str))
    return Reports(tuple(table["AccessionNo"]), texts, labels, truth.astype(bool))


def predict(
    labeler: Callable[[str], dict], texts: Iterable[str], labels: tuple[str, ...]
) -> np.ndarray:
    """``[N, L]``: whether the labeler outputs any paper label of each CT-RATE label."""
    from ctbench.regions.labeling import from_paper_labels
    from ctbench.vocabulary import ct_rate_labels

    table = ct_rate_labels()
    rows = []
    for text in texts:
        present = from_paper_labels(labeler(text), table)
        rows.append([label in present for label in labels])
    return np.array(rows, bool).reshape(-1, len(labels))


def f1_table(truth: np.ndarray, predicted: np.ndarray, labels: tuple[str, ...]) -> dict:
    """``{label: {precision, recall, f1, positives}}`` and ``micro``."""
    from sklearn.metrics import precision_recall_fscore_support

    def scores(average):
        return precision_recall_fscore_support(truth, predicted, average=average, zero_division=0)[
            :3
        ]

    precision, recall, f1 = scores(None)
    out = {
        label: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "positives": int(truth[:, k].sum()),
        }
        for k, label in enumerate(labels)
    }
    precision, recall, f1 = scores("micro")
    out["micro"] = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "positives": int(truth.sum()),
    }
    return out


def micro_f1_interval(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """Micro F1 (2 TP / (2 TP + FP + FN)) with its 95% bootstrap interval over reports."""
    from ctbench.evaluate.bootstrap import bootstrap_ratio

    tp = (truth & predicted).sum(1)
    wrong = (truth != predicted).sum(1)
    interval = bootstrap_ratio(2.0 * tp, 2.0 * tp + wrong)
    return interval.mean, interval.low, interval.high


@dataclass(frozen=True)
class LocationTruth:
    """One (report, label, organs) truth: where the report puts the paper label."""

    accession: str
    label: str
    organs: frozenset[str]
    kind: str


def read_location_truths(path: str | Path) -> list[LocationTruth]:
    """``accession,label,organs,kind`` rows (organs ``|``-separated, from ``ORGANS``)."""
    import csv

    from ctbench.vocabulary import check_labels

    out = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            check_labels([row["label"]], str(path))
            organs = frozenset(row["organs"].split("|"))
            if not organs <= set(ORGANS):
                raise ValueError(f"{path}: {row['accession']}: organs {sorted(organs)}")
            out.append(LocationTruth(row["accession"], row["label"], organs, row["kind"]))
    return out


def location_agreement(
    labeler: Callable[[str], dict], reports: Reports, truths: list[LocationTruth]
) -> dict[str, dict]:
    """Per kind of location (and ``all``): truths, found (the labeler outputs the label),
    exact (in exactly the true organs)."""
    text = dict(zip(reports.ids, reports.texts, strict=True))
    found_by_report: dict[str, dict] = {}
    out: dict[str, dict] = {}
    for truth in truths:
        if truth.accession not in text:
            raise ValueError(f"location truth for {truth.accession}: no such report")
        if truth.accession not in found_by_report:
            found_by_report[truth.accession] = labeler(text[truth.accession])
        organs = found_by_report[truth.accession].get(truth.label)
        for kind in (truth.kind, "all"):
            row = out.setdefault(kind, {"truths": 0, "found": 0, "exact": 0})
            row["truths"] += 1
            row["found"] += organs is not None
            row["exact"] += organs is not None and frozenset(organs) == truth.organs
    return out
