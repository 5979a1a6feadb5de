"""``ctbench report``: one self-contained HTML page for a run or a matrix."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
)
@click.option("--overlays", type=click.IntRange(min=0), default=4, show_default=True)
def report(folder: Path, out: Path, overlays: int) -> None:
    """Write one HTML page (images embedded, no network needed) for FOLDER: a run folder, a
    matrix's --out, or a folder of run folders."""
    from ctbench.report.html import build_report, report_summary
    from ctbench.runtime.storage import write_text

    try:
        text = build_report(folder, overlays)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    write_text(out, text)
    counts = report_summary(text)
    click.echo(f"wrote {out}: {counts['tables']} tables, {counts['images']} images")
