"""Atomic file writes and safe array loading, shared by caches and run folders.

A file is written to a temporary name in the same folder and renamed into place, so a reader
(another DataLoader worker, a resumed run) sees either nothing or the whole file. Arrays are
read with ``allow_pickle=False``: ctbench never unpickles data.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_open(path: Path, mode: str = "wb"):
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from other users
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it


def default_cache_dir() -> Path:
    """``$CTBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ctbench``, else ``~/.cache/ctbench``."""
    if os.environ.get("CTBENCH_CACHE_DIR"):
        return Path(os.environ["CTBENCH_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ctbench"


def config_key(config: dict) -> str:
    """A short, stable hash of a JSON-able configuration: the name of its cache folder."""
    text = json.dumps(config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json(path: Path, data) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file; a corrupt file is a ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(
            f"{path}: unreadable array file ({type(error).__name__}: {error})"
        ) from error
