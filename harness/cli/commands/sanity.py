"""``ctbench sanity RUN``: parameter and data randomisation checks of a run's explainers."""

from __future__ import annotations

import json

import click
from ctbench.cli.commands import SEED, device_option, run_folder_argument, run_study_options


@click.command()
@run_folder_argument()
@run_study_options(cases=2, purpose="check")
@click.option(
    "--order",
    type=click.Choice(["bottom-up", "top-down"]),
    default="bottom-up",
    show_default=True,
    help="Cascading randomisation from the input up, or from the output down.",
)
@click.option(
    "--permuted/--no-permuted",
    default=True,
    show_default=True,
    help="Also train a model on permuted labels (the run's recipe, in RUN/sanity/).",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@device_option()
@click.option("--quiet", is_flag=True, help="No progress bars.")
def sanity(run_folder, explainers, cases, split, order, permuted, seed, device, quiet) -> None:
    """Check that the explanations of RUN depend on the model: cascading and independent
    parameter randomisation and a permuted-label model, compared with the trained model's maps
    by Spearman (signed and absolute) and 3-D SSIM, against the random-pair baseline. Writes
    RUN/sanity.json and RUN/sanity.png; prints pass or fail per explainer."""
    from ctbench.experiments.sanity_report import check_run

    try:
        report = check_run(
            run_folder,
            explainers=explainers or None,
            cases=cases,
            split=split,
            order=order,
            permuted=permuted,
            seed=seed,
            device=device,
            progress=False if quiet else None,
            log=click.echo,
        )
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    for line in report["table"]:
        click.echo(line)
    click.echo(json.dumps({name: r["passed"] for name, r in report["explainers"].items()}))
