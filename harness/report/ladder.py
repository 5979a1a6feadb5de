"""The mask-loss ladder's table and figure (issue 30).

One row per arm (training scope x loss, and the oracles), every number with a paired bootstrap
interval over test volumes and seeds: what the mask loss changes in the explanations (HiResCAM
OrganIoU, the share of its headroom closed ``(b - a) / (1 - a)`` against the class-loss arm of
the same scope), in the use of each planted cue (the counterfactual shortcut ratio and the
allowed share of its map change, ``metrics.json["shortcut"]``; the balanced and worst-group
AUROC, ``metrics.json["shift"]``) and what it costs where the cues agree as in training (iid
median AUROC).

The bootstrap: each replicate draws the volumes of each test split with replacement (the same
draws for every run: all runs of a ladder score the same cases) and the replicates of an arm
(its runs' ``seed`` and ``pretext_seed``) with replacement; an arm's value is the mean over the
drawn runs of each run's statistic on the drawn volumes. A change against the baseline arm pairs
the runs of the same seeds and uses the same draws, so the interval covers both the volumes and
the training (and pretext) seeds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from ctbench.core import paper
from ctbench.evaluate.shift import worst_groups
from ctbench.report.tables import Interval, RunRecord, Table, group_runs, paper_plugin

ARM_OPTIONS = ("finetune", "mask_loss", "mask_loss_form", "oracle")
"""The options that make an arm of the ladder; every other option is held fixed."""

SCOPE_OPTIONS = ("head_epochs", "layer4_epochs", "epochs")
"""Options the preset resolves from the scope (a layer4 run has layer4 epochs): they may
differ with it."""

REPLICATE_OPTIONS = ("seed", "pretext_seed")
"""What an arm's runs differ in: the training seed and the seed of the pretext they start from."""

LABEL_COLUMNS = ("ratio", "ratio change", "allowed share", "balanced", "worst group")
"""The ladder's columns per confounded label."""

SHORTCUT_COLUMNS = ("cue", "finding", "map_allowed", "map_total")
"""``metrics.json["shortcut"][label]["per_case"]``'s lists the ladder resamples."""

REPLICATES = 1000
LEVEL = 0.95


def arm_name(options: dict) -> str:
    loss = f"mask loss, {options['mask_loss_form']}" if options["mask_loss"] else "class loss"
    oracle = options.get("oracle", "none")
    return f"{options['finetune']}: {loss}" + (f", oracle {oracle}" if oracle != "none" else "")


@dataclass
class RunCases:
    """One run's per-volume numbers, on the ladder's case orders (``test`` and ``shift``)."""

    key: tuple
    organiou: tuple[np.ndarray, np.ndarray]  # per test volume: sum and count of scored labels
    auroc_inputs: dict[str, dict[str, tuple]] = field(default_factory=dict)  # split -> label ->
    shortcut: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _pairs(truth: np.ndarray, scores: np.ndarray, keep: np.ndarray | None = None):
    """``(positive index, negative index, wins [P, N])`` for a weighted AUROC: wins counts a
    positive ranked above a negative as 1 and a tie as 1/2."""
    keep = np.ones(len(truth), bool) if keep is None else keep
    pos, neg = np.flatnonzero(truth & keep), np.flatnonzero(~truth & keep)
    diff = scores[pos][:, None] - scores[neg][None, :]
    return pos, neg, (diff > 0) + 0.5 * (diff == 0)


def _weighted_auroc(inputs, weights: np.ndarray) -> np.ndarray:
    """AUROC under case ``weights [R, N]`` (bootstrap counts): one value per replicate."""
    pos, neg, wins = inputs
    if not len(pos) or not len(neg):
        return np.full(len(weights), np.nan)
    wp, wn = weights[:, pos], weights[:, neg]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("rp,pn,rn->r", wp, wins, wn) / (wp.sum(1) * wn.sum(1))


