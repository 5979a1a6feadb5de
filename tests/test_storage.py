"""Atomic writes: all or nothing, ordinary permissions, corrupt arrays named."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from ctbench.runtime.storage import atomic_open, read_npz, write_json, write_npz


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(path, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert path.read_text().startswith("{") and list(tmp_path.iterdir()) == [path]


def test_written_files_follow_the_umask(tmp_path):
    path = tmp_path / "x.npz"
    write_npz(path, a=np.arange(3))
    mode = stat.S_IMODE(os.stat(path).st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
    assert read_npz(path)["a"].tolist() == [0, 1, 2]


def test_corrupt_array_file_is_named(tmp_path):
    path = tmp_path / "case.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"case\.npz"):
        read_npz(path)
