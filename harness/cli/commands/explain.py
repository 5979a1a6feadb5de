"""``ctbench explain``: heatmaps of one label on one volume, for a checkpoint or untrained model."""

from __future__ import annotations

from pathlib import Path

import click
from ctbench.cli.commands import SEED, PluginName, dataset_option, device_option, plugin_option


def _shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    from ctbench.data.io import MAX_VOXELS

    if len(shape) != 3 or min(shape) < 1 or shape[0] % 3:
        raise click.BadParameter(
            f"{text!r}: give S,Y,X, three positive integers with S a multiple of 3",
            param_hint="--volume-shape",
        )
    if shape[0] * shape[1] * shape[2] > MAX_VOXELS:
        raise click.BadParameter(
            f"{text!r}: more than {MAX_VOXELS:,} voxels", param_hint="--volume-shape"
        )
    return shape


@click.command()
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A trained model (ctbench checkpoint).",
)
@click.option("--arch", type=PluginName("architectures"), help="An untrained architecture instead.")
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Seed of the untrained model."
)
@dataset_option
@click.option("--preset", default="default", show_default=True)
@click.option(
    "--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True
)
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--case", "case_id", default=None, help="Case id (overrides --split/--index).")
@click.option(
    "--volume",
    "volume_path",
    type=click.Path(exists=True, path_type=Path),
    help="A CT file (.nii/.nii.gz/.npz/.npy) instead of a dataset case.",
)
@click.option(
    "--volume-shape",
    default=None,
    help="S,Y,X to pad/crop to (default: the checkpoint's, the dataset's, or 405,420,420).",
)
@click.option("--label", required=True, help="Label to explain, e.g. lung_pleural_effusion.")
@plugin_option("--explainer", "explainers", kind="explainers", multiple=True)
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@device_option()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("explanations"),
    show_default=True,
)
def explain(
    checkpoint,
    arch,
    seed,
    dataset_name,
    preset,
    split,
    index,
    case_id,
    volume_path,
    volume_shape,
    label,
    explainers,
    top_k,
    device,
    out,
) -> None:
    """Explain LABEL on one volume: top slices with heatmaps side by side, per-slice scores."""
    import ctbench
    import torch
    from ctbench.core import paper
    from ctbench.data.preprocess import Preprocessing
    from ctbench.explain import one_volume
    from ctbench.report.figures import plot_label_explanation
    from ctbench.runtime.checkpoints import model_from_checkpoint
    from ctbench.vocabulary import output_labels

    if (checkpoint is None) == (arch is None):
        raise click.UsageError("give exactly one of --checkpoint and --arch")
    try:
        model, payload = model_from_checkpoint(checkpoint) if checkpoint else (None, None)
        label_names = payload["label_names"] if payload else None
        if volume_path is not None:
            volume = one_volume.volume_from_file(volume_path)
            label_names = label_names or list(output_labels())
        else:
            volume, label_names = one_volume.volume_from_dataset(
                dataset_name, preset, label_names, split=split, index=index, case_id=case_id
            )
    except (ValueError, FileNotFoundError, IndexError) as error:
        raise click.ClickException(str(error)) from error
    try:
        one_volume.label_index(label, label_names)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--label") from error
    if payload is not None:
        groups, per_group, rows, columns = payload["input_shape"]
        shape = (groups * per_group, rows, columns)
    else:
        shape = _shape(volume_shape) or volume.volume_shape or paper.VOLUME_SHAPE
    preprocessing = Preprocessing(volume_shape=shape)
    try:
        if payload is None:
            torch.manual_seed(seed)
            model = ctbench.create_model(arch, len(label_names), preprocessing.input_shape).eval()
        explained = one_volume.explain_label(
            model, volume, label, label_names, list(explainers), preprocessing,
            device=device, top_k=top_k,
        )  # fmt: skip
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    model_name = payload["arch"] if payload else f"untrained {arch} (seed {seed})"
    click.echo(str(plot_label_explanation(explained, out, model_name)))
    click.echo(f"p({label}) = {explained.probability:.4f}")
