"""``ctbench run``: train, evaluate and explain one model; write one run folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from ctbench.cli.commands import (
    FiniteFloat,
    PluginName,
    check_start,
    track_option,
    weights_options,
)


def run_config_options(command):
    """Every RunConfig option as a click option, from its field (one definition of each)."""
    from ctbench.experiments.run_config import cli_fields

    for run_field, hint in reversed(cli_fields()):
        command = click.option(
            *_declarations(run_field, hint),
            **_click_settings(run_field, hint),
        )(command)
    return command


def _declarations(run_field, hint) -> list[str]:
    from ctbench.experiments.run_options import base_type, option_flag

    flag = option_flag(run_field)
    if base_type(hint) is bool:
        return [f"{flag}/--no-{flag[2:]}", run_field.name]
    return [flag, run_field.name]


def _click_settings(run_field, hint) -> dict:
    from ctbench.experiments.run_options import base_type, repeatable

    meta = run_field.metadata
    base = base_type(hint)
    if run_field.default is dataclasses.MISSING:  # a field without a default is required
        settings = {"help": meta["help"], "required": True}
    else:
        default = run_field.default
        shown = f"{default:.3g}" if isinstance(default, float) else default is not None
        settings = {"help": meta["help"], "default": default, "show_default": shown}
    if meta.get("plugin"):
        settings["type"] = PluginName(meta["plugin"])
    elif meta.get("folder"):
        settings["type"] = click.Path(exists=True, file_okay=False, resolve_path=True)
    elif meta.get("choices"):
        settings["type"] = click.Choice(list(meta["choices"]))
    elif base is int:
        low, high = meta.get("minimum"), meta.get("maximum")
        bounded = low is not None or high is not None
        settings["type"] = click.IntRange(min=low, max=high) if bounded else click.INT
    elif base is float:
        low = 0 if meta.get("positive") else meta.get("minimum")
        settings["type"] = FiniteFloat(min=low, min_open=bool(meta.get("positive")))
    if repeatable(run_field):
        settings |= {"multiple": True, "show_default": False}
    return settings


@click.command()
@run_config_options
@weights_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Parent folder of run folders.",
)
@click.option(
    "--dataset-option",
    "dataset_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the dataset itself, VALUE read as JSON when it is (phantom: "
    "cue_strength=0.75, cues=marker:lung_atelectasis, n_shift=256). Repeatable.",
)
@click.option("--name", default=None, help="Run folder name (default: from the options).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in the same folder.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in the same folder.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@track_option
def run(out, name, resume, overwrite, quiet, track, **options) -> None:
    """Train ARCH, evaluate it on validation and test, explain it, and write a run folder.

    With only --arch (and --explainer) it trains on the default phantom preset. The folder holds
    config.json, metrics.json, predictions.csv, per_label.csv, timing.json, checkpoints and
    figures; an interrupted run continues with --resume.
    """
    from ctbench.core.cases import InvalidCaseError
    from ctbench.experiments.runs import RunExistsError, execute_run
    from ctbench.runtime.distributed import from_environment, shutdown
    from ctbench.runtime.locks import FolderLockedError
    from ctbench.runtime.storage import safe_name

    try:
        config = config_from_options(options)
        folder = out / safe_name(name or config.folder_name(), "--name")
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    main_rank = from_environment().is_main  # under torchrun only rank 0 speaks
    if main_rank:
        click.echo(f"run folder: {folder}")
    try:
        metrics = execute_run(
            config,
            folder,
            resume=resume,
            overwrite=overwrite,
            progress=False if quiet else None,
            log=click.echo,
        )
    except (
        RunExistsError, FolderLockedError, InvalidCaseError, ValueError, FileNotFoundError
    ) as error:  # fmt: skip
        raise click.ClickException(str(error)) from error
    finally:
        shutdown()
    if not main_rank:
        return
    click.echo(summary(metrics))
    if track:
        from ctbench.experiments.tracking import track_run

        try:
            click.echo(f"tracked in {track}: run {track_run(folder, track)}")
        except RuntimeError as error:
            raise click.ClickException(str(error)) from error


def config_from_options(options: dict):
    """The resolved RunConfig of ``ctbench run``'s parsed options (its click parameters), built
    as a matrix cell's is (``ctbench.experiments.run_options``)."""
    from ctbench.experiments.run_options import config_from_options as from_options

    check_start(options["start"], options["pretrained"], options["weights"])  # a usage error
    return from_options(options)


def summary(metrics: dict) -> str:
    """A few lines for the terminal: AUROC, OrganIoU, localisation, time."""
    from ctbench.experiments.run_folder import localisation_means

    lines = [
        f"test AUROC median {_number(metrics['auroc_median'])} "
        f"(IQR {_number(metrics['auroc_iqr'])}), mean {_number(metrics.get('auroc_mean'))} "
        f"over {len(metrics['auroc'])} labels"
    ]
    for explainer, value in metrics.get("organiou", {}).items():
        lines.append(f"OrganIoU {explainer}: {_number(value)}")
    for explainer, values in localisation_means(metrics).items():
        lines.append(
            f"localisation {explainer}: pointing game {_number(values['pointing_game'])}, "
            f"lesion IoU {_number(values['iou_ct'])}"
        )
    start = metrics.get("config", {}).get("start", {}).get("name")
    if start:
        lines.append(f"start: {start}")
    lines.append(f"total time {metrics['timing']['total']:.0f} s")
    return "\n".join(lines)


def _number(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
