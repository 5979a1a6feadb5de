"""``ctbench model``: build one architecture and say what it is (size, CAM grid, weights)."""

from __future__ import annotations

import json

import click
from ctbench.cli.commands import (
    InputShape,
    PluginName,
    check_start,
    plugin_option,
    resolve_weights,
    weights_options,
)


@click.command()
@click.argument("name", type=PluginName("architectures"))
@click.option(
    "--input-shape",
    type=InputShape(),
    default="16,3,128,128",
    show_default=True,
    help="Model input H,C,Y,X; the paper's is 135,3,420,420.",
)
@click.option(
    "--classes",
    type=click.IntRange(min=1),
    default=80,
    show_default=True,
    help="Number of outputs M.",
)
@weights_options
@plugin_option("--dataset", kind="datasets", help="Dataset of the pretext start.")
@click.option("--preset", default="default", show_default=True, help="Preset of the pretext start.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def model(name, input_shape, classes, pretrained, weights, start, dataset, preset, as_json) -> None:
    """Build architecture NAME and print its parameter count, representation grid and start."""
    import ctbench
    from ctbench.core.registry import default_registry
    from ctbench.experiments.run_config import capabilities, chosen_start

    check_start(start, pretrained, weights)
    options = resolve_weights(pretrained, weights)
    start = chosen_start(start, pretrained, weights is not None) or "random"
    options["pretrained"] = start != "random"
    pretrainable = capabilities(name)["pretrainable"]
    if start != "random" and not pretrainable:  # its factory need not take weights
        raise click.ClickException(
            f"{name} does not declare pretrainable=True, so it cannot start from weights; "
            "leave out --start, --pretrained and --weights"
        )
    factory_options = options if pretrainable else {}
    try:
        if start == "pretext":
            options["weights"] = _pretext_path(dataset, preset)
        network = ctbench.create_model(name, classes, input_shape, **factory_options)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    entry = default_registry().get("architectures", name)
    summary = {
        "name": name,
        "provider": entry.provider,
        "paper_name": entry.meta.get("paper_name"),
        "input_shape": list(input_shape),
        "n_classes": classes,
        "parameters": sum(p.numel() for p in network.parameters()),
        "explainable": bool(getattr(network, "explainable", False)),
        "cam_layout": getattr(network, "cam_layout", None),
        "representation_shape": list(getattr(network, "representation_shape", ()) or []) or None,
        "slice_aggregation": getattr(network, "slice_aggregation", None),
        "start": start,
        **options,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        click.echo(
            f"{key:21s} {value:,}"
            if isinstance(value, int) and not isinstance(value, bool)
            else f"{key:21s} {value}"
        )


def _pretext_path(dataset: str, preset: str) -> str:
    """The cached pretext weights of ``dataset``'s ``preset`` (as runs use them)."""
    import ctbench
    from ctbench.experiments.runs import preset_pretext

    source = ctbench.create_dataset(dataset, preset=preset)
    return str(preset_pretext(source, dataset, preset, log=click.echo))
