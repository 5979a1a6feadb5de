"""``ctbench pretrain``: build (or find) a dataset's pretext start for ResNet-18."""

from __future__ import annotations

from pathlib import Path

import click
from ctbench.cli.commands import SEED, device_option, plugin_option
from ctbench.runtime.storage import read_json


@click.command()
@plugin_option("--dataset", kind="datasets", help="Dataset.")
@click.option("--preset", default="default", show_default=True, help="The dataset's preset.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Pretext epochs. Default: the preset's recipe's, as runs use (cpu-tiny 2, cpu 10).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Pretext training seed.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the weights. Default: the dataset cache's pretext/ folder, where runs "
    "with --start pretext look for them.",
)
@click.option("--rebuild", is_flag=True, help="Build again even when the weights exist.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@device_option("Only the CPU rebuilds the weights byte for byte.")
def pretrain(dataset, preset, epochs, seed, out, rebuild, quiet, device) -> None:
    """Pretrain ResNet-18 on the dataset's pretext pool: organ-wise HU occupancy per cell.

    No finding label is used, and no benchmark volume: the pool is the dataset's own
    (phantom: the preset's training volumes of another seed). Prints the weights file (a
    torchvision ResNet-18 state dict; --weights takes it too) and its SHA-256. The same
    settings on the same software rebuild it byte for byte.
    """
    import ctbench
    from ctbench.experiments.runs import preset_pretext

    overrides = {"seed": seed, **({"epochs": epochs} if epochs else {})}
    try:
        path = preset_pretext(
            ctbench.create_dataset(dataset, preset=preset),
            dataset,
            preset,
            cache_dir=out,
            rebuild=rebuild,
            progress=False if quiet else None,
            log=click.echo,
            device=device,
            **overrides,
        )
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    record = read_json(path.with_suffix(".json"))
    fit = record["held_out_r2"][-1] if record.get("held_out_r2") else None
    click.echo(f"weights: {path}")
    click.echo(f"sha256: {record['sha256']}")
    if fit is not None:
        click.echo(f"held-out R^2: {fit:.3f}")
