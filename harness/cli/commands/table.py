"""``ctbench table``: the paper's tables from run folders alone (no retraining)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--table",
    "names",
    type=click.Choice(
        ["1", "2", "5", "7", "labels", "timing", "confounders", "explainers", "ladder"]
    ),
    multiple=True,
    help="Which table (repeat). Default: the tables the matrix's spec names.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["github", "latex", "csv", "html"]),
    default="github",
    show_default=True,
    help="latex uses booktabs; csv keeps full precision (mean, sd and n columns).",
)
@click.option(
    "--benchmarks",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="pytest-benchmark JSON (--benchmark-json) to add to the timing table (repeat).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (atomically) instead of standard output.",
)
@click.option(
    "--figure",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --table ladder: also draw the shortcut ratio against OrganIoU per arm, with "
    "both intervals, to this PNG file.",
)
def table(folder: Path, names, fmt: str, benchmarks, out: Path | None, figure) -> None:
    """Rebuild tables from the finished runs in FOLDER (a matrix's --out, or run folders).

    Seeds are aggregated as mean ± sd (n runs); the paper's own numbers stand beside ours.
    """
    from ctbench.report.tables import TABLES, build_table, load_runs, spec_tables

    try:
        runs = load_runs(folder)  # first: an empty folder is "no run", whatever its spec says
        chosen = list(names) or spec_tables(folder)
        if not chosen:
            raise ValueError(
                f"{folder}: no matrix spec here names its tables; choose with --table "
                f"({', '.join(TABLES)})"
            )
        if figure is not None and "ladder" not in chosen:
            raise ValueError("--figure draws the ladder's figure: add --table ladder")
        texts = []
        for name in chosen:
            if name == "ladder" and figure is not None:
                from ctbench.report.ladder import build_ladder, plot_ladder

                built, points = build_ladder(runs)
                plot_ladder(points, figure)
                click.echo(f"wrote {figure}", err=True)
            else:
                built = build_table(name, folder, list(benchmarks), runs=runs)
            texts.append(built.render(fmt))
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    text = "\n\n".join(t.rstrip("\n") for t in texts) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        from ctbench.runtime.storage import write_text

        write_text(out, text)
        click.echo(f"wrote {out}")
