"""The mask-loss ladder's table (issue 30): per training scope and loss, what the mask loss
changes in the explanations (OrganIoU and the share of its headroom closed) and in the use of
each planted cue (balanced and worst-group AUROC, ``metrics.json["shift"]``), and what it costs
on cases whose cues agree as in training (the iid median AUROC)."""

from __future__ import annotations

import numpy as np
from ctbench.core import paper
from ctbench.report.tables import RunRecord, Stat, Table, group_runs, paper_plugin

ARM_OPTIONS = ("finetune", "mask_loss", "mask_loss_form")
"""The options that make an arm of the ladder; every other option is held fixed."""


def arm_name(options: dict) -> str:
    loss = f"mask loss, {options['mask_loss_form']}" if options["mask_loss"] else "class loss"
    return f"{options['finetune']}: {loss}"


def table_ladder(runs: list[RunRecord]) -> Table:
    """One row per arm (scope x loss; seeds -> mean ± sd), the class-loss arm of each scope as
    its baseline: OrganIoU, the headroom closed ``(b - a) / (1 - a)``, the iid median AUROC and
    its change, and per confounded label the balanced and worst-group AUROC."""
    runs = [run for run in runs if run.metrics.get("shift")]
    if not runs:
        raise ValueError(
            "the ladder needs runs with confounders on a dataset that scores the cue shift "
            "(metrics.json shift): run them with --confounders"
        )
    confounded = sorted(
        {
            label
            for run in runs
            for label, row in run.metrics["shift"].items()
            if "worst_group" in row
        }
    )
    arms = group_runs(runs)
    others = {k for key, _ in arms for k in key if k not in ARM_OPTIONS}
    if others:
        raise ValueError(
            f"the ladder's runs differ in more than their arm: {', '.join(sorted(others))}; "
            "give it one matrix's runs"
        )
    baselines = {
        members[0].options["finetune"]: members
        for _, members in arms
        if not members[0].options["mask_loss"]
    }
    hirescam = paper_plugin("explainers", paper.TABLE1_EXPLAINERS[1])  # the paper's HiResCAM
    rows = []
    for _, members in sorted(arms, key=lambda g: _order(g[1][0].options)):
        options = members[0].options
        baseline = baselines.get(options["finetune"])
        organiou = Stat.of([m.get("organiou", hirescam) for m in members])
        iid = Stat.of([_median(m, "iid") for m in members])
        row = [arm_name(options), len(members), organiou]
        if baseline is not None and organiou is not None:
            before = Stat.of([m.get("organiou", hirescam) for m in baseline])
            closed = (organiou.mean - before.mean) / (1 - before.mean) if before else None
            base_iid = Stat.of([_median(m, "iid") for m in baseline])
            row += [closed, iid, iid.mean - base_iid.mean if iid and base_iid else None]
        else:
            row += [None, iid, None]
        for label in confounded:
            row.append(Stat.of([m.get("shift", label, "balanced") for m in members]))
            row.append(Stat.of([m.get("shift", label, "worst_group") for m in members]))
        rows.append(row)
    columns = ["Arm", "n", "OrganIoU", "headroom closed", "iid median AUROC", "iid change"]
    for label in confounded:
        columns += [f"{label} balanced", f"{label} worst group"]
    return Table(
        "The mask-loss ladder: explanations against the use of planted cues (test split)",
        columns,
        rows,
        caption="HiResCAM OrganIoU; headroom closed (b - a) / (1 - a) and iid change against "
        "the class-loss arm of the same scope; AUROC with the cues agreeing as in training "
        "(iid), by chance (balanced), and on the positives without the cue against the "
        "negatives with it (worst group); mean ± sd over seeds (n runs).",
        digits=3,
    )


def _order(options: dict) -> tuple:
    scopes = ("head", "layer4", "all")
    scope = scopes.index(options["finetune"]) if options["finetune"] in scopes else len(scopes)
    return scope, bool(options["mask_loss"]), str(options.get("mask_loss_form"))


def _median(run: RunRecord, kind: str) -> float | None:
    values = [row[kind] for row in run.metrics["shift"].values() if row.get(kind) is not None]
    return float(np.median(values)) if values else None
