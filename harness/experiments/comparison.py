"""Comparing two runs on the same cases: the paper's Table 7 (DeLong tests, FDR over labels).

Both runs' ``predictions.csv`` are paired on ``(case_id, label)`` of one split; the cases and
their truth must agree (same dataset, same split), otherwise the comparison is refused. The
DeLong statistics rank the logits: probabilities of large logits round to ties.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from ctbench.evaluate.stats import auroc_ci, benjamini_hochberg, delong_test
from ctbench.experiments.run_folder import RunFolder
from ctbench.runtime.storage import read_table

COLUMNS = ("auroc_a", "ci_a_low", "ci_a_high", "auroc_b", "ci_b_low", "ci_b_high", "z", "p_value")


def read_predictions(folder: Path, split: str) -> pd.DataFrame:
    path = RunFolder(folder).predictions
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no predictions (is {folder} a finished run folder?)")
    frame = read_table(path)
    missing = {"split", "case_id", "label", "truth", "logit"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} are missing")
    chosen = frame[frame["split"] == split]
    if chosen.empty:
        raise ValueError(f"{path}: no {split} predictions")
    return chosen


def compare_runs(run_a: Path, run_b: Path, split: str = "test") -> pd.DataFrame:
    """One row per label: positives %, each run's AUROC and 95% CI, DeLong p and FDR p."""
    a, b = read_predictions(run_a, split), read_predictions(run_b, split)
    merged = a.merge(b, on=["case_id", "label"], suffixes=("_a", "_b"), how="outer")
    if merged[["logit_a", "logit_b"]].isna().any().any():
        raise ValueError(f"{run_a} and {run_b} do not cover the same {split} cases and labels")
    if (merged["truth_a"] != merged["truth_b"]).any():
        raise ValueError(f"{run_a} and {run_b} disagree on the truth: not the same data")
    rows = []
    for label, group in merged.groupby("label", sort=False):
        y = group["truth_a"].to_numpy().astype(int)
        pa, pb = group["logit_a"].to_numpy(), group["logit_b"].to_numpy()
        row = {"label": label, "positives_pct": 100.0 * y.mean()}
        if 0 < y.sum() < len(y):
            _, low_a, high_a = auroc_ci(y, pa)
            _, low_b, high_b = auroc_ci(y, pb)
            test = delong_test(y, pa, pb)
            row |= {
                "auroc_a": test.auc_a,
                "ci_a_low": low_a,
                "ci_a_high": high_a,
                "auroc_b": test.auc_b,
                "ci_b_low": low_b,
                "ci_b_high": high_b,
                "z": test.z,
                "p_value": test.p_value,
            }
        else:
            row |= dict.fromkeys(COLUMNS, np.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    table["p_fdr"] = benjamini_hochberg(table["p_value"].to_numpy(dtype=float))
    return table
