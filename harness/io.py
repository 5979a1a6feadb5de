"""Reading CT volumes from files into ctbench's axes and Hounsfield units.

Every loader returns ``(volume, spacing_mm)`` with ``volume[S, Y, X]`` ordered
[superior->inferior, anterior->posterior, patient right->patient left] (DESIGN.md section 3),
so that "right lung" means the patient's right lung whatever the file's own orientation.

- ``.npz``: RAD-ChestCT's format (key ``ct``; ``volume`` also accepted), already in these axes,
  0.8 mm unless a ``spacing`` array is stored. Read without unpickling.
- ``.npy``: an array in these axes (spacing 1 mm unless given).
- ``.nii`` / ``.nii.gz``: reoriented through nibabel to RAS+, then flipped and transposed:
  RAS+ axis 0 runs toward the patient's right, axis 1 toward anterior, axis 2 toward superior.
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
    raise InvalidCaseError(f"{path}: unsupported file type; ctbench reads {', '.join(SUFFIXES)}")


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
