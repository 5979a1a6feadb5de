"""``ctbench labels``: the labels and their organs that a report labeler finds in a report."""

from __future__ import annotations

import json
from pathlib import Path

import click
from ctbench.cli.commands import PluginName


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
@click.option(
    "--labeler",
    "labeler_name",
    type=PluginName("labelers"),
    default=None,
    help="Report labeler (ctbench plugins lists them). Default: the one that declares "
    "default=True (sarle).",
)
def labels(
    report: Path | None, text: str | None, as_json: bool, label_set: str, labeler_name: str | None
) -> None:
    """Label REPORT (a text file) or --text: output labels and the organs that hold them."""
    from ctbench.regions.labeler import read_report
    from ctbench.regions.labeling import locations, place
    from ctbench.vocabulary import ct_rate_labels

    if report is None and text is None:
        raise click.UsageError("give a REPORT file or --text")
    if report is not None and text is not None:
        raise click.UsageError("give a REPORT file or --text, not both")
    try:
        body = text if text is not None else read_report(report)
        if label_set == "ct-rate":
            located = place(body, ct_rate_labels(), labeler_name)
        else:
            located = locations(body, labeler_name)
    except (ValueError, OSError, ImportError) as error:  # ImportError: a missing extra
        raise click.ClickException(str(error)) from error
    result = {"labels": list(located), "locations": located}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if not result["labels"]:
        click.echo("(no abnormality)")
    for label in result["labels"]:
        click.echo(f"{label:40s} {', '.join(result['locations'][label])}")
