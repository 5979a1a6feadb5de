"""Reading CT volumes from the field's formats into ctbench's axes and Hounsfield units.

Every reader returns the volume with its spacing, ``volume[S, Y, X]`` ordered
[superior->inferior, anterior->posterior, patient right->patient left] (docs/models.md,
Contracts), so that "right lung" means the patient's right lung whatever the file's own
orientation. A file that cannot be read is one :class:`ctbench.core.cases.InvalidCaseError` naming
it and the problem.

- ``.npz``: RAD-ChestCT's format (key ``ct``; ``volume`` also accepted), already in these axes,
  0.8 mm unless a ``spacing`` array is stored. Read without unpickling.
- ``.npy``: an array in these axes (spacing 1 mm unless given).
- ``.nii`` / ``.nii.gz``: reoriented from the affine with nibabel's orientation tools.
- a DICOM folder (one series): slices ordered along their normal, HU = pixel x slope +
  intercept, given the affine their headers describe and reoriented the same way, so any
  acquisition orientation lands on the same axes.

Two checks guard what a chest dataset must hold (:func:`check_hu`, :func:`check_lungs`): air
lies near -1000 HU (a volume in raw scanner units, or scaled twice, does not) and there is air
enclosed by the body (a head CT has none worth the name). :func:`resample` brings a volume to
a dataset preset's spacing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from ctbench.core.cases import InvalidCaseError

RAD_CHESTCT_SPACING = (0.8, 0.8, 0.8)
SUFFIXES = (".npz", ".npy", ".nii", ".nii.gz")


def load_volume(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``(volume [S, Y, X], spacing mm)`` from a supported file; errors name the file."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise InvalidCaseError(f"{path}: no such file")
    if path.is_dir():
        volume, spacing = read_dicom_series(path)
        return np.rint(volume).astype(np.int16), spacing
    if nifti_stem(name) is not None:
        return read_nifti(path)[:2]
    try:
        if name.endswith(".npz"):
            return read_npz(path)
        if name.endswith(".npy"):
            return read_npy(path), (1.0, 1.0, 1.0)
    except InvalidCaseError:
        raise
    except Exception as error:
        raise InvalidCaseError(f"{path}: unreadable ({type(error).__name__}: {error})") from error
    raise InvalidCaseError(
        f"{path}: unsupported file type; ctbench reads {', '.join(SUFFIXES)} or a DICOM folder"
    )


MAX_VOXELS = 1 << 30
"""The most voxels ctbench reads from one volume file (1024^3; the paper's CTs are about
420 x 420 x 405 = 7e7): a header that claims more is refused before any memory is taken, so a
hostile or corrupt file of a few bytes cannot ask for terabytes."""


def check_voxels(shape: tuple[int, ...], path: Path | str) -> None:
    """One InvalidCaseError when a file's header claims an array larger than MAX_VOXELS."""
    count = math.prod(int(n) for n in shape)
    if count > MAX_VOXELS:
        raise InvalidCaseError(
            f"{path}: its header claims {'x'.join(map(str, shape))} = {count:,} voxels, more "
            f"than ctbench reads ({MAX_VOXELS:,}); a corrupt header?"
        )


def _npy_shape(handle) -> tuple[int, ...]:
    """The shape in an .npy stream's header (numpy's public header readers), nothing else."""
    version = np.lib.format.read_magic(handle)
    read_header = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read_header is None:
        raise ValueError(f"unsupported .npy format version {version}")
    return read_header(handle)[0]


def check_npz_sizes(path: Path) -> None:
    """Every array of an .npz within MAX_VOXELS, read from the headers alone (a zip bomb or
    a forged header is refused before decompression)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".npy"):
                with archive.open(name) as handle:
                    check_voxels(_npy_shape(handle), f"{path} ({name})")


def read_npy(path: Path) -> np.ndarray:
    """An .npy array whose header is checked against MAX_VOXELS before anything is read;
    never unpickled."""
    with open(path, "rb") as handle:
        check_voxels(_npy_shape(handle), path)
    return np.load(path, allow_pickle=False)


def read_npz(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The ``ct`` (or ``volume``) array of an npz and its ``spacing`` (RAD-ChestCT's 0.8 mm
    when none is stored); a truncated or foreign file is one error naming it."""
    try:
        check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            key = "ct" if "ct" in data.files else "volume" if "volume" in data.files else None
            if key is None:
                raise InvalidCaseError(f"{path}: no 'ct' or 'volume' array (has {data.files})")
            stored = data["spacing"] if "spacing" in data.files else None
            spacing = tuple(float(s) for s in stored) if stored is not None else None
            return data[key], spacing or RAD_CHESTCT_SPACING
    except InvalidCaseError:
        raise
    except Exception as error:  # truncated zip, CRC error, not an npz
        raise InvalidCaseError(
            f"{path}: unreadable npz ({type(error).__name__}: {error})"
        ) from error


NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(name: str) -> str | None:
    """A NIfTI file name without its suffix (any case: ``scan.NII.GZ`` -> ``scan``); None for
    a file that is not NIfTI."""
    lower = name.lower()
    suffix = next((s for s in NIFTI_SUFFIXES if lower.endswith(s)), None)
    return None if suffix is None else name[: -len(suffix)]


def ras_to_ctbench(array: np.ndarray) -> np.ndarray:
    """RAS+ voxel axes (i -> right, j -> anterior, k -> superior) to ``[S, Y, X]``."""
    return np.ascontiguousarray(np.flip(array, axis=(0, 1, 2)).transpose(2, 1, 0))


SPACING_AXES = ("I", "P", "L")
"""nibabel axis codes of ctbench's ``[S, Y, X]``: toward inferior, posterior, patient left."""

AIR_HU = (-1100.0, -850.0)
"""Where air (the lowest values) must lie for a volume to be in HU (air is -1000 HU)."""

MIN_ENCLOSED_AIR_ML = 100.0
"""Least air (below -400 HU) not touching the in-plane border for a volume to hold lungs: a
chest CT holds litres, a head CT tens of millilitres (sinuses); an abdominal CT with only the
lung bases (the TotalSegmentator example in ``shared/data``) about 140 mL."""

LOWEST_HU = -1024
"""Values below this are padding outside the reconstruction circle (-2048, -3024): set to it."""


