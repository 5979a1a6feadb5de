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
    import numpy as np
    import torch
    from ctbench.core import paper
    from ctbench.core.cases import validate_volume
    from ctbench.data.io import load_volume
    from ctbench.data.loader import prepare_volume
    from ctbench.data.preprocess import Preprocessing
    from ctbench.explain.explanations import relu_minmax, upsample_to_volume
    from ctbench.report.figures import plot_explanation
    from ctbench.runtime.checkpoints import model_from_checkpoint
    from ctbench.vocabulary import output_labels

    if (checkpoint is None) == (arch is None):
        raise click.UsageError("give exactly one of --checkpoint and --arch")
    try:
        payload = None
        if checkpoint is not None:
            model, payload = model_from_checkpoint(checkpoint)
        truth = None
        if volume_path is not None:
            volume, _ = load_volume(volume_path)
            name = volume_path.name
            label_names = payload["label_names"] if payload else list(output_labels())
            default_shape = paper.VOLUME_SHAPE
        else:
            source = ctbench.create_dataset(dataset_name, preset=preset)
            name = case_id or source.case_ids(split)[index]
            case = source.load(name)
            volume = case.volume
            label_names = payload["label_names"] if payload else list(source.label_names)
            default_shape = tuple(source.volume_shape)
            if list(source.label_names) == list(label_names):
                truth = dict(zip(label_names, case.labels.tolist(), strict=True))
        validate_volume(volume, name)
    except (ValueError, FileNotFoundError, IndexError) as error:
        raise click.ClickException(str(error)) from error

    if label not in label_names:
        import difflib

        close = difflib.get_close_matches(label, label_names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise click.BadParameter(
            f"{label!r} is not among the model's labels.{hint}", param_hint="--label"
        )
    m = label_names.index(label)
    if payload is not None:
        shape = tuple(payload["input_shape"])
        volume_shape_ = (shape[0] * shape[1], shape[2], shape[3])
    else:
        volume_shape_ = _shape(volume_shape) or default_shape
    preprocessing = Preprocessing(volume_shape=volume_shape_)
    if payload is None:
        torch.manual_seed(seed)
        try:
            model = ctbench.create_model(arch, len(label_names), preprocessing.input_shape)
        except ValueError as error:
            raise click.ClickException(str(error)) from error
        model = model.eval()
    ct, x = prepare_volume(volume, preprocessing)
    model, x = model.to(device), x[None].to(device)

    overlays, raw_maps = {}, {}
    for explainer_name in explainers:
        try:
            maps, logits = ctbench.create_explainer(explainer_name).explain(model, x, classes=[m])
        except ValueError as error:
            raise click.ClickException(str(error)) from error
        raw_maps[explainer_name] = maps.detach().cpu()
        shown = upsample_to_volume(relu_minmax(maps.detach()), ct.shape)
        overlays[explainer_name] = shown[0, 0].cpu().numpy()
    probability = float(torch.sigmoid(logits[0, m].detach()))  # logits cover every class
    if hasattr(model, "slice_scores"):
        with torch.no_grad():
            scores = model.slice_scores(x)[0, m].cpu().numpy()
        score_label = "per-slice score (logit)"
    else:  # no per-slice scores: rank slice groups by the first explainer's total attention
        scores = raw_maps[explainers[0]][0, 0].sum(dim=(1, 2)).numpy()
        score_label = f"{explainers[0]} per-slice sum"
    top = [int(g) for g in np.argsort(-scores)[:top_k]]
    truth_text = "" if truth is None else f", truth {'present' if truth[label] else 'absent'}"
    model_name = payload["arch"] if payload else f"untrained {arch} (seed {seed})"
    title = f"{name}: {label} - {model_name}, p = {probability:.2f}{truth_text}"
    path = plot_explanation(
        ct,
        overlays,
        scores,
        top,
        out / f"{Path(name).stem}_{label}.png",
        title=title,
        score_label=score_label,
        slices_per_group=preprocessing.slices_per_group,
    )
    click.echo(str(path))
    click.echo(f"p({label}) = {probability:.4f}")
