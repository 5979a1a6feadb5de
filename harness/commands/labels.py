"""``ctbench labels``: the labels and their organs that the report labeler finds in a report."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument(
    "report", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--text", default=None, help="Report text instead of a file.")
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"labels": [...], "locations": {...}}.'
)
def labels(report: Path | None, text: str | None, as_json: bool) -> None:
    """Label REPORT (a text file) or --text: output labels and the organs that hold them."""
    from ctbench.labeler import label_report, read_report

    if (report is None) == (text is None):
        raise click.UsageError("give a REPORT file or --text, not both")
    try:
        result = label_report(text if text is not None else read_report(report))
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if not result["labels"]:
        click.echo("(no abnormality)")
    for label in result["labels"]:
        click.echo(f"{label:40s} {', '.join(result['locations'][label])}")
