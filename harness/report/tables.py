"""The paper's tables rebuilt from run folders alone (docs/matrices.md).

:func:`load_runs` reads every finished run of a folder (a matrix's cells, or any folder of run
folders); each ``table_*`` builds one table as a :class:`Table` whose numeric cells are
:class:`Stat` (mean, sd and n over seeds). Runs that differ only in their seed are one row.
The paper's own figures stand in a column beside ours where its table has them. Formats: github,
latex (booktabs), html and csv (full precision: a Stat is three columns).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ctbench.core import paper as the_paper

TABLES = ("1", "2", "5", "7", "labels", "timing", "confounders", "explainers", "ladder")


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation and count of one number over seeds."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values, scale: float = 1.0) -> Stat | None:
        kept = [float(v) * scale for v in values if v is not None and not _nan(v)]
        if not kept:
            return None
        sd = float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan
        return cls(float(np.mean(kept)), sd, len(kept))

    def text(self, digits: int) -> str:
        mean = f"{self.mean:.{digits}f}"
        return mean if self.n < 2 else f"{mean} ± {self.sd:.{digits}f}"


@dataclass
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def text(self, digits: int) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    digits: int = 1
    notes: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # column -> format spec (p: ".2g")

    def frame(self) -> pd.DataFrame:
        """Full precision: each Stat column becomes ``<col>``, ``<col> sd``, ``<col> n``; each
        Interval column ``<col>``, ``<col> low``, ``<col> high``."""
        stat_columns = {
            column
            for row in self.rows
            for column, value in zip(self.columns, row, strict=True)
            if isinstance(value, Stat)
        }
        records = []
        for row in self.rows:
            record: dict[str, Any] = {}
            for column, value in zip(self.columns, row, strict=True):
                if isinstance(value, Interval):
                    record |= {column: value.value, f"{column} low": value.low,
                               f"{column} high": value.high}  # fmt: skip
                elif column in stat_columns:
                    record[column] = None if value is None else value.mean
                    record[f"{column} sd"] = None if value is None else value.sd
                    record[f"{column} n"] = None if value is None else value.n
                else:
                    record[column] = value
            records.append(record)
        return pd.DataFrame(records)

    def render(self, fmt: str) -> str:
        if fmt == "csv":
            return self.frame().to_csv(index=False)
        from tabulate import tabulate

        cells = [
            [
                _cell(v, self.digits, self.formats.get(c))
                for c, v in zip(self.columns, row, strict=True)
            ]
            for row in self.rows
        ]
        style = {"github": "github", "latex": "latex_booktabs", "html": "html"}[fmt]
        body = tabulate(cells, headers=self.columns, tablefmt=style, disable_numparse=True)
        text = [self.title, self.caption, *self.notes]
        if fmt == "html":
            head = "".join(f"<p>{html.escape(t)}</p>" for t in text[1:] if t)
            return f"<h3>{html.escape(self.title)}</h3>{head}{body}"
        if fmt == "latex":
            comments = "\n".join(f"% {t}" for t in text if t)
            return f"{comments}\n{body}"
        return "\n".join(t for t in text if t) + "\n\n" + body


def _cell(value, digits: int, spec: str | None = None) -> str:
    if value is None or _nan(value):
        return "-"
    if spec is not None and isinstance(value, float):
        return format(value, spec)
    if isinstance(value, Stat | Interval):
        return value.text(digits)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


@dataclass
class RunRecord:
    """One finished run folder: its options (``config.json``'s run), record and metrics."""

    folder: Path
    options: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]

    def get(self, *keys, default=None):
        value: Any = self.metrics
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return value


def load_runs(folder: Path) -> list[RunRecord]:
    """Every finished run under ``folder``; none is a FileNotFoundError saying so."""
    from ctbench.experiments.run_folder import RunFolder, finished_runs

    runs = []
    for path in finished_runs(folder):
        try:
            run = RunFolder(path)
            metrics, config = run.read_metrics(), run.read_config()
            runs.append(RunRecord(path, config["run"], config, metrics))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: unreadable run folder ({error})") from error
    if not runs:
        raise FileNotFoundError(f"{folder}: no finished run folder (metrics.json) found")
    return runs


