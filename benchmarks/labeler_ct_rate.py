"""Score report labelers on CT-RATE's manually labelled reports, fold by fold.

    python benchmarks/labeler_ct_rate.py [--labeler NAME ...] [--old REV] [--errors LABEL]
        [--reports ../shared/data/ctrate_reports/train.csv]

Folds are the rows' positions modulo 5 (``ctbench.regions.labeler_scores``). Folds 0-3 are
the development folds: every rule and lexicon change of the ``sarle`` labeler was justified by
their errors. Fold 4 is sealed: its reports were never read, only scored. The script prints,
for each labeler, the per-label F1 on the development folds, on the sealed fold and on all
reports, and the micro F1 of each fold; then how the labeler places the findings of the
location truths (``tests/data/ctrate_locations.csv``). ``--old REV`` adds the ``sarle`` labeler
of git revision REV (its rules and vocabulary). ``--errors LABEL`` prints the development-fold
reports the first labeler gets wrong for LABEL (the sealed fold's are never printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from ctbench.regions.labeler_scores import (
    N_FOLDS,
    SEALED_FOLD,
    f1_table,
    location_agreement,
    micro_f1_interval,
    predict,
    read_location_truths,
    read_reports,
)

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT.parent / "shared" / "data" / "ctrate_reports" / "train.csv"
TRUTHS = ROOT / "tests" / "data" / "ctrate_locations.csv"


def old_labeler_module(revision: str):
    """The labeler module of git ``revision`` with its own vocabulary (``sarle.json``)."""

    def show(path: str) -> str | None:
        done = subprocess.run(
            ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True
        )
        return done.stdout if done.returncode == 0 else None

    source = show("harness/regions/labeler.py")
    if source is None or "alias(" in source:
        source = show("harness/labeler.py")
    folder = Path(tempfile.mkdtemp())
    (folder / "old_labeler.py").write_text(source)
    spec = importlib.util.spec_from_file_location("old_labeler", folder / "old_labeler.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_labeler"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    vocab = json.loads(show("harness/vocabulary/sarle.json"))
    module.vocabulary = lambda: vocab
    return module


def old_sarle(revision: str):
    """``labeler(report) -> {label: organs}`` of the sarle rules at git ``revision``."""
    module = old_labeler_module(revision)
    return lambda report: module.label_report(report)["locations"]


def labelers(names: list[str], old: str | None) -> dict:
    from ctbench.core.api import create_labeler

    out = {name: create_labeler(name) for name in names}
    if old:
        out[f"sarle@{old}"] = old_sarle(old)
    return out


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}")
    for label, row in table.items():
        print(
            f"  {label:36s} F1 {row['f1']:.3f}  P {row['precision']:.3f}  "
            f"R {row['recall']:.3f}  (positives {row['positives']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labeler", action="append", help="registered labeler (repeat)")
    parser.add_argument("--old", default=None, help="also score sarle at this git revision")
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument("--errors", default=None, help="print dev-fold errors of this label")
    args = parser.parse_args()
    reports = read_reports(args.reports)
    dev = ~reports.fold(SEALED_FOLD)
    summary = []
    for name, labeler in labelers(args.labeler or ["sarle"], args.old).items():
        predicted = predict(labeler, reports.texts, reports.labels)
        truth = reports.truth
        print(f"\n=== {name}: {len(reports.ids)} reports, {len(reports.labels)} labels")
        tables = {
            "development folds 0-3": f1_table(truth[dev], predicted[dev], reports.labels),
            f"sealed fold {SEALED_FOLD}": f1_table(truth[~dev], predicted[~dev], reports.labels),
            "all reports": f1_table(truth, predicted, reports.labels),
        }
        for title, table in tables.items():
            print_table(f"{name}, {title}:", table)
        folds = [
            f1_table(truth[reports.fold(k)], predicted[reports.fold(k)], reports.labels)
            for k in range(N_FOLDS)
        ]
        print(
            "  micro F1 by fold: "
            + ", ".join(f"{k}: {t['micro']['f1']:.3f}" for k, t in enumerate(folds))
        )
        sealed = tables[f"sealed fold {SEALED_FOLD}"]
        _, low, high = micro_f1_interval(truth[~dev], predicted[~dev])
        lowest = min(v["f1"] for k, v in sealed.items() if k != "micro")
        summary.append((name, *(t["micro"]["f1"] for t in tables.values()), low, high, lowest))
        if TRUTHS.is_file():
            agreement = location_agreement(labeler, reports, read_location_truths(TRUTHS))
            print(f"\n{name}, locations ({TRUTHS.name}): found / exact organs of the truths")
            for kind, row in agreement.items():
                print(
                    f"  {kind:14s} {row['truths']:4d} truths  found {row['found']:4d}  "
                    f"exact {row['exact']:4d} ({row['exact'] / row['truths']:.2f})"
                )
        if args.errors and name == (args.labeler or ["sarle"])[0]:
            k = reports.labels.index(args.errors)
            for i in np.flatnonzero(dev & (truth[:, k] != predicted[:, k])):
                kind = "missed" if truth[i, k] else "extra"
                print(f"\n[{kind}] {reports.ids[i]}: {reports.texts[i]}")
    print("\nlabeler          micro F1: dev 0-3  sealed 4 [95% interval]  all    lowest (sealed)")
    for name, dev_f1, sealed_f1, all_f1, low, high, lowest in summary:
        print(
            f"{name:16s}           {dev_f1:.3f}  {sealed_f1:.3f} [{low:.3f}, {high:.3f}]"
            f"  {all_f1:.3f}  {lowest:.3f}"
        )


if __name__ == "__main__":
    main()