def _reorient(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, ...]]:
    """``data`` with voxel-to-RAS ``affine`` -> ``(data on [S, Y, X], spacing along them)``."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    current = io_orientation(affine)
    transform = ornt_transform(current, axcodes2ornt(SPACING_AXES))
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    # transform[i] = (new axis of old axis i, flip): new axis j has old axis i's spacing
    spacing = tuple(float(zooms[list(transform[:, 0]).index(j)]) for j in range(3))
    return np.ascontiguousarray(apply_orientation(data, transform)), spacing


def read_nifti(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """``(values, spacing, info)`` of a NIfTI file on ctbench's axes.

    ``values`` are what the header's scaling gives (nibabel applies ``scl_slope`` and
    ``scl_inter``); ``info["header_scaling"]`` is True when the header sets a scaling other
    than the identity, so that a caller can tell an int16 file scaled in its header (HU
    already) from a file stored with a blank header.
    """
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(path)
        if len(image.shape) != 3:
            raise InvalidCaseError(f"{path}: a NIfTI volume must be 3-D, got shape {image.shape}")
        check_voxels(image.shape, path)  # before nibabel allocates what the header claims
        data = np.asanyarray(image.dataobj)
    except InvalidCaseError:
        raise
    except Exception as error:  # truncated gzip, bad header, not a NIfTI at all
        raise InvalidCaseError(
            f"{path}: unreadable NIfTI ({type(error).__name__}: {error})"
        ) from error
    slope, inter = image.dataobj.slope, image.dataobj.inter
    scaled = not (np.isnan(slope) or np.isnan(inter)) and (slope, inter) != (1.0, 0.0)
    volume, spacing = _reorient(data, image.affine)
    info = {"header_scaling": bool(scaled), "stored_dtype": str(image.get_data_dtype())}
    return volume, spacing, info


class SkippedFileWarning(UserWarning):
    """A file in a DICOM series folder that is not an image slice was left out."""


GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "PixelData")
"""What every slice of a series must carry to be stacked."""


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The HU volume and spacing of the DICOM series in ``folder`` on ctbench's axes.

    Slices are ordered by their position along the slice normal, HU = pixel x RescaleSlope +
    RescaleIntercept per slice, and the slice spacing is the median gap (gaps more than 10% off
    it are refused, so it is also the most common gap, the paper's choice). A folder with
    several series, a missing geometry tag or uneven gaps is one error naming the file or folder.
    A file that is not DICOM at all (no DICOM header: a stray text file, a thumbnail) or is the
    media's DICOMDIR is skipped with a :class:`SkippedFileWarning` naming it.
    """
    import warnings

    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    slices, skipped = [], []
    for path in _dicom_files(folder):
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:  # not DICOM at all (a stray README, a thumbnail): skipped
            skipped.append(path)
            continue
        except Exception as error:
            raise InvalidCaseError(
                f"{path}: unreadable DICOM ({type(error).__name__}: {error})"
            ) from error
        if path.name.upper() == "DICOMDIR" or "DirectoryRecordSequence" in ds:
            skipped.append(path)  # the media's index, not a slice
            continue
        slices.append((path, ds))
    for path in skipped:
        warnings.warn(f"{path}: not a DICOM image slice; skipped", SkippedFileWarning, 2)
    if not slices:
        raise InvalidCaseError(f"{folder}: no DICOM files")
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for _, ds in slices}
    if len(series) > 1:
        raise InvalidCaseError(
            f"{folder}: holds {len(series)} DICOM series; put each series in a folder of its own"
        )
    for path, ds in slices:
        missing = [tag for tag in GEOMETRY_TAGS if tag not in ds]
        if missing:
            raise InvalidCaseError(
                f"{path}: no {', '.join(missing)} (a truncated file, or not an image slice?)"
            )
    orientation = np.array(slices[0][1].ImageOrientationPatient, float)
    row_step, column_step = (float(v) for v in slices[0][1].PixelSpacing)
    positions = np.array([ds.ImagePositionPatient for _, ds in slices], float)
    normal = np.cross(orientation[:3], orientation[3:])
    along = positions @ normal
    order = np.argsort(along)
    gaps = np.diff(along[order])
    if len(slices) > 1 and (gaps <= 1e-3).any():
        raise InvalidCaseError(f"{folder}: two slices share a position (a duplicated slice?)")
    step = float(np.round(np.median(gaps), 3)) if len(gaps) else 1.0
    if len(gaps) and np.abs(gaps - step).max() > 0.1 * step:
        raise InvalidCaseError(
            f"{folder}: uneven slice gaps ({gaps.min():.2f} to {gaps.max():.2f} mm): "
            "missing slices?"
        )
    stack = []
    for index in order:
        path, ds = slices[index]
        try:
            pixels = ds.pixel_array.astype(np.float32)
        except Exception as error:
            raise InvalidCaseError(
                f"{path}: pixel data cannot be decoded ({type(error).__name__}: {error})"
            ) from error
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        stack.append(pixels * slope + float(getattr(ds, "RescaleIntercept", 0.0)))
    if len({s.shape for s in stack}) > 1:
        raise InvalidCaseError(f"{folder}: slices of different sizes")
    data = np.stack(stack)  # [slice, row, column]
    # voxel (k, i, j) -> patient LPS: columns along orientation[:3], rows along [3:]
    lps = np.eye(4)
    lps[:3, 0] = normal * step
    lps[:3, 1] = orientation[3:] * row_step
    lps[:3, 2] = orientation[:3] * column_step
    lps[:3, 3] = positions[order[0]]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    volume, spacing = _reorient(data, ras)
    return volume, spacing


MAX_SPACING_MM = 50.0
"""The coarsest voxel side ctbench accepts: CT slices are at most a few mm thick (a 50 mm
"voxel" is a corrupt header, and resampling it to 0.8 mm would ask for 60^3 times the data)."""


def check_spacing(
    spacing: tuple[float, ...],
    shape: tuple[int, ...],
    target: tuple[float, ...],
    source: str,
) -> None:
    """One InvalidCaseError when a volume's spacing is not a plausible CT's (not finite, not
    positive, coarser than MAX_SPACING_MM) or when resampling it to ``target`` would make more
    than MAX_VOXELS voxels: checked before any memory is taken."""
    values = [float(s) for s in spacing]
    if len(values) != 3 or not all(np.isfinite(v) and 0 < v <= MAX_SPACING_MM for v in values):
        raise InvalidCaseError(
            f"{source}: voxel spacing {tuple(spacing)} mm is not a CT's (each side must be "
            f"above 0 and at most {MAX_SPACING_MM:g} mm); a corrupt header?"
        )
    check_voxels(
        resampled_shape(shape, values, target), f"{source} (resampled to {tuple(target)} mm)"
    )


