"""``ctbench run``: train, evaluate and explain one model; write one run folder."""

from __future__ import annotations

from pathlib import Path

import click
from ctbench.commands import PluginName, check_start, resolve_weights, weights_options


@click.command()
@click.option("--arch", type=PluginName("architectures"), required=True, help="Architecture.")
@click.option(
    "--explainer",
    "explainers",
    type=PluginName("explainers"),
    multiple=True,
    help="Explainer(s) to score (repeat). Default: hirescam and gradcam.",
)
@click.option("--mask-loss", is_flag=True, help="Train with the mask loss (paper section 3.6).")
@click.option(
    "--lambda",
    "mask_lambda",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the mask loss. Default: the paper's 1/3.",
)
@click.option(
    "--mask-explainer",
    type=PluginName("explainers"),
    default="hirescam",
    show_default=True,
    help="Explainer the mask loss trains through (must accept create_graph).",
)
@click.option("--dataset", type=PluginName("datasets"), default="phantom", show_default=True)
@click.option("--preset", default="default", show_default=True, help="tiny, default or paper.")
@click.option("--confounders", is_flag=True, help="Phantom: plant cues, reversed in test.")
@click.option(
    "--segmenter", type=PluginName("segmenters"), default="morphological", show_default=True
)
@click.option(
    "--downsampler",
    type=PluginName("downsamplers"),
    default=None,
    help="Organ mask -> map grid. Default: the preset's (phantom: area; paper: nearest).",
)
@click.option("--dilate", is_flag=True, help="Dilate the downsampled organ masks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--head-epochs",
    type=click.IntRange(min=0),
    default=None,
    help="Epochs of the head on the frozen backbone's cached output, before the full epochs. "
    "Default: the preset's with a pretrained start (phantom default: 60), 0 from random weights.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=None,
    help="Full epochs (backbone included). Default: the preset's (phantom: 0 after the head "
    "warm-up, 3 from random weights; paper: 100).",
)
@click.option("--patience", type=click.IntRange(min=1), default=15, show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adam"]),
    default=None,
    help="Default: the preset's (phantom: adam; paper: sgd with momentum 0.99).",
)
@click.option(
    "--schedule",
    type=click.Choice(["constant", "cosine"]),
    default=None,
    help="Learning-rate schedule. Default: the preset's (phantom: cosine; paper: constant).",
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Default: 1e-3."
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Default: the preset's."
)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--channels-last/--no-channels-last",
    default=True,
    show_default=True,
    help="Channels-last memory format (faster convolutions on CPU).",
)
@weights_options
@click.option(
    "--overlays", type=click.IntRange(min=0), default=4, show_default=True, help="Overlay figures."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Parent folder of run folders.",
)
@click.option("--name", default=None, help="Run folder name (default: from the options).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in the same folder.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in the same folder.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(
    arch,
    explainers,
    mask_loss,
    mask_lambda,
    mask_explainer,
    dataset,
    preset,
    confounders,
    segmenter,
    downsampler,
    dilate,
    seed,
    head_epochs,
    epochs,
    patience,
    optimizer,
    schedule,
    lr,
    batch_size,
    workers,
    channels_last,
    start,
    pretrained,
    weights,
    overlays,
    out,
    name,
    resume,
    overwrite,
    quiet,
) -> None:
    """Train ARCH, evaluate it on validation and test, explain it, and write a run folder.

    With only --arch (and --explainer) it trains on the default phantom preset. The folder holds
    config.json, metrics.json, predictions.csv, per_label.csv, timing.json, checkpoints and
    figures; an interrupted run continues with --resume.
    """
    from ctbench.cases import InvalidCaseError
    from ctbench.runs import RunConfig, RunExistsError, execute_run

    chosen = resolve_weights(pretrained, weights, preset_default=None)  # None: preset decides
    check_start(start, pretrained, weights)
    config = RunConfig(
        arch=arch,
        explainers=tuple(dict.fromkeys(explainers or ("hirescam", "gradcam"))),
        dataset=dataset,
        preset=preset,
        segmenter=segmenter,
        mask_explainer=mask_explainer,
        confounders=confounders,
        mask_loss=mask_loss,
        **({} if mask_lambda is None else {"mask_lambda": mask_lambda}),  # None: the paper's
        downsampler=downsampler,
        dilate=dilate,
        seed=seed,
        start=start,
        head_epochs=head_epochs,
        epochs=epochs,
        patience=patience,
        optimizer=optimizer,
        schedule=schedule,
        lr=lr,
        batch_size=batch_size,
        workers=workers,
        channels_last=channels_last,
        pretrained=chosen["pretrained"],
        weights=chosen["weights"],
        overlays=overlays,
    ).resolved()
    folder = out / (name or config.folder_name())
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
    except (RunExistsError, InvalidCaseError, ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(summary(metrics))


def summary(metrics: dict) -> str:
    """A few lines for the terminal: AUROC, OrganIoU, localisation, time."""
    lines = [
        f"test AUROC median {_number(metrics['auroc_median'])} "
        f"(IQR {_number(metrics['auroc_iqr'])}) over {len(metrics['auroc'])} labels"
    ]
    for explainer, value in metrics.get("organiou", {}).items():
        lines.append(f"OrganIoU {explainer}: {_number(value)}")
    for explainer, values in metrics.get("localisation", {}).items():
        lines.append(
            f"localisation {explainer}: pointing game {_number(values['pointing_game'])}, "
            f"lesion IoU {_number(values['lesion_iou'])}"
        )
    start = metrics.get("config", {}).get("start", {}).get("name")
    if start:
        lines.append(f"start: {start}")
    lines.append(f"total time {metrics['timing']['total']:.0f} s")
    return "\n".join(lines)


def _number(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