def _ratio(numerator, denominator):
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def read_run_cases(run: RunRecord, orders: dict[str, list[str]], labels, confounded) -> RunCases:
    """A run's per-volume numbers from its ``predictions.csv`` and ``metrics.json``."""
    from ctbench.experiments.run_folder import RunFolder

    frame = pd.read_csv(RunFolder(run.folder).predictions)
    explainer = paper_plugin("explainers", paper.TABLE1_EXPLAINERS[1])  # the paper's HiResCAM
    column = f"organiou_{explainer}"
    test = frame[frame["split"] == "test"]
    if column not in test:
        raise ValueError(f"{run.folder}: predictions.csv has no {column} (ctbench before 0.x?)")
    iou = test.pivot(index="case_id", columns="label", values=column).loc[orders["test"]]
    values = iou.to_numpy(float)
    cases = RunCases(
        key=tuple(run.options.get(k) for k in REPLICATE_OPTIONS),
        organiou=(np.nansum(values, 1), np.isfinite(values).sum(1).astype(float)),
    )

    def shift_table(split: str, values: str) -> pd.DataFrame:
        rows = frame[frame["split"] == split]
        return rows.pivot(index="case_id", columns="label", values=values).loc[orders["shift"]]

    for split in ("iid", "balanced"):
        logits, truth = shift_table(split, "logit"), shift_table(split, "truth") > 0
        cases.auroc_inputs[split] = {
            label: _pairs(truth[label].to_numpy(), logits[label].to_numpy()) for label in labels
        }
    cue = shift_table("balanced", "cue") > 0  # logits and truth: the balanced split's, above
    cases.auroc_inputs["worst"] = {
        label: _pairs(
            truth[label].to_numpy(),
            logits[label].to_numpy(),
            worst_groups(truth[label].to_numpy(), cue[label].to_numpy()),
        )
        for label in confounded
    }
    for label in confounded:
        per_case = run.get("shortcut", label, "per_case")
        if per_case is None:
            continue
        index = {c: k for k, c in enumerate(per_case["case_ids"])}
        pick = [index[c] for c in orders["test"]]

        arrays = {
            name: np.array([np.nan if v is None else v for v in per_case.get(name, [])], float)
            for name in SHORTCUT_COLUMNS
        }
        cases.shortcut[label] = {
            name: values[pick] if len(values) else np.full(len(pick), np.nan)
            for name, values in arrays.items()
        }
    return cases


def run_statistics(cases: RunCases, weights: dict[str, np.ndarray], labels, confounded) -> dict:
    """Each of the ladder's statistics of one run under case ``weights`` (``{"test": [R, N],
    "shift": [R, N']}``): ``{name: [R]}``."""
    test, shift = weights["test"], weights["shift"]
    total, count = cases.organiou
    out = {"organiou": _ratio(test @ total, test @ count)}
    iid = np.stack([_weighted_auroc(cases.auroc_inputs["iid"][m], shift) for m in labels])
    with warnings.catch_warnings():  # a replicate may draw no positive of a rare label
        warnings.simplefilter("ignore", RuntimeWarning)
        out["iid median AUROC"] = np.nanmedian(iid, axis=0)
    for label in confounded:
        short = cases.shortcut.get(label)
        if short is not None:
            cue = _ratio(test @ np.nan_to_num(short["cue"]), test.sum(1))
            positive = np.isfinite(short["finding"]).astype(float)
            finding = _ratio(test @ np.nan_to_num(short["finding"]), test @ positive)
            out[f"{label} ratio"] = _ratio(cue, finding)
            out[f"{label} allowed share"] = _ratio(
                test @ np.nan_to_num(short["map_allowed"]), test @ np.nan_to_num(short["map_total"])
            )
        out[f"{label} balanced"] = _weighted_auroc(cases.auroc_inputs["balanced"][label], shift)
        out[f"{label} worst group"] = _weighted_auroc(cases.auroc_inputs["worst"][label], shift)
    return out


def _interval(observed: float, replicates: np.ndarray) -> Interval | None:
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(observed) or len(finite) < 0.5 * len(replicates):
        return None
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(observed), float(low), float(high))


@dataclass
class LadderArm:
    name: str
    options: dict
    runs: list[RunCases]
    observed: dict = field(default_factory=dict)  # name -> per-run values (all volumes)
    replicated: dict = field(default_factory=dict)  # name -> [R, runs] under the case draws