def resampled_shape(shape, spacing, target) -> tuple[int, ...]:
    """The shape of a volume of ``shape`` at ``spacing`` mm once resampled to ``target`` mm."""
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))


def resample(
    volume: np.ndarray,
    spacing: tuple[float, float, float],
    target: tuple[float, float, float],
    *,
    method: str = "torch",
) -> np.ndarray:
    """``volume`` resampled (trilinear) from ``spacing`` to ``target`` mm; each axis gets
    ``round(size * spacing / target)`` voxels. ``method``: ``torch`` (``F.interpolate``, all
    cores) or ``scipy`` (``ndimage.zoom``, order 1). Returns float32. An implausible spacing or
    a result above MAX_VOXELS is refused first (:func:`check_spacing`)."""
    check_spacing(spacing, volume.shape, target, "volume")
    size = resampled_shape(volume.shape, spacing, target)
    if size == volume.shape:
        return volume.astype(np.float32, copy=False)
    if method == "scipy":
        from scipy.ndimage import zoom

        factors = [new / old for new, old in zip(size, volume.shape, strict=True)]
        return zoom(
            volume.astype(np.float32, copy=False), factors, order=1, grid_mode=True, mode="nearest"
        )
    if method != "torch":
        raise ValueError(f"unknown resampling method {method!r}; choose torch or scipy")
    import torch

    with torch.no_grad():
        tensor = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
        out = torch.nn.functional.interpolate(tensor, size=size, mode="trilinear")
    return out[0, 0].numpy()


def check_hu(volume: np.ndarray, source: str) -> None:
    """One error when air is not near -1000 HU: raw scanner units (air near 0), a scaling
    applied twice (air near -2000), or no air at all.

    The air level is the 0.5th percentile of the voxels, leaving out the padding outside the
    reconstruction circle (one constant at or below -1024 HU covering over 1% of the volume).
    """
    sample = np.asarray(volume[::2, ::4, ::4]).ravel()
    lowest = sample.min()
    if lowest <= LOWEST_HU and (sample == lowest).mean() > 0.01:
        sample = sample[sample != lowest]
    air = float(np.percentile(sample, 0.5)) if sample.size else float(lowest)
    if air > -400:
        raise InvalidCaseError(
            f"{source}: no air near -1000 HU (the lowest values are near {air:.0f}): raw "
            "scanner units rather than HU? Apply RescaleSlope and RescaleIntercept"
        )
    if not AIR_HU[0] <= air <= AIR_HU[1]:
        raise InvalidCaseError(
            f"{source}: air lies at {air:.0f}, not near -1000 HU: the HU scaling is wrong "
            "(applied twice, or not at all)"
        )


def check_lungs(volume: np.ndarray, spacing: tuple[float, float, float], source: str) -> float:
    """The air enclosed by the body in mL; one error when there is too little for lungs.

    Air below -400 HU counts when its connected component does not touch the in-plane border
    (outside air does; lungs reach the top and bottom slices, so those faces do not count).
    """
    from scipy import ndimage

    air = volume[::2, ::2, ::2] < -400
    labels, count = ndimage.label(air)
    border = np.unique(
        np.concatenate(
            [
                labels[:, 0].ravel(),
                labels[:, -1].ravel(),
                labels[:, :, 0].ravel(),
                labels[:, :, -1].ravel(),
            ]
        )
    )
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[border] = 0
    voxel_ml = 8 * float(np.prod(spacing)) / 1000.0
    enclosed = float(sizes[1:].sum()) * voxel_ml
    if enclosed < MIN_ENCLOSED_AIR_ML:
        raise InvalidCaseError(
            f"{source}: no lungs (only {enclosed:.0f} mL of air inside the body, less than "
            f"{MIN_ENCLOSED_AIR_ML:.0f} mL): not a chest CT (a head CT?)"
        )
    return enclosed


def to_hu_int16(volume: np.ndarray) -> np.ndarray:
    """Rounded int16 HU; values below :data:`LOWEST_HU` (padding) are set to it."""
    return np.rint(np.clip(volume, LOWEST_HU, np.iinfo(np.int16).max)).astype(np.int16)
