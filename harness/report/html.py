"""``ctbench report``: one self-contained HTML page for a run or a matrix (docs/matrices.md).

Tables, AUROC per label with CI bars, OrganIoU per label and explainer, loss curves, per-slice
score plots and overlays; every image is embedded as a data URI and the page has no script and
no external reference, so it opens offline and anywhere.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from ctbench.experiments.run_folder import RunFolder
from ctbench.runtime.storage import read_table

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: left; }
th { background: #eee; }
img { max-width: 100%; border: 1px solid #ddd; margin: 4px 0; }
details { margin: 0.5em 0 1em; } summary { font-weight: bold; cursor: pointer; }
.note { color: #555; font-size: 13px; }
"""


def build_report(folder: Path, overlays: int = 4) -> str:
    """The page for ``folder``: a run folder, a matrix's --out, or a folder of run folders."""
    from ctbench.experiments.matrix import find_states
    from ctbench.report.tables import TABLES, build_table, load_runs, spec_tables

    folder = Path(folder)
    runs = load_runs(folder)
    parts = [f"<h1>ctbench report: {html.escape(folder.name)}</h1>"]
    states = find_states(folder)
    if states:
        parts.append(_matrix_section(folder, states))
    if len(runs) > 1:
        parts.append("<h2>Runs</h2>" + _runs_table(runs))
        parts.append("<h2>Tables</h2>")
        for name in spec_tables(folder) or TABLES:  # a spec without `table`: every table
            try:
                parts.append(build_table(name, folder, runs=runs).render("html"))
            except (ValueError, KeyError, FileNotFoundError) as error:
                if states:  # a table the spec names but cannot be made yet: say why
                    parts.append(f"<p class='note'>Table {name}: {html.escape(str(error))}</p>")
    for run in runs:
        body = _run_section(run, overlays)
        if len(runs) > 1:
            parts.append(
                f"<details><summary>{html.escape(run.folder.name)}</summary>{body}</details>"
            )
        else:
            parts.append(body)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>ctbench report: {html.escape(folder.name)}</title><style>{STYLE}</style>"
        f"</head><body>{''.join(parts)}</body></html>"
    )


def _matrix_section(folder: Path, states: list[dict[str, Any]]) -> str:
    from ctbench.experiments.matrix import cell_rows

    source = states[0].get("spec_source", "")
    rows = pd.DataFrame(cell_rows(folder, states))
    return f"<h2>Matrix ({html.escape(str(source))})</h2>" + _html_table(rows)


def _runs_table(runs) -> str:
    rows = []
    for run in runs:
        row = {
            "run": run.folder.name,
            "test AUROC median": run.get("auroc_median"),
            "test AUROC mean": run.get("auroc_mean"),
        }
        for name, value in (run.get("organiou") or {}).items():
            row[f"OrganIoU {name}"] = value
        row["total s"] = run.get("timing", "total")
        rows.append(row)
    return _html_table(pd.DataFrame(rows).round(3))


def _run_section(run, overlays: int) -> str:
    from ctbench.experiments.results import run_title
    from ctbench.experiments.run_folder import localisation_means
    from ctbench.report.figures import plot_auroc_per_label, plot_organiou_per_label

    metrics, options = run.metrics, run.options
    title = run_title(options)
    summary = {
        "test AUROC median": metrics.get("auroc_median"),
        "test AUROC IQR": metrics.get("auroc_iqr"),
        "test AUROC mean": metrics.get("auroc_mean"),
        **{f"OrganIoU {k}": v for k, v in (metrics.get("organiou") or {}).items()},
        **{
            f"pointing game {k}": v["pointing_game"] for k, v in localisation_means(metrics).items()
        },
        "total seconds": (metrics.get("timing") or {}).get("total"),
    }
    parts = [
        f"<h2>{html.escape(title)}</h2>",
        f"<p class='note'>{html.escape(str(run.folder))}</p>",
    ]
    parts.append(_html_table(pd.DataFrame([summary])))
    per_label_path = RunFolder(run.folder).per_label
    with tempfile.TemporaryDirectory() as scratch:
        if per_label_path.is_file():
            table = read_table(per_label_path)
            parts.append("<h3>Per label</h3>" + _html_table(table.round(3)))
            if "auroc_ci_low" in table:
                path = plot_auroc_per_label(table, Path(scratch) / "auroc.png", title)
                parts.append(_image(path, "AUROC per label with 95% CI"))
            explainers = [c[len("organiou_") :] for c in table.columns if c.startswith("organiou_")]
            if explainers:
                path = plot_organiou_per_label(
                    table, explainers, Path(scratch) / "organiou.png", title
                )
                parts.append(_image(path, "OrganIoU per label and explainer"))
    figures = RunFolder(run.folder).figures
    for name, alt in (("loss_curves.png", "loss curves"), ("slice_scores.png", "per-slice scores")):
        if (figures / name).is_file():
            parts.append(f"<h3>{alt.capitalize()}</h3>" + _image(figures / name, alt))
    shown = sorted((figures / "overlays").glob("*.png"))[:overlays]
    if shown:
        parts.append("<h3>Explanations of true positives</h3>")
        parts += [_image(path, path.stem) for path in shown]
    return "".join(parts)


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<div><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></div>"


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="-", border=0, escape=True)


def report_summary(text: str) -> dict[str, Any]:
    """Counts a test or a user can check: tables and embedded images."""
    return {"tables": text.count("<table"), "images": text.count("<img")}