def group_runs(runs: list[RunRecord], ignore=("seed",)) -> list[tuple[dict, list[RunRecord]]]:
    """Runs grouped by every option but ``ignore`` (seeds -> one row), in first-seen order;
    each group's key holds only the options that differ between groups."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.options.items() if k not in ignore}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    keys = [json.loads(k) for k in groups]
    varying = sorted({k for key in keys for k in key if any(o.get(k) != key[k] for o in keys)})
    return [
        ({k: key[k] for k in varying}, members)
        for key, members in zip(keys, groups.values(), strict=True)
    ]


def row_names(groups: list[tuple[dict, list[RunRecord]]], primary: str) -> list[str]:
    """Each group's ``primary`` option plus the options that tell its rows apart, leaving out
    those that ``primary`` determines (a preset gives each architecture its own epochs)."""
    names = []
    keys = [key for key, _ in groups]
    firsts = [members[0].options[primary] for _, members in groups]
    hidden = {primary}
    for option in {k for key in keys for k in key}:
        pairs = {(str(p), json.dumps(key.get(option))) for p, key in zip(firsts, keys, strict=True)}
        if len(pairs) == len({p for p, _ in pairs}):
            hidden.add(option)
    for first, key in zip(firsts, keys, strict=True):
        extra = _describe(key, hidden)
        names.append(f"{first} ({extra})" if extra else str(first))
    return names


def _describe(key: dict, skip=()) -> str:
    parts = [f"{k}={_short(v)}" for k, v in key.items() if k not in skip]
    return ", ".join(parts)


def _short(value) -> str:
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


def _stat(members: list[RunRecord], *keys, scale: float = 1.0) -> Stat | None:
    return Stat.of([m.get(*keys) for m in members], scale)


def table_1(runs: list[RunRecord]) -> Table:
    """Validation median AUROC (the paper's summary; the mean beside it) and OrganIoU per
    explainer (percent), per architecture."""
    rows = []
    order = list(the_paper.TABLE1)
    grad, hires = (paper_plugin("explainers", name) for name in the_paper.TABLE1_EXPLAINERS)
    grouped = group_runs(runs)
    grouped.sort(key=lambda g: _order(order, paper_name("architectures", g[1][0].options["arch"])))
    for name, (_, members) in zip(row_names(grouped, "arch"), grouped, strict=True):
        arch = paper_name("architectures", members[0].options["arch"])
        paper = the_paper.TABLE1.get(arch, (None, None, None))
        rows.append(
            [
                name,
                len(members),
                _stat(members, "valid_auroc_median", scale=100),
                paper[0],
                _stat(members, "valid_auroc_mean", scale=100),
                _stat(members, "valid_organiou", grad, scale=100),
                paper[1],
                _stat(members, "valid_organiou", hires, scale=100),
                paper[2],
            ]
        )
    columns = [
        "Model", "n", "AUROC", "paper", "AUROC mean", "OrganIoU Grad", "paper", "OrganIoU HiRes",
        "paper",
    ]  # fmt: skip
    return Table(
        "Table 1: architecture comparison and ablation (validation set, percent)",
        _unique(columns),
        rows,
        caption="Median AUROC over labels and mean OrganIoU over labels; mean ± sd over seeds "
        "(n runs). Paper: RAD-ChestCT 2,000 train / 1,000 validation volumes.",
    )


def table_labels(runs: list[RunRecord]) -> Table:
    """Test AUROC per label and run group, with the mean and median over labels and the width
    of the labels' 95% intervals: how hard each label is for each model (the calibration view:
    a label a density baseline gets and a deep model misses is the deep model's limit)."""
    rows, labels = [], []
    for run in runs:
        labels += [name for name in run.metrics.get("auroc", {}) if name not in labels]
    if not labels:
        raise ValueError("no run holds per-label test AUROC (metrics.json auroc)")
    grouped = group_runs(runs)
    for name, (_, members) in zip(row_names(grouped, "arch"), grouped, strict=True):
        widths = [
            (high - low) / 2
            for m in members
            for low, high in (m.metrics.get("auroc_ci") or {}).values()
            if low is not None and high is not None
        ]
        rows.append(
            [
                name,
                len(members),
                _stat(members, "auroc_mean"),
                _stat(members, "auroc_median"),
                *(_stat(members, "auroc", label) for label in labels),
                Stat.of([float(np.mean(widths))]) if widths else None,
                Stat.of([float(np.max(widths))]) if widths else None,
            ]
        )
    return Table(
        "Test AUROC per label",
        ["Run", "n", "mean", "median", *labels, "CI half-width mean", "CI half-width max"],
        rows,
        caption="Test split; mean ± sd over seeds (n runs). The last columns: half the width "
        "of each label's 95% bootstrap interval, its mean and its largest over labels and runs.",
        digits=3,
    )


def _unique(columns: list[str]) -> list[str]:
    """``paper`` columns named after the column they stand beside (CSV needs unique names)."""
    out = []
    for column in columns:
        out.append(f"{out[-1]} (paper)" if column == "paper" else column)
    return out


def paper_name(kind: str, name: str) -> str:
    """The name the paper's tables give plugin ``name`` (its declared ``paper_name``; "" when
    it declares none or is not installed here)."""
    from ctbench.core.contracts import declared_of
    from ctbench.core.registry import PluginError

    try:
        return declared_of(kind, name)["paper_name"]
    except PluginError:
        return ""


def paper_plugin(kind: str, name: str) -> str | None:
    """The installed plugin of ``kind`` that declares ``paper_name=name`` (the paper's
    "HiResCAM" -> ``hirescam``); None when none does."""
    from ctbench.core.registry import default_registry

    for entry in default_registry().entries(kind):
        if entry.meta.get("paper_name") == name:
            return entry.name
    return None


def _order(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def table_2(runs: list[RunRecord]) -> Table:
    """Test OrganIoU of Grad-CAM and HiResCAM, without and with the mask loss (percent)."""
    _require(runs, "mask_loss", (False, True), "2")
    rows, hires = [], {}
    grad_name, hires_name = the_paper.TABLE1_EXPLAINERS
    grad, hirescam = paper_plugin("explainers", grad_name), paper_plugin("explainers", hires_name)
    for key, members in sorted(group_runs(runs), key=lambda g: g[1][0].options["mask_loss"]):
        mask = bool(members[0].options["mask_loss"])
        paper = the_paper.TABLE2[mask]
        name = "AxialNet L_class" + (" + λ L_mask" if mask else "")
        extra = _describe(key, ("mask_loss",))
        hires[mask] = _stat(members, "organiou", hirescam, scale=100)
        rows.append(
            [
                f"{members[0].options['arch']}: {name}" + (f" ({extra})" if extra else ""),
                len(members),
                _stat(members, "organiou", grad, scale=100),
                paper[grad_name],
                hires[mask],
                paper[hires_name],
            ]
        )
    notes = []
    if hires.get(False) and hires.get(True):
        change = 100 * (hires[True].mean / hires[False].mean - 1)
        notes.append(f"HiResCAM OrganIoU change with the mask loss: {change:+.1f}% (paper: +33%)")
        chance = Stat.of([m.get("organiou_reference", "random") for m in runs])
        notes.append(organiou_change(hires[False].mean / 100, hires[True].mean / 100, chance))
    columns = ["Model", "n", "Grad-CAM", "paper", "HiResCAM", "paper"]
    return Table(
        "Table 2: AxialNet test OrganIoU without and with the mask loss (percent)",
        _unique(columns),
        rows,
        caption="Mean OrganIoU over labels on the test set; mean ± sd over seeds (n runs). "
        "Paper: whole RAD-ChestCT (36,316 volumes).",
        notes=notes,
    )


def organiou_change(before: float, after: float, chance: Stat | None = None) -> str:
    """OrganIoU from ``before`` to ``after`` read four ways: the absolute change, the relative
    one, the share of the headroom closed, ``(after - before) / (1 - before)``, and, where the
    runs score a random map (``chance``), the chance-corrected values ``(x - r) / (1 - r)``."""
    closed = (after - before) / (1 - before) if before < 1 else float("nan")
    text = (
        f"HiResCAM OrganIoU {before:.3f} -> {after:.3f}: {after - before:+.3f} absolute, "
        f"{100 * (after / before - 1):+.1f}% relative, {100 * closed:.0f}% of the headroom closed"
    )
    if chance is not None and chance.mean < 1:
        r = chance.mean

        def corrected(x: float) -> float:
            return (x - r) / (1 - r)

        text += (
            f"; chance-corrected against a random map (OrganIoU {r:.3f}): "
            f"{corrected(before):.3f} -> {corrected(after):.3f}"
        )
    return text


def table_5(runs: list[RunRecord]) -> Table:
    """Validation median AUROC by organ-mask downsampler and dilation."""
    _require(runs, "mask_loss", (True,), "5")
    variants = {(r.options["downsampler"], r.options["dilate"]) for r in runs}
    if len(variants) < 2:
        raise ValueError("table 5 needs runs of more than one downsampler/dilation variant")
    rows = []
    for key, members in group_runs(runs):
        options = members[0].options
        extra = _describe(key, ("downsampler", "dilate"))
        rows.append(
            [
                options["downsampler"] + (f" ({extra})" if extra else ""),
                bool(options["dilate"]),
                len(members),
                _stat(members, "valid_auroc_median"),
                the_paper.TABLE5.get(
                    (paper_name("downsamplers", options["downsampler"]), bool(options["dilate"]))
                ),
            ]
        )
    order = [down for down, _ in the_paper.TABLE5]  # the paper's: area, trilinear, nearest
    rows.sort(
        key=lambda r: (_order(order, paper_name("downsamplers", r[0].split(" ")[0])), r[0], r[1])
    )
    return Table(
        "Table 5: AxialNet with the mask loss by PARTITION variant (validation median AUROC)",
        _unique(["Downsampling", "Dilation", "n", "AUROC", "paper"]),
        rows,
        caption="Mean ± sd over seeds (n runs). Paper: RAD-ChestCT 2,000 / 1,000 subset.",
        digits=3,
    )


def table_7(runs: list[RunRecord]) -> Table:
    """Per-label test AUROC with 95% CIs, class loss (A) against mask loss (B): DeLong p and
    Benjamini-Hochberg FDR over labels, on the lowest seed both have."""
    from ctbench.experiments.comparison import compare_runs

    by_mask: dict[bool, dict[int, RunRecord]] = {False: {}, True: {}}
    for run in runs:
        by_mask[bool(run.options["mask_loss"])].setdefault(run.options["seed"], run)
    seeds = sorted(set(by_mask[False]) & set(by_mask[True]))
    if not seeds:
        raise ValueError("table 7 needs a run without and a run with the mask loss, same seed")
    seed = seeds[0]
    a, b = by_mask[False][seed], by_mask[True][seed]
    compared = compare_runs(a.folder, b.folder, "test")
    rows = []
    for row in compared.itertuples():
        paper = the_paper.TABLE7.get(row.label, (None,) * 4)
        rows.append(
            [
                row.label,
                row.positives_pct,
                _auc(row.auroc_a, row.ci_a_low, row.ci_a_high),
                paper[1],
                _auc(row.auroc_b, row.ci_b_low, row.ci_b_high),
                paper[2],
                row.p_value,
                row.p_fdr,
                paper[3],
            ]
        )
    columns = ["Abnormality", "Pos %", "AUROC L_class (95% CI)", "paper",
               "AUROC + L_mask (95% CI)", "paper", "p", "p (FDR)", "p (paper)"]  # fmt: skip
    return Table(
        "Table 7: per-label test AUROC, class loss against class + mask loss",
        _unique(columns),
        rows,
        caption=f"Seed {seed}: {a.folder.name} against {b.folder.name}. Paired two-sided DeLong "
        "tests, Benjamini-Hochberg over labels; paper columns in percent (RAD-ChestCT test).",
        digits=2,
        formats={"Pos %": ".1f", "p": ".2g", "p (FDR)": ".2g", "p (paper)": ".2g"},
    )


def _require(runs: list[RunRecord], option: str, values: tuple, table: str) -> None:
    """Refuse a table whose runs do not have exactly ``values`` of ``option``."""
    found = {bool(r.options[option]) for r in runs}
    if found != set(values):
        raise ValueError(
            f"table {table} needs runs with {option} = {', '.join(map(str, values))}; "
            f"these runs have {', '.join(map(str, sorted(found)))}"
        )


def _auc(value, low, high):
    return None if _nan(value) else f"{100 * value:.1f} ({100 * low:.1f}-{100 * high:.1f})"


def table_confounders(runs: list[RunRecord]) -> Table:
    """Mask loss x confounders: test median AUROC, OrganIoU, AUROC of the confounded labels."""
    from ctbench.core.registry import default_registry

    _require(runs, "confounders", (False, True), "confounders")
    datasets = {r.options["dataset"] for r in runs}
    confounded = sorted(
        {
            label
            for name in datasets
            for label in default_registry().get("datasets", name).meta.get("confounded_labels", ())
        }
    )
    rows = []
    explainers = list(dict.fromkeys(e for r in runs for e in r.options.get("explainers", ())))
    grouped = sorted(
        group_runs(runs),
        key=lambda g: (g[1][0].options["confounders"], g[1][0].options["mask_loss"]),
    )
    for key, members in grouped:
        options = members[0].options
        extra = _describe(key, ("mask_loss", "confounders"))
        rows.append(
            [
                "yes" if options["confounders"] else "no",
                "yes" if options["mask_loss"] else "no",
                extra or "-",
                len(members),
                _stat(members, "auroc_median"),
                _stat(members, "auroc_mean"),
                *(_stat(members, "organiou", explainer) for explainer in explainers),
                *(_stat(members, "auroc", label) for label in confounded),
            ]
        )
    return Table(
        "Confounders: planted cues (reversed in test) and the mask loss",
        [
            "Confounders",
            "Mask loss",
            "Other options",
            "n",
            "AUROC median",
            "AUROC mean",
            *(f"OrganIoU {explainer}" for explainer in explainers),
            *(f"AUROC {label}" for label in confounded),
        ],
        rows,
        caption="Test set; mean ± sd over seeds (n runs). The confounded labels' cues agree with "
        "the label in train and validation and disagree in test: a model that reads the cue "
        "scores below 0.5 there.",
        digits=3,
    )


def table_timing(runs: list[RunRecord], benchmarks: list[Path] = ()) -> Table:
    """Seconds per epoch and per volume of each phase, peak memory, per run group; the
    benchmarks' pytest-benchmark JSON rows after them."""
    explainers = sorted({e for r in runs for e in r.get("explain_seconds", default={})})
    rows = []
    grouped = group_runs(runs)
    for name, (_, members) in zip(row_names(grouped, "arch"), grouped, strict=True):
        rows.append(
            [
                name,
                len(members),
                Stat.of([_per_epoch(m, "head") for m in members]),
                Stat.of([_per_epoch(m, "layer4") for m in members]),
                Stat.of([_per_epoch(m, "full") for m in members]),
                Stat.of([_per_epoch(m, "full", per_volume=True) for m in members]),
                Stat.of([_evaluate_per_volume(m) for m in members]),
                *(Stat.of([_explain_per_volume(m, e) for m in members]) for e in explainers),
                Stat.of([_partition_per_volume(m) for m in members]),
                _stat(members, "memory", "peak_rss_mib"),
                _stat(members, "timing", "total"),
            ]
        )
    columns = ["Run", "n", "head s/epoch", "layer4 s/epoch", "full s/epoch", "full s/volume",
               "evaluate s/volume",
               *(f"{e} s/volume" for e in explainers), "PARTITION s/volume",
               "peak RSS MiB", "total s"]  # fmt: skip
    table = Table(
        "Timing per run group",
        columns,
        rows,
        caption="Machine: " + "; ".join(sorted({_machine(r.config) for r in runs})),
        digits=3,
    )
    for path in benchmarks:
        table.rows += benchmark_rows(path, len(columns))
    return table


def _per_epoch(run: RunRecord, stage: str, per_volume: bool = False) -> float | None:
    history = [r for r in run.get("training", "history", default=[]) if r.get("stage") == stage]
    seconds = [r["seconds"] for r in history if "seconds" in r]
    if not seconds:
        return None
    value = float(np.mean(seconds))
    return value / _cases(run, "train") if per_volume else value


def _cases(run: RunRecord, *splits: str) -> float:
    count = sum(run.get("cases", s, default=0) or 0 for s in splits)
    return count if count else math.nan


def _evaluate_per_volume(run: RunRecord) -> float | None:
    timing = run.get("timing", default={})
    if "evaluate_test" not in timing:
        return None
    seconds = timing.get("evaluate_valid", 0.0) + timing["evaluate_test"]
    seconds -= sum(run.get("explain_seconds", default={}).values())
    return seconds / _cases(run, "valid", "test")


def _explain_per_volume(run: RunRecord, explainer: str) -> float | None:
    seconds = run.get("explain_seconds", explainer)
    return None if seconds is None else seconds / _cases(run, "valid", "test")


def _partition_per_volume(run: RunRecord) -> float | None:
    seconds = run.get("timing", "partition")
    return None if seconds is None else seconds / _cases(run, "train", "valid", "test")


def _machine(config: dict[str, Any]) -> str:
    machine = config.get("machine")
    if not machine:
        return "not recorded"
    gpus = ", ".join(machine.get("gpus") or []) or "no GPU"
    return f"{machine.get('cpu')}, {machine.get('cores')} cores, {gpus}"


def benchmark_rows(path: Path, width: int) -> list[list[Any]]:
    """One row per pytest-benchmark result (``--benchmark-json``): mean ± sd seconds."""
    from ctbench.runtime.storage import read_json

    data = read_json(path)
    machine = data.get("machine_info", {}).get("cpu", {}).get("brand_raw", "")
    rows = []
    for bench in data.get("benchmarks", []):
        stats = bench["stats"]
        row = [f"benchmark {bench['name']}", stats["rounds"]]
        row += [None] * (width - 4)
        row += [None, Stat(stats["mean"], stats["stddev"], stats["rounds"])]
        rows.append(row)
    if machine and rows:
        rows[0][0] += f" [{machine}]"
    return rows


EXPLAINER_METRICS = (
    ("pointing_game", "pointing"),
    ("mass_inside", "mass inside"),
    ("average_precision", "AP"),
    ("auroc", "map AUROC"),
    ("dice_tuned", "Dice (tuned)"),
    ("hit_tuned", "hit rate"),
    ("instance_f1", "instance F1"),
)
"""The localisation metrics the explainer table shows (metrics.json has them all)."""


def table_explainers(runs: list[RunRecord]) -> Table:
    """Every explainer and reference map of each run group on the localisation family, against
    lesion truth where the runs have it, else against the allowed organs (test split)."""
    rows = []
    grouped = group_runs(runs)
    for name, (_, members) in zip(row_names(grouped, "arch"), grouped, strict=True):
        blocks = [m.metrics.get("explanation_metrics") or {} for m in members]
        target = "lesion" if all("lesion" in b for b in blocks) else "organ"
        if not all(target in b for b in blocks):
            continue
        for explainer in blocks[0][target]:
            cells = [
                Stat.of(  # instance F1 is scored against lesions only
                    [
                        b[target][explainer].get(metric, {}).get("mean")
                        for b in blocks
                        if explainer in b[target]
                    ]
                )
                for metric, _ in EXPLAINER_METRICS
            ]
            rows.append([name, target, explainer, len(members), *cells])
    if not rows:
        raise ValueError("no run holds explanation metrics (runs with an explainer write them)")
    return Table(
        "Explainers: localisation on the test split",
        ["Run", "truth", "map", "n", *(label for _, label in EXPLAINER_METRICS)],
        rows,
        caption="Means over scored (volume, present label) pairs; mean ± sd over seeds (n "
        "runs). ideal / organ_uniform / random are the reference maps. Each run's "
        "metrics.json holds every metric with its bootstrap interval and the paired "
        "differences between explainers.",
        digits=3,
    )


def build_table(
    name: str, folder: Path, benchmarks: list[Path] = (), runs: list[RunRecord] | None = None
) -> Table:
    """Table ``name`` (one of :data:`TABLES`) from the finished runs in ``folder`` (``runs``:
    already loaded with :func:`load_runs`, so that several tables read the folders once)."""
    builders = {
        "1": table_1,
        "2": table_2,
        "5": table_5,
        "7": table_7,
        "labels": table_labels,
        "timing": lambda found: table_timing(found, benchmarks),
        "confounders": table_confounders,
        "explainers": table_explainers,
        "ladder": _ladder,
    }
    if name not in builders:
        raise ValueError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
    return builders[name](load_runs(folder) if runs is None else runs)


def _ladder(runs: list[RunRecord]) -> Table:
    from ctbench.report.ladder import table_ladder  # it builds on this module's records

    return table_ladder(runs)


def spec_tables(folder: Path) -> list[str]:
    """The tables a matrix's spec names (its ``table`` key); none when there is no matrix or
    its spec names none (the commands decide what that means)."""
    from ctbench.experiments.matrix import find_states

    names = []
    for state in find_states(folder):
        names += [n for n in state["spec"].get("table", []) if n not in names]
    return names
