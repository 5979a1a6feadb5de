"""Reading CT volumes from files into ctbench's axes and Hounsfield units.

Every loader returns ``(volume, spacing_mm)`` with ``volume[S, Y, X]`` ordered
[superior->inferior, anterior->posterior, patient right->patient left] (README: Models, Contracts),
so that "right lung" means the patient's right lung whatever the file's own orientation.

- ``.npz``: RAD-ChestCT's format (key ``ct``; ``volume`` also accepted), already in these axes,
  0.8 mm unless a ``spacing`` array is stored. Read without unpickling.
- ``.npy``: an array in these axes (spacing 1 mm unless given).
- ``.nii`` / ``.nii.gz``: reoriented through nibabel to RAS+, then flipped and transposed:
  RAS+ axis 0 runs toward the patient's right, axis 1 toward anterior, axis 2 toward superior.
- a DICOM folder (one axial series): slices sorted superior first by their position along the
  slice normal, HU = pixel x slope + intercept. DICOM's patient axes (x toward the patient's
  left, y toward posterior) already match ``[Y, X]`` for the standard axial orientation
  [1,0,0,0,1,0], the only one accepted (as the reference pipeline does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ctbench.cases import InvalidCaseError

RAD_CHESTCT_SPACING = (0.8, 0.8, 0.8)
SUFFIXES = (".npz", ".npy", ".nii", ".nii.gz")


def load_volume(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``(volume [S, Y, X], spacing mm)`` from a supported file; errors name the file."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise InvalidCaseError(f"{path}: no such file")
    if path.is_dir():
        return _load_dicom_folder(path)
    try:
        if name.endswith(".npz"):
            return _load_npz(path)
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False), (1.0, 1.0, 1.0)
        if name.endswith((".nii", ".nii.gz")):
            return _load_nifti(path)
    except InvalidCaseError:
        raise
    except Exception as error:
        raise InvalidCaseError(f"{path}: unreadable ({type(error).__name__}: {error})") from error
    raise InvalidCaseError(
        f"{path}: unsupported file type; ctbench reads {', '.join(SUFFIXES)} or a DICOM folder"
    )


def _load_npz(path: Path):
    with np.load(path, allow_pickle=False) as data:
        key = "ct" if "ct" in data.files else "volume" if "volume" in data.files else None
        if key is None:
            raise InvalidCaseError(f"{path}: no 'ct' or 'volume' array (has {data.files})")
        spacing = tuple(float(s) for s in data["spacing"]) if "spacing" in data.files else None
        return data[key], spacing or RAD_CHESTCT_SPACING


def ras_to_ctbench(array: np.ndarray) -> np.ndarray:
    """RAS+ voxel axes (i -> right, j -> anterior, k -> superior) to ``[S, Y, X]``."""
    return np.ascontiguousarray(np.flip(array, axis=(0, 1, 2)).transpose(2, 1, 0))


def _load_nifti(path: Path):
    import nibabel as nib

    image = nib.as_closest_canonical(nib.load(str(path)))
    if len(image.shape) != 3:
        raise InvalidCaseError(f"{path}: expected a 3-D image, got shape {image.shape}")
    data = np.asanyarray(image.dataobj)
    zooms = image.header.get_zooms()[:3]
    return ras_to_ctbench(data), (float(zooms[2]), float(zooms[1]), float(zooms[0]))


def _load_dicom_folder(path: Path):
    import pydicom

    slices = []
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        try:
            slices.append(pydicom.dcmread(file))
        except Exception as error:
            raise InvalidCaseError(f"{file}: not a readable DICOM file ({error})") from error
    if not slices:
        raise InvalidCaseError(f"{path}: folder holds no DICOM files")
    orientation = [round(float(v)) for v in slices[0].ImageOrientationPatient]
    if orientation != [1, 0, 0, 0, 1, 0]:
        raise InvalidCaseError(f"{path}: orientation {orientation} is not standard axial")
    slices.sort(key=lambda d: -float(d.ImagePositionPatient[2]))  # superior first
    try:
        volume = np.stack(
            [
                d.pixel_array * float(getattr(d, "RescaleSlope", 1))
                + float(getattr(d, "RescaleIntercept", 0))
                for d in slices
            ]
        )
    except Exception as error:
        raise InvalidCaseError(
            f"{path}: pixel data unreadable ({type(error).__name__}: {error})"
        ) from error
    z = np.array([float(d.ImagePositionPatient[2]) for d in slices])
    gaps = np.abs(np.diff(z))
    dz = float(np.median(gaps)) if len(gaps) else float(getattr(slices[0], "SliceThickness", 1.0))
    row, column = (float(v) for v in slices[0].PixelSpacing)
    return np.rint(volume).astype(np.int16), (dz, row, column)
