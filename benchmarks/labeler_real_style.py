"""Score the report labeler on real-style sentences against CT-RATE's 18 labels.

    python benchmarks/labeler_real_style.py [--old REV] [--errors]

The sentences (``tests/data/real_style_sentences.csv``) were written for ctbench from the way
chest CT reports phrase findings (CT-RATE's translated reports, US reports): sizes, "increased",
"sequelae", lists, hedges, negated lists, findings outside the chest. They are the labeler's
development set, so the figure is optimistic; CT-RATE's manually labelled reports were never
read. ``--errors`` prints every sentence the labeler gets wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from ctbench.regions.labeler import place_labels
from ctbench.vocabulary import ct_rate_labels
from sklearn.metrics import f1_score

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "real_style_sentences.csv"


def old_labeler(revision: str):
    """``place_labels`` as the labeler of git ``revision`` would give it (its rules and
    vocabulary; a labeler without ``place_labels`` places labels from its abnormality x organ
    matrix, with the same gates)."""
    from benchmarks.labeler_ct_rate import old_labeler_module

    module = old_labeler_module(revision)
    if hasattr(module, "place_labels"):
        return module.place_labels

    def place(report: str, table: dict) -> dict[str, list[str]]:
        matrix = module.label_sentences(report).matrix
        out = {}
        for label, entry in table.items():
            for abnormality in entry["abnormalities"]:
                organs = matrix.get(abnormality, set())
                if organs and (entry["gate"] == "none" or organs & set(entry["organs"])):
                    out.setdefault(label, []).extend(sorted(organs))
        return out

    return place


def score(
    errors: bool = False, revision: str | None = None, corpus_path: Path = CORPUS
) -> dict[str, float]:
    place = old_labeler(revision) if revision else place_labels
    table = ct_rate_labels()
    names = list(table)
    corpus = pd.read_csv(corpus_path, keep_default_na=False)
    truth, predicted = [], []
    for text, labels in zip(corpus["text"], corpus["labels"], strict=True):
        expected = set(filter(None, labels.split("|")))
        found = set(place(text, table))
        truth.append([n in expected for n in names])
        predicted.append([n in found for n in names])
        if errors and found != expected:
            print(f"{text}\n   expected {sorted(expected)}\n   found    {sorted(found)}")
    y, p = np.array(truth), np.array(predicted)
    present = y.any(axis=0) | p.any(axis=0)
    per_label = {n: f1_score(y[:, k], p[:, k], zero_division=0) for k, n in enumerate(names)}
    return {
        "sentences": len(corpus),
        "micro_f1": float(f1_score(y, p, average="micro")),
        "macro_f1": float(
            np.mean([per_label[n] for n, keep in zip(names, present, strict=True) if keep])
        ),
        "exact": float((y == p).all(axis=1).mean()),
        **{f"f1 {n}": round(float(v), 3) for n, v in per_label.items()},
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.* importable
    parser = argparse.ArgumentParser()
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--old", default=None, help="score the labeler of this git revision")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    result = score(args.errors, args.old, args.corpus)
    for key, value in result.items():
        print(f"{key:42s} {value:.3f}" if isinstance(value, float) else f"{key:42s} {value}")
