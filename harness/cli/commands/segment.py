"""``ctbench segment``: right lung, left lung and mediastinum of one volume (PARTITION)."""

from __future__ import annotations

from pathlib import Path

import click
from ctbench.cli.commands import device_option, plugin_option


@click.command()
@click.argument("volume")
@plugin_option("--segmenter", kind="segmenters")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the masks: .npz (boolean arrays) or .nii/.nii.gz (label map 1 right "
    "lung, 2 left lung, 3 mediastinum, in RAS like the input NIfTI convention).",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a picture of the three organs over axial and coronal slices.",
)
@device_option()
def segment(volume: str, segmenter: str, out: Path | None, png: Path | None, device) -> None:
    """Segment VOLUME: a NIfTI file, a DICOM folder, an .npz/.npy, or a generated dataset's
    case as DATASET:PRESET:CASE_ID (phantom:tiny:train-0000).

    The morphological segmenter computes on --device (torch there, scipy on the CPU: the
    same masks); a segmenter that does not compute on devices runs on the CPU.
    """
    import ctbench
    import numpy as np
    from ctbench.core.cases import InvalidCaseError, validate_volume
    from ctbench.data.io import load_volume

    try:
        case = _dataset_case(volume)
        if case is not None:
            array, spacing = case.volume, case.spacing
        else:
            array, spacing = load_volume(volume)
        validate_volume(array, volume)
        masks = ctbench.create_segmenter(segmenter, device=device)(array, spacing)
    except (InvalidCaseError, ValueError) as error:  # NoLungError too: no masks are invented
        raise click.ClickException(str(error)) from error
    voxel_ml = float(np.prod(spacing)) / 1000.0
    for name, mask in masks.as_dict().items():
        click.echo(f"{name:12s} {mask.sum() * voxel_ml:9.1f} mL")
    verdict = "passed" if masks.qc.passed else f"failed: {masks.qc.reason}"
    click.echo(f"method       {masks.method}; QC {verdict}")
    if out is not None:
        _write_masks(out, masks, spacing)
        click.echo(f"masks -> {out}")
    if png is not None:
        from ctbench.report.figures import plot_segmentation

        plot_segmentation(array, masks.as_dict(), spacing, png, title=f"{volume}: {masks.method}")
        click.echo(f"picture -> {png}")


def _dataset_case(volume: str):
    """The case that ``DATASET:PRESET:CASE_ID`` names (a dataset that needs no folder), or
    None when VOLUME is a path."""
    import ctbench
    from ctbench.core.registry import default_registry

    parts = volume.split(":")
    if len(parts) != 3 or parts[0] not in default_registry().names("datasets"):
        return None
    name, preset, case_id = parts
    return ctbench.create_dataset(name, preset=preset).load(case_id)


def _write_masks(path: Path, masks, spacing) -> None:
    import json

    import numpy as np
    from ctbench.runtime.storage import atomic_open, write_npz

    if path.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        labels = np.zeros(masks.right_lung.shape, np.uint8)
        labels[masks.mediastinum] = 3
        labels[masks.right_lung] = 1
        labels[masks.left_lung] = 2
        ras = np.flip(labels.transpose(2, 1, 0), axis=(0, 1, 2))  # inverse of io.ras_to_ctbench
        affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
        data = nib.Nifti1Image(np.ascontiguousarray(ras), affine).to_bytes()
        if path.name.endswith(".gz"):
            import gzip

            data = gzip.compress(data)
        with atomic_open(path, "wb") as handle:
            handle.write(data)
        return
    if not path.name.endswith(".npz"):
        raise click.BadParameter("--out must end in .npz, .nii or .nii.gz", param_hint="--out")
    record = {
        "method": masks.method,
        "qc_passed": masks.qc.passed,
        "qc_reason": masks.qc.reason,
        "spacing": list(spacing),
    }
    write_npz(path, **masks.as_dict(), record=np.array(json.dumps(record)))
