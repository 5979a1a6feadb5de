"""Does a model use the planted cues? The shift scores of finished confounded runs, side by side.

For each run folder given (or each finished run under a folder), per confounded label: the test
AUROC with the cue agreeing as in training (iid), by chance (balanced) and reversed, and the
worst-group AUROC (positives without the cue against negatives with it); with the run's median
AUROC on iid and balanced cases and its HiResCAM OrganIoU; and the counterfactual shortcut
measures (``metrics.json["shortcut"]``): the mean |logit change| when the cue is toggled and
when the finding is removed, their ratio and the allowed share of the cue's map change. A model
that reads a cue shows iid >> balanced >> reversed, a worst-group AUROC under 0.5, and a cue
effect that is not small beside the finding's.

    python -m benchmarks.cue_use RUN_OR_FOLDER [...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ctbench.experiments.run_folder import RunFolder, finished_runs
from tabulate import tabulate


def rows_of(folder: Path) -> list[list]:
    run = RunFolder(folder)
    config = run.read_config()
    metrics, options = run.read_metrics(), config["run"]
    strength = (config.get("dataset_config") or {}).get("cue_strength")
    shift = metrics.get("shift")
    if not shift:
        return []
    arm = f"{options['finetune']}, " + (
        f"mask loss ({options['mask_loss_form']})" if options["mask_loss"] else "class loss"
    )
    if options.get("oracle", "none") != "none":
        arm += f", oracle {options['oracle']}"
    shortcut = metrics.get("shortcut", {})
    organiou = (metrics.get("organiou") or {}).get("hirescam")
    medians = {
        kind: float(np.median([v[kind] for v in shift.values() if v[kind] is not None]))
        for kind in ("iid", "balanced", "reversed")
    }
    rows = []
    for label, row in shift.items():
        if "worst_group" in row:
            short = shortcut.get(label, {})
            rows.append(
                [arm, f"seed {options['seed']}", strength, label, row["iid"], row["balanced"],
                 row["reversed"], row["worst_group"], short.get("cue_effect"),
                 short.get("finding_effect"), short.get("ratio"), short.get("allowed_share"),
                 medians["iid"], medians["balanced"], organiou]
            )  # fmt: skip
    return rows


def main(paths: list[Path]) -> None:
    folders = []
    for path in paths:
        folders += [path] if RunFolder(path).finished else finished_runs(path)
    rows = [row for folder in folders for row in rows_of(folder)]
    headers = ["arm", "seed", "cue strength", "label", "iid", "balanced", "reversed", "worst group",
               "cue effect", "finding effect", "ratio", "allowed share", "median iid",
               "median balanced", "OrganIoU"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github", floatfmt=".3f"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="+", type=Path)
    main(parser.parse_args().paths)
