"""Model-ready volumes on disk: int16, padded and cropped, uncompressed, memory-mapped.

Decoding a dataset's own files (compressed npz, NIfTI, DICOM series) costs far more than a GPU
step: at the paper's shape one volume is 405 x 420 x 420 int16 (about 143 MB), and a GPU that
trains 25 volumes/s needs 3.6 GB/s of them. So every case is decoded once, fitted onto the
model's grid (``fit_to_shape``) and stored as a plain ``.npy``; loader workers then map it
(``np.load(mmap_mode="r")``) and share the page cache. Augmentation, the HU clamp, scaling and
slice grouping happen later, on the device, on whole batches
(``ctbench.data.loader.to_model_batch``).

One folder per (dataset configuration, volume shape, version), built by whichever process
asks first; every file is written atomically, so concurrent builders (several loader workers,
torchrun ranks) are safe. HU values are rounded to integers (CT HU are integers on disk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ctbench.core.cases import Case, InvalidCaseError, case_file_name, source_config
from ctbench.data.preprocess import fit_to_shape
from ctbench.runtime.storage import atomic_open, config_key, read_json, write_json

VERSION = 1
INT16 = np.iinfo(np.int16)


class VolumeCache:
    """The cached volumes and labels of one source on one grid (``volume_shape``)."""

    def __init__(self, root: str | Path, identity: dict, volume_shape: tuple[int, int, int]):
        self.config = {**identity, "volume_shape": list(volume_shape), "version": VERSION}
        self.volume_shape = tuple(volume_shape)
        self.folder = Path(root) / f"volumes-{config_key(self.config)}"
        if not (self.folder / "config.json").exists():
            write_json(self.folder / "config.json", self.config)

    def _paths(self, case_id: str) -> tuple[Path, Path]:
        name = case_file_name(case_id)
        return self.folder / f"{name}.npy", self.folder / f"{name}.labels.json"

    def has(self, case_id: str) -> bool:
        return all(path.exists() for path in self._paths(case_id))

    def store(self, case: Case) -> None:
        """Fit ``case`` onto the grid and write its volume and labels (atomically)."""
        fitted = fit_to_shape(case.volume, self.volume_shape)
        if fitted.dtype != np.int16:
            if fitted.min() < INT16.min or fitted.max() > INT16.max:
                raise InvalidCaseError(f"{case.case_id}: HU values do not fit in int16")
            fitted = np.rint(fitted).astype(np.int16)
        volume_path, labels_path = self._paths(case.case_id)
        with atomic_open(volume_path, "wb") as handle:
            np.save(handle, np.ascontiguousarray(fitted), allow_pickle=False)
        write_json(labels_path, np.asarray(case.labels).astype(bool).tolist())

    def volume(self, case_id: str) -> np.ndarray:
        """The case's int16 ``[S, Y, X]``, memory-mapped copy-on-write: torch can wrap it
        without a copy (the batch is stacked straight from the page cache) and nothing ever
        writes the file."""
        path = self._paths(case_id)[0]
        try:
            volume = np.load(path, mmap_mode="c", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InvalidCaseError(f"{path}: unreadable cached volume ({error})") from error
        if volume.shape != self.volume_shape or volume.dtype != np.int16:
            raise InvalidCaseError(
                f"{path}: cached volume is {volume.dtype} {volume.shape}, expected int16 "
                f"{self.volume_shape}; delete the folder to rebuild it"
            )
        return volume

    def labels(self, case_id: str) -> np.ndarray:
        return np.array(read_json(self._paths(case_id)[1]), dtype=bool)


def cache_for(source, volume_shape: tuple[int, int, int], fallback: Path) -> VolumeCache:
    """The cache of ``source`` beside its own files (``source.folder``), else in ``fallback``;
    keyed by the source's name, preset and configuration."""
    identity = {
        "dataset": source.name,
        "label_names": list(source.label_names),
        "config": source_config(source),
    }
    return VolumeCache(Path(getattr(source, "folder", fallback)), identity, volume_shape)