def ladder_arms(
    runs: list[RunRecord], replicates: int = REPLICATES, seed: int = 0
) -> tuple[list[LadderArm], list[str], np.random.Generator]:
    """The ladder's arms with every run's statistics on all volumes and on each replicate's
    volume draws; the confounded labels."""
    runs = [run for run in runs if run.metrics.get("shift")]
    if not runs:
        raise ValueError(
            "the ladder needs runs with confounders on a dataset that scores the cue shift "
            "(metrics.json shift): run them with --confounders"
        )
    labels = list(runs[0].metrics["shift"])
    confounded = sorted(
        {
            label
            for run in runs
            for label, row in run.metrics["shift"].items()
            if "worst_group" in row
        }
    )
    groups = group_runs(runs, ignore=REPLICATE_OPTIONS)
    others = {k for key, _ in groups for k in key if k not in ARM_OPTIONS + SCOPE_OPTIONS}
    if others:
        raise ValueError(
            f"the ladder's runs differ in more than their arm: {', '.join(sorted(others))}; "
            "give it one matrix's runs"
        )
    orders = _case_orders(runs[0])
    rng = np.random.default_rng(seed)
    draws = {
        name: rng.multinomial(
            len(order), np.full(len(order), 1 / len(order)), size=replicates
        ).astype(float)
        for name, order in orders.items()
    }
    ones = {name: np.ones((1, len(order))) for name, order in orders.items()}
    arms = []
    for _, members in sorted(groups, key=lambda g: _order(g[1][0].options)):
        arm = LadderArm(arm_name(members[0].options), members[0].options, [])
        for run in members:
            cases = read_run_cases(run, orders, labels, confounded)
            arm.runs.append(cases)
            for name, values in run_statistics(cases, ones, labels, confounded).items():
                arm.observed.setdefault(name, []).append(float(values[0]))
            for name, values in run_statistics(cases, draws, labels, confounded).items():
                arm.replicated.setdefault(name, []).append(values)
        arm.replicated = {k: np.stack(v, axis=1) for k, v in arm.replicated.items()}
        arms.append(arm)
    return arms, confounded, rng


def _case_orders(run: RunRecord) -> dict[str, list[str]]:
    from ctbench.experiments.run_folder import RunFolder

    frame = pd.read_csv(RunFolder(run.folder).predictions, usecols=["split", "case_id"])
    test = sorted(set(frame.loc[frame["split"] == "test", "case_id"]))
    shift = sorted(set(frame.loc[frame["split"] == "iid", "case_id"]))
    if not shift:
        raise ValueError(f"{run.folder}: predictions.csv holds no iid split (ctbench before 0.x?)")
    return {"test": test, "shift": shift}


