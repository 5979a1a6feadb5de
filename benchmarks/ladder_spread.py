"""How much of the ladder's spread between runs comes from the pretext start (issue 30, part 8).

For each arm of a finished ladder (``ctbench matrix mask-ladder``), the runs are grouped by
``pretext_seed``: per statistic (HiResCAM OrganIoU, median AUROC on the iid split, the shortcut
ratio of each confounded label), the mean of each pretext's runs, the spread of all runs (sample
variance) and the share of it that lies between the pretexts' means (between-group sum of
squares over the total: 0 when the pretext changes nothing, 1 when it explains everything).

    python -m benchmarks.ladder_spread LADDER_FOLDER
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ctbench.report.ladder import ARM_OPTIONS, arm_name
from ctbench.report.tables import group_runs, load_runs
from tabulate import tabulate


def statistics(run) -> dict[str, float | None]:
    shift = run.metrics.get("shift", {})
    iid = [row["iid"] for row in shift.values() if row.get("iid") is not None]
    out = {
        "OrganIoU": (run.metrics.get("organiou") or {}).get("hirescam"),
        "iid median AUROC": float(np.median(iid)) if iid else None,
    }
    for label, row in run.metrics.get("shortcut", {}).items():
        out[f"{label} ratio"] = row.get("ratio")
    return out


def between_share(values: list[float], groups: list) -> float | None:
    """Between-group sum of squares over the total sum of squares; None unless there are two
    groups or more with two runs or more each (with one run a pretext, its seed and its
    pretext cannot be told apart)."""
    values, groups = np.asarray(values, float), np.asarray(groups)
    total = float(((values - values.mean()) ** 2).sum())
    sizes = [int((groups == key).sum()) for key in set(groups.tolist())]
    if total == 0 or len(sizes) < 2 or min(sizes) < 2:
        return None
    between = 0.0
    for key in set(groups.tolist()):
        members = values[groups == key]
        between += len(members) * (members.mean() - values.mean()) ** 2
    return float(between / total)


def main(folder: Path) -> None:
    runs = load_runs(folder)
    rows = []
    for _, members in group_runs(runs, ignore=("seed", "pretext_seed")):
        options = members[0].options
        if any(k not in options for k in ARM_OPTIONS):
            continue
        stats = [statistics(run) for run in members]
        pretexts = [run.options.get("pretext_seed", 0) for run in members]
        for name in stats[0]:
            values = [s[name] for s in stats]
            kept = [(v, p) for v, p in zip(values, pretexts, strict=True) if v is not None]
            if len(kept) < 2:
                continue
            vals, groups = [v for v, _ in kept], [p for _, p in kept]
            means = {p: float(np.mean([v for v, g in kept if g == p])) for p in sorted(set(groups))}
            rows.append(
                [arm_name(options), name, len(vals),
                 ", ".join(f"pretext {p}: {m:.3f}" for p, m in means.items()),
                 float(np.std(vals, ddof=1)), between_share(vals, groups)]
            )  # fmt: skip
    headers = ["arm", "statistic", "runs", "mean per pretext", "sd of all runs", "between share"]
    print(tabulate(rows, headers=headers, tablefmt="github", floatfmt=".3f"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    main(parser.parse_args().folder)
