"""``ctbench faithfulness RUN``: deletion, insertion and faithfulness correlation of a run's
explainers in 3-D, over the map's cells or the organs."""

from __future__ import annotations

import click
from ctbench.cli.commands import SEED, device_option, run_folder_argument, run_study_options


@click.command()
@run_folder_argument()
@run_study_options(cases=1, purpose="measure")
@click.option(
    "--regions",
    type=click.Choice(["cells", "organs"]),
    default="cells",
    show_default=True,
    help="What is removed: the map's 3-D cells, or the organs (datasets with organ masks).",
)
@click.option(
    "--imputer",
    type=click.Choice(["blur", "region-mean", "mean", "zero"]),
    default=None,
    help="What fills a removed region. Default: blur for cells, region-mean (the organ's "
    "mean) for organs.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Points of each curve after the start. Default: 10 for cells, one organ a step.",
)
@click.option(
    "--subsets",
    type=click.IntRange(min=2),
    default=32,
    show_default=True,
    help="Random region subsets of the faithfulness correlation.",
)
@click.option(
    "--references/--no-references",
    default=True,
    show_default=True,
    help="Also measure the ideal, organ-uniform and random reference maps.",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@device_option()
@click.option("--quiet", is_flag=True, help="No progress bar.")
def faithfulness(
    run_folder,
    explainers,
    cases,
    split,
    regions,
    imputer,
    steps,
    subsets,
    references,
    seed,
    device,
    quiet,
) -> None:
    """Measure how faithful RUN's explanations are in 3-D: the change of each present label's
    logit as regions are deleted (most and least relevant first) or inserted (most relevant
    first), as areas under the curves, and the region-level faithfulness correlation, with
    95% bootstrap intervals over volumes. Writes RUN/faithfulness/<regions>-<imputer>.json and
    .png."""
    from ctbench.experiments.faithfulness_report import evaluate_run

    try:
        report = evaluate_run(
            run_folder,
            explainers=explainers or None,
            cases=cases,
            split=split,
            regions=regions,
            imputer=imputer,
            steps=steps,
            subsets=subsets,
            references=references,
            seed=seed,
            device=device,
            progress=False if quiet else None,
        )
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{report['regions']} removed, {report['imputer']} imputer, {report['cases']} "
        f"{report['split']} volumes; deletion MoRF: lower is more faithful"
    )
    for line in report["table"]:
        click.echo(line)
    for case in report["skipped"]:
        click.echo(f"skipped {case['case_id']}: {case['error']}", err=True)