def _seed_draws(n_runs: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """``[R, n_runs]``: which runs each replicate averages (with replacement; one run: itself)."""
    if n_runs == 1:
        return np.zeros((replicates, 1), int)
    return rng.integers(0, n_runs, size=(replicates, n_runs))


def arm_value(arm: LadderArm, name: str, picks: np.ndarray, runs: list[int] | None = None):
    """``(observed, replicates [R])`` of statistic ``name`` over the arm's runs (``runs``:
    their indices, default all), each replicate averaging its ``picks`` of them."""
    runs = list(range(len(arm.runs))) if runs is None else runs
    if name not in arm.replicated:
        return np.nan, np.full(len(picks), np.nan)
    chosen = np.asarray(runs)[picks]  # [R, S]
    values = np.take_along_axis(arm.replicated[name], chosen, axis=1)
    with warnings.catch_warnings():  # a statistic a run cannot have (no map change) is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        observed = float(np.nanmean([arm.observed[name][k] for k in runs]))
        return observed, np.nanmean(values, axis=1)


def table_ladder(runs: list[RunRecord], replicates: int = REPLICATES) -> Table:
    """``ctbench table --table ladder``: :func:`build_ladder`'s table."""
    return build_ladder(runs, replicates)[0]


def build_ladder(runs: list[RunRecord], replicates: int = REPLICATES) -> tuple[Table, list[dict]]:
    """``(table, figure points)``: one row per arm, the class-loss arm of each scope (no
    oracle) its baseline; per arm its OrganIoU and shortcut ratio per confounded label."""
    arms, confounded, rng = ladder_arms(runs, replicates)
    baselines = {
        arm.options["finetune"]: arm
        for arm in arms
        if not arm.options["mask_loss"] and arm.options.get("oracle", "none") == "none"
    }
    columns = ["Arm", "n", "OrganIoU", "OrganIoU change", "headroom closed", "iid median AUROC",
               "iid change"]  # fmt: skip
    for label in confounded:
        columns += [f"{label} {what}" for what in LABEL_COLUMNS]
    rows, figure = [], []
    for arm in arms:
        picks = _seed_draws(len(arm.runs), replicates, rng)
        row = [arm.name, len(arm.runs), _interval(*arm_value(arm, "organiou", picks))]
        base = baselines.get(arm.options["finetune"])
        paired = _paired(arm, base) if base is not None and base is not arm else None
        if paired:
            (a_obs, a_rep), (b_obs, b_rep) = _paired_values(arm, base, paired, "organiou", rng)
            row.append(_interval(b_obs - a_obs, b_rep - a_rep))
            row.append(_interval((b_obs - a_obs) / (1 - a_obs), (b_rep - a_rep) / (1 - a_rep)))
        else:
            row += [None, None]
        row.append(_interval(*arm_value(arm, "iid median AUROC", picks)))
        row.append(_change(arm, base, paired, "iid median AUROC", rng))
        point = {"arm": arm.name, "organiou": row[2]}
        for label in confounded:
            ratio = _interval(*arm_value(arm, f"{label} ratio", picks))
            point[label] = ratio
            row += [
                ratio,
                _change(arm, base, paired, f"{label} ratio", rng, relative=True),
                _interval(*arm_value(arm, f"{label} allowed share", picks)),
                _interval(*arm_value(arm, f"{label} balanced", picks)),
                _interval(*arm_value(arm, f"{label} worst group", picks)),
            ]
        rows.append(row)
        figure.append(point)
    table = Table(
        "The mask-loss ladder: explanations against the use of planted cues (test splits)",
        columns,
        rows,
        caption=(
            "HiResCAM OrganIoU; its change and the headroom closed (b - a) / (1 - a), the iid "
            "change and the ratio change (relative: -0.5 is halved) against the class-loss arm "
            "of the same scope, paired by seed. Shortcut ratio: mean |logit change| with the "
            "cue toggled over that with the finding removed (counterfactual volumes); allowed "
            "share: of the cue's map change, the share in the label's allowed cells. AUROC with "
            "the cues agreeing as in training (iid), by chance (balanced), and positives without "
            f"the cue against negatives with it (worst group). {LEVEL:.0%} bootstrap intervals "
            f"over test volumes and seeds ({replicates} replicates); n runs per arm."
        ),
        digits=3,
    )
    return table, figure


def _paired(arm: LadderArm, base: LadderArm) -> tuple[list[int], list[int]] | None:
    """Indices of the runs of ``arm`` and ``base`` that share seeds, in the same order."""
    theirs = {cases.key: k for k, cases in enumerate(base.runs)}
    pairs = [(k, theirs[c.key]) for k, c in enumerate(arm.runs) if c.key in theirs]
    if not pairs:
        return None
    return [k for k, _ in pairs], [j for _, j in pairs]


def _paired_values(arm, base, paired, name: str, rng):
    """``((baseline observed, replicates), (arm observed, replicates))`` of statistic ``name``
    over the runs of both that share seeds, under the same seed and volume draws."""
    ours, theirs = paired
    same = _seed_draws(len(ours), len(next(iter(arm.replicated.values()))), rng)
    return arm_value(base, name, same, theirs), arm_value(arm, name, same, ours)


def _change(arm, base, paired, name: str, rng, relative: bool = False):
    """The arm's change in ``name`` against its baseline (relative: ``b / a - 1``)."""
    if not paired:
        return None
    (a_obs, a_rep), (b_obs, b_rep) = _paired_values(arm, base, paired, name, rng)
    if relative:
        return _interval(b_obs / a_obs - 1, b_rep / a_rep - 1)
    return _interval(b_obs - a_obs, b_rep - a_rep)


def _order(options: dict) -> tuple:
    scopes = ("head", "layer4", "all")
    scope = scopes.index(options["finetune"]) if options["finetune"] in scopes else len(scopes)
    oracle = options.get("oracle", "none")
    return (
        oracle != "none",
        scope,
        oracle,
        bool(options["mask_loss"]),
        str(options["mask_loss_form"]),
    )


def plot_ladder(points: list[dict], path: Path) -> Path:
    """Shortcut ratio against OrganIoU per arm (:func:`build_ladder`'s points), one panel per
    confounded label, with both intervals (``ctbench table --table ladder --figure PATH``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ctbench.runtime.storage import atomic_open

    labels = [key for key in points[0] if key not in ("arm", "organiou")]
    fig, axes = plt.subplots(1, len(labels), figsize=(5.5 * len(labels), 4.5), squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        for k, point in enumerate(points):
            iou, ratio = point["organiou"], point[label]
            if iou is None or ratio is None:
                continue
            ax.errorbar(
                iou.value, ratio.value,
                xerr=[[iou.value - iou.low], [iou.high - iou.value]],
                yerr=[[ratio.value - ratio.low], [ratio.high - ratio.value]],
                fmt="o", capsize=3, color=f"C{k % 10}", label=point["arm"],
            )  # fmt: skip
        ax.set_xlabel("HiResCAM OrganIoU (test)")
        ax.set_ylabel("shortcut ratio (cue effect / finding effect)")
        ax.set_title(label)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")  # cue and finding weigh alike
        ax.set_yscale("symlog", linthresh=1.0)  # ratios span orders of magnitude; 0 stays
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    return path
