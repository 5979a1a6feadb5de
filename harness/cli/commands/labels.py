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
@click.option(
    "--label-set",
    type=click.Choice(["paper", "ct-rate"]),
    default="paper",
    show_default=True,
    help="The paper's 80 output labels, or CT-RATE's 18.",
)
def labels(report: Path | None, text: str | None, as_json: bool, label_set: str) -> None:
    """Label REPORT (a text file) or --text: output labels and the organs that hold them."""
    from ctbench.regions.labeler import label_report, place_labels, read_report
    from ctbench.vocabulary import ct_rate_labels

    if report is None and text is None:
        raise click.UsageError("give a REPORT file or --text")
    if report is not None and text is not None:
        raise click.UsageError("give a REPORT file or --text, not both")
    try:
        body = text if text is not None else read_report(report)
    except (ValueError, OSError) as error:
        raise click.ClickException(str(error)) from error
    if label_set == "ct-rate":
        located = place_labels(body, ct_rate_labels())
        result = {"labels": list(located), "locations": located}
    else:
        result = label_report(body)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if not result["labels"]:
        click.echo("(no abnormality)")
    for label in result["labels"]:
        click.echo(f"{label:40s} {', '.join(result['locations'][label])}")
