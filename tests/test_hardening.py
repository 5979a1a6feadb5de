"""Hostile input, concurrent runs and full disks (docs/reliability.md; issue 27).

Each test names the defect it guards against; every one failed on the main branch before the
hardening. Unbounded reads are tested with bounded fakes and small limits, never by exhausting
memory; the full disk is the kernel's own ``/dev/full`` (every write fails with ENOSPC).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from ctbench.cli import main

from tests.real_layouts import write_dicom_series, write_folder

TINY = (5.0, 5.0, 5.0)


def cli(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kwargs)


def chest_volume(seed: int = 0) -> np.ndarray:
    """A small chest-like HU volume on the tiny grid (the phantom's anatomy)."""
    from ctbench.plugins.datasets.phantom import generate_case
    from ctbench.plugins.datasets.phantom.config import PhantomConfig

    config = PhantomConfig.from_preset("tiny", seed=seed, field_of_view_mm=(135.0, 320.0, 320.0))
    return generate_case(config, "train", 0).volume.astype(np.int16)


# --- 1. bounded reads ------------------------------------------------------------------------


class EndlessStream:
    """A binary stream without end (like /dev/zero) that counts what was asked of it and
    fails the test if a reader asks for more than ``budget`` bytes in all."""

    def __init__(self, budget: int) -> None:
        self.budget, self.given = budget, 0

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size >= 0, "an unbounded read() of an endless stream"
        self.given += size
        assert self.given <= self.budget, f"read {self.given} bytes of an endless stream"
        return b"\0" * size


def test_read_stream_stops_one_byte_past_the_limit():
    from ctbench.runtime.storage import FileTooLargeError, read_stream

    stream = EndlessStream(budget=1001)
    with pytest.raises(FileTooLargeError, match=r"endless: larger than 1000 bytes"):
        read_stream(stream, 1000, "endless", "report")
    assert stream.given == 1001


def test_every_reader_of_user_text_is_bounded(tmp_path, monkeypatch):
    """Reports, CSVs and specs stop at their limit (here 4 kB, files of 8 kB: a reader that
    ignored the limit would read 8 kB and fail the test, nothing worse)."""
    from ctbench.data.disk_source import read_csv
    from ctbench.experiments.matrix_spec import SpecError, load_spec
    from ctbench.regions.labeler import read_report
    from ctbench.runtime import storage

    for kind in ("report", "table", "spec"):
        monkeypatch.setitem(storage.READ_LIMITS, kind, 4096)
    report, table, spec = (tmp_path / name for name in ("r.txt", "t.csv", "s.toml"))
    report.write_text("Small effusion. " * 512)
    table.write_text("case_id,lung_nodule\n" + "c,0\n" * 2048)
    spec.write_text("# a comment\n" * 1024)
    with pytest.raises(ValueError, match=r"r\.txt: larger than 4096 bytes"):
        read_report(report)
    with pytest.raises(ValueError, match=r"t\.csv: larger than 4096 bytes"):
        read_csv(table, ("case_id",))
    with pytest.raises(SpecError, match=r"s\.toml: larger than 4096 bytes"):
        load_spec(spec)


def test_labels_of_an_endless_file_is_one_error():
    """``ctbench labels /dev/zero`` in a process capped at 2 GiB of address space: the read
    stops at the report limit (1 MiB); a reader without a bound would hit the cap and fail
    this test with MemoryError instead of endangering the machine."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    result = subprocess.run(
        [sys.executable, "-m", "ctbench", "labels", "/dev/zero"],
        capture_output=True, text=True, timeout=120, preexec_fn=cap,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Error: /dev/zero: larger than 1 MiB" in result.stderr
    assert "Traceback" not in result.stderr


# --- 2. one lock per folder ------------------------------------------------------------------


def test_a_held_folder_lock_refuses_a_second_writer_naming_the_holder(tmp_path):
    import socket

    from ctbench.runtime.locks import FolderLockedError, folder_lock

    with folder_lock(tmp_path / "run", what="run folder"):
        with pytest.raises(FolderLockedError) as refused, folder_lock(tmp_path / "run"):
            pass
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and socket.gethostname() in message
        assert time.strftime("%Y-%m-%d") in message and "in use" in message
    assert not (tmp_path / "run" / ".ctbench.lock").exists()  # released and removed
    with folder_lock(tmp_path / "run"):
        pass


HOLD_LOCK = """
import sys, time
from ctbench.runtime.locks import folder_lock
with folder_lock(sys.argv[1], name=sys.argv[2] if len(sys.argv) > 2 else None):
    print("held", flush=True)
    time.sleep(600)
"""


def hold_lock(folder: Path, name: str | None = None) -> subprocess.Popen:
    """Another process holding the lock of ``folder`` until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder), *([name] if name else [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_lock_left_by_a_killed_process_is_recovered(tmp_path):
    from ctbench.runtime.locks import FolderLockedError, folder_lock

    holder = hold_lock(tmp_path / "run")
    try:
        with (
            pytest.raises(FolderLockedError, match=f"pid {holder.pid} on host"),
            folder_lock(tmp_path / "run"),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "run" / ".ctbench.lock").exists()  # SIGKILL left its record behind
    said: list[str] = []
    with folder_lock(tmp_path / "run", log=said.append):
        pass
    assert len(said) == 1 and f"stale lock of pid {holder.pid}" in said[0]


def test_run_and_matrix_refuse_a_folder_in_use(tmp_path, tiny_phantom, monkeypatch):
    """A second ``ctbench run --resume`` or ``ctbench matrix`` on the same folder is refused
    at once, naming the holder, before any work."""
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    holder = hold_lock(tmp_path / "runs" / "r")
    try:
        began = time.perf_counter()
        result = cli(
            "run", "--arch", "axialnet", "--preset", "tiny", "--start", "random",
            "--out", str(tmp_path / "runs"), "--name", "r", "--resume", "--quiet",
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert f"run folder is in use by pid {holder.pid}" in result.output
        assert time.perf_counter() - began < 30
        assert not (tmp_path / "runs" / "r" / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    spec = tmp_path / "spec.toml"
    spec.write_text('[run]\npreset = "tiny"\narch = "axialnet"\nepochs = 1\n')
    holder = hold_lock(tmp_path / "matrix", "matrix")  # the state file matrix.json's lock
    try:
        result = cli("matrix", str(spec), "--out", str(tmp_path / "matrix"))
        assert result.exit_code == 1
        assert f"matrix is in use by pid {holder.pid}" in result.output
        assert not (tmp_path / "matrix" / "matrix.json").exists()
    finally:
        holder.kill()
        holder.wait()


# --- 3. every split validated before training -------------------------------------------------


def split_folder(root: Path, valid_volume_broken: bool = True) -> Path:
    """A folder dataset whose only validation case is unreadable: no usable validation."""
    volumes = {f"c{i}": chest_volume(i) for i in range(4)}
    labels = {cid: {"lung_pleural_effusion": i % 2} for i, cid in enumerate(volumes)}
    write_folder(root, volumes, TINY, labels=labels)
    rows = (root / "labels.csv").read_text().splitlines()
    splits = ["split", "train", "train", "valid", "test"]
    (root / "labels.csv").write_text(
        "\n".join(f"{row},{split}" for row, split in zip(rows, splits, strict=True)) + "\n"
    )
    if valid_volume_broken:
        (root / "volumes" / "c2.nii.gz").write_bytes(b"\x1f\x8b truncated")
    return root


def test_an_empty_split_fails_data_check_and_stops_a_run_before_training(tmp_path, monkeypatch):
    from ctbench.data.checks import EmptySplitError
    from ctbench.experiments.run_config import RunConfig
    from ctbench.experiments.runs import execute_run

    root = split_folder(tmp_path / "data")
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    result = cli("data", "check", "folder", "--data-root", str(root), "--preset", "tiny")
    assert result.exit_code == 1
    assert "empty split(s): valid (1 case(s) skipped)" in result.output
    assert "usable: train 2, valid 0, test 1" in result.output
    config = RunConfig(
        arch="axialnet", dataset="folder", data_root=str(root), preset="tiny", start="random",
        epochs=1, explainers=(),
    )  # fmt: skip
    with pytest.raises(EmptySplitError, match=r"'folder': empty split\(s\): valid"):
        execute_run(config, tmp_path / "run", progress=False, log=lambda _m: None)
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before any training


# --- 4. safe names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../escape", "path separator"),
        ("/tmp/abs", "path separator"),
        ("..", "starts with a dot"),
        ("a\x00b", "control character"),
        ("", "empty"),
        ("x" * 201, "longer than 200 bytes"),
    ],
)
def test_names_that_would_leave_their_folder_are_refused(name, problem):
    from ctbench.experiments.matrix_spec import SpecError, parse_spec
    from ctbench.runtime.storage import UnsafeNameError, safe_name

    with pytest.raises(UnsafeNameError, match=problem):
        safe_name(name, "name")
    with pytest.raises(SpecError, match=problem):
        parse_spec(f"name = {json.dumps(name)}\n[run]\npreset = 'tiny'\n", "spec.toml")


def test_matrix_spec_name_cannot_write_outside_the_matrices_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "../../escaped"\n[run]\npreset = "tiny"\narch = "axialnet"\n')
    result = cli("matrix", str(spec), "--dry-run")
    assert result.exit_code == 1 and "path separator" in result.output
    spec.write_text('name = "a\\u0000b"\n[run]\npreset = "tiny"\n')
    result = cli("matrix", str(spec))
    assert result.exit_code == 1 and "\x00" not in result.output
    assert "'a\\x00b'" in result.output and "Traceback" not in result.output
    assert not any(tmp_path.parent.glob("escaped*")) and not (tmp_path / "matrices").exists()


def test_run_name_and_preset_are_file_names(tmp_path):
    result = cli("run", "--arch", "axialnet", "--name", "../x", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 1 and "--name '../x' cannot be a file name" in result.output
    result = cli("run", "--arch", "axialnet", "--preset", "../../x", "--out", str(tmp_path))
    assert result.exit_code == 1 and "unknown preset '../../x'" in result.output
    assert list(tmp_path.iterdir()) == []
    from ctbench.experiments.run_config import RunConfig
    from ctbench.runtime.storage import UnsafeNameError

    # a dataset that declares no presets takes any name: the folder name still refuses it
    with pytest.raises(UnsafeNameError, match="path separator"):
        RunConfig(arch="axialnet", dataset="x", preset="../../x").folder_name()


def test_a_case_id_that_is_not_a_file_name_is_skipped_not_written(tmp_path):
    from ctbench.core.cases import Case, InvalidCaseError
    from ctbench.data.volume_cache import VolumeCache

    cache = VolumeCache(tmp_path / "cache", {"dataset": "x"}, (4, 8, 8))
    case = Case("../../outside", np.zeros((4, 8, 8), np.int16), TINY, np.zeros(1, bool))
    with pytest.raises(
        InvalidCaseError, match=r"case id '\.\./\.\./outside' cannot be a file name"
    ):
        cache.store(case)
    assert not list(tmp_path.rglob("outside*"))


# --- 5. report and table on matrices and empty folders --------------------------------------


def fake_matrix(out: Path, finished_run: Path, spec: dict) -> Path:
    """A matrix folder holding one finished cell (a copy of a finished run)."""
    import shutil

    shutil.copytree(finished_run, out / "cell")
    cells = [{"folder": "cell", "status": "done", "seconds": 12.5, "error": None}]
    (out / "matrix.json").write_text(json.dumps({"spec": spec, "cells": cells}))
    return out


def test_report_of_a_matrix_whose_spec_names_no_table(tmp_path, finished_run):
    out = fake_matrix(tmp_path / "m", finished_run, {"name": "m", "run": {}})
    result = cli("report", str(out), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    assert "--table" not in result.output and (tmp_path / "r.html").is_file()
    result = cli("table", str(out))
    assert result.exit_code == 1 and "choose with --table (1, 2, 5, 7" in result.output


def test_table_of_an_empty_folder_says_there_is_no_run(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("table", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert "no finished run folder" in result.output and "spec" not in result.output


# --- 6. matrix size ------------------------------------------------------------------------


def test_a_million_cell_spec_is_refused_before_it_is_expanded(tmp_path, monkeypatch):
    import ctbench.experiments.matrix_spec as matrix_spec

    def expanded(*_args):
        raise AssertionError("a cell was expanded")

    monkeypatch.setattr(matrix_spec, "make_cell", expanded)
    seeds = list(range(1000))
    spec = tmp_path / "big.toml"
    spec.write_text(f'[run]\npreset = "tiny"\n[axes]\nseed = {seeds}\nepochs = {seeds}\n')
    began = time.perf_counter()
    result = cli("matrix", str(spec), "--dry-run")
    assert time.perf_counter() - began < 5
    assert result.exit_code == 1
    assert "1000 seed x 1000 epochs = 1,000,000 cells" in result.output
    assert "--max-cells" in result.output


def test_max_cells_raises_the_limit(tmp_path):
    spec = tmp_path / "six.toml"
    spec.write_text(
        '[run]\npreset = "tiny"\narch = "axialnet"\n[axes]\nseed = [0, 1, 2, 3, 4, 5]\n'
    )
    refused = cli("matrix", str(spec), "--dry-run", "--max-cells", "5")
    assert refused.exit_code == 1 and "6 cells, more than the limit of 5" in refused.output
    allowed = cli("matrix", str(spec), "--dry-run", "--max-cells", "6")
    assert allowed.exit_code == 0 and "6 cells in" in allowed.output


# --- 7. a full disk --------------------------------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write goes to /dev/full: the kernel answers ENOSPC, as on a full disk."""
    import tempfile

    from ctbench.runtime import storage

    made: list[str] = []

    def mkstemp(prefix="", suffix="", dir=None):
        name = os.path.join(dir, f"{prefix}full{suffix}")
        Path(name).touch()
        made.append(name)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(storage.tempfile, "mkstemp", mkstemp)
    yield made
    monkeypatch.setattr(storage.tempfile, "mkstemp", tempfile.mkstemp)


def test_a_full_disk_is_one_error_and_leaves_nothing_behind(tmp_path, full_disk):
    import torch
    from ctbench.runtime.checkpoints import save_checkpoint
    from ctbench.runtime.storage import DiskFullError, write_json

    model = torch.nn.Linear(300, 300)
    with pytest.raises(DiskFullError) as full:
        save_checkpoint(tmp_path / "last.pt", model, arch="x", input_shape=(1, 3, 8, 8),
                        label_names=["a"])  # fmt: skip
    assert full.value.errno == errno.ENOSPC
    assert str(full.value).startswith(f"{tmp_path / 'last.pt'}: the disk is full")
    assert "\n" not in str(full.value) and "unexpected pos" not in str(full.value)
    with pytest.raises(DiskFullError):
        write_json(tmp_path / "metrics.json", {"a": list(range(10000))})
    assert full_disk and not any(Path(name).exists() for name in full_disk)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_from_the_command_line_is_one_line(tmp_path, full_disk):
    volume = tmp_path / "chest.npz"
    np.savez(volume, ct=chest_volume(), spacing=np.array(TINY))
    result = CliRunner().invoke(main, ["segment", str(volume), "--out", str(tmp_path / "m.npz")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith(f"Error: {tmp_path / 'm.npz'}: the disk is full")
    assert "Traceback" not in result.output and not (tmp_path / "m.npz").exists()


# --- 8. finite floats ------------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [("--lambda", "nan"), ("--lambda", "inf"),
                                           ("--lr", "nan"), ("--lr", "inf")])  # fmt: skip
def test_non_finite_floats_are_refused_at_parse_time(tmp_path, option, value):
    result = cli("run", "--arch", "axialnet", option, value, "--out", str(tmp_path))
    assert result.exit_code == 2 and "is not a finite number" in result.output
    assert list(tmp_path.iterdir()) == []


def test_run_config_refuses_non_finite_floats():
    from ctbench.experiments.run_config import RunConfig

    with pytest.raises(ValueError, match="mask_lambda must be a finite number"):
        RunConfig(arch="axialnet", preset="tiny", mask_lambda=float("nan")).resolved()


# --- 9. a labels.csv without label columns ----------------------------------------------------


def test_labels_csv_without_a_label_column_fails_data_check(tmp_path):
    root = tmp_path / "data"
    write_folder(root, {"c0": chest_volume()}, TINY)
    (root / "labels.csv").write_text("case_id,patient\nc0,p0\n")
    result = cli("data", "check", "folder", "--data-root", str(root), "--preset", "tiny")
    assert result.exit_code == 1 and "labels.csv: no label column" in result.output


# --- 10. no lung, no invented masks ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 64, 64), (1, 1, 1)])
def test_segment_refuses_a_volume_without_lungs(tmp_path, shape):
    path = tmp_path / "air.npy"
    np.save(path, np.full(shape, -1000, np.int16))
    result = cli("segment", str(path), "--out", str(tmp_path / "masks.npz"))
    assert result.exit_code == 1 and "no lung found" in result.output
    assert not (tmp_path / "masks.npz").exists()


def test_a_case_without_lungs_is_what_a_run_skips():
    """PARTITION raises the segmenter's NoLungError, an InvalidCaseError: the case is skipped
    and listed by check_cases, never given invented halves."""
    from ctbench.core.cases import Case, InvalidCaseError
    from ctbench.data.preprocess import Preprocessing
    from ctbench.regions.partition import AllowedRegions
    from ctbench.regions.segmentation import NoLungError

    regions = AllowedRegions(["lung_nodule"], (3, 2, 2), Preprocessing(volume_shape=(9, 16, 16)))
    air = Case("air", np.full((9, 16, 16), -1000, np.int16), TINY, np.ones(1, bool),
               report="Lung nodule.")  # fmt: skip
    with pytest.raises(NoLungError) as error:
        regions(air)
    assert isinstance(error.value, InvalidCaseError)


# --- 11. no orphaned temporaries ------------------------------------------------------------


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    from ctbench.experiments.runs import run_lock
    from ctbench.runtime.distributed import Distributed
    from ctbench.runtime.storage import TEMPORARY, _host, write_json

    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    old = checkpoints / ".last.pt.abc123.tmp"  # an older ctbench's name: no writer recorded
    killed = checkpoints / f".last.pt.{dead}@{_host()}.k1ll3d.tmp"
    live = checkpoints / f".best.pt.{os.getppid()}@{_host()}.l1ve00.tmp"
    for path in (old, killed, live):
        path.write_bytes(b"\0" * 1024)
    assert TEMPORARY.match(killed.name) and TEMPORARY.match(live.name)
    said: list[str] = []
    with run_lock(tmp_path / "run", Distributed(), said.append):
        pass
    assert not old.exists() and not killed.exists() and live.exists()
    assert said == ["removed 2 temporary file(s) a killed run left behind"]
    # any atomic write sweeps its folder once: a killed writer's temporary goes
    killed.write_bytes(b"\0")
    write_json(checkpoints / "x.json", {})
    assert not killed.exists() and live.exists()


# --- 12. messages ---------------------------------------------------------------------------


def test_non_utf8_csv_names_the_exact_byte(tmp_path):
    from ctbench.data.disk_source import read_csv

    path = tmp_path / "labels.csv"
    rows = [f"case{i},0" for i in range(30000)]  # far past pandas' first read chunk
    text = "case_id,lung_nodule\n" + "\n".join(rows) + "\n"
    position = len(text.encode())
    path.write_bytes(text.encode() + b"caf\xe9,1\n")
    with pytest.raises(ValueError) as error:
        read_csv(path, ("case_id",))
    assert f"byte 0xe9 at position {position + 3}, line 30002" in str(error.value)


def test_a_duplicated_case_id_is_said_once_as_repeated(tmp_path):
    import ctbench

    root = tmp_path / "data"
    write_folder(root, {"c0": chest_volume(), "c1": chest_volume(1)}, TINY,
                 labels={"c0": {"lung_nodule": 1}, "c1": {"lung_nodule": 0}})  # fmt: skip
    with (root / "labels.csv").open("a") as handle:
        handle.write("c0,0\n")
    source = ctbench.create_dataset("folder", data_root=root, preset="tiny")
    said = [p for p in source.problems if p["case_id"] == "c0"]
    assert len(said) == 1 and "several rows" in said[0]["error"]


def test_labels_without_an_argument_asks_for_one():
    result = cli("labels")
    assert result.exit_code == 2
    assert "give a REPORT file or --text" in result.output and "not both" not in result.output
    result = cli("labels", "/dev/null", "--text", "x")
    assert result.exit_code == 2 and "not both" in result.output


def test_a_stray_file_in_a_dicom_series_is_skipped_and_named(tmp_path):
    from ctbench.data.io import SkippedFileWarning, load_volume

    volume = chest_volume()
    folder = write_dicom_series(tmp_path / "series", volume, TINY)
    (folder / "README.txt").write_text("exported by the PACS")
    with pytest.warns(SkippedFileWarning, match=r"README\.txt: not a DICOM image slice"):
        loaded, spacing = load_volume(folder)
    assert loaded.shape == volume.shape and spacing == pytest.approx(TINY)


def test_a_matrix_rerun_keeps_a_skipped_cells_recorded_time(tmp_path, finished_run):
    import shutil

    from ctbench.experiments.matrix import plan_matrix, run_matrix
    from ctbench.experiments.matrix_spec import expand_cells, parse_spec

    spec = parse_spec('[run]\narch = "axialnet"\npreset = "tiny"\n', "spec.toml")
    cells = expand_cells(spec)
    out = tmp_path / "m"
    shutil.copytree(finished_run, out / cells[0].folder)
    earlier = {**cells[0].to_json(), "status": "done", "seconds": 42.5, "run_seconds": 40.0,
               "started": 1.0, "log": "logs/x.log"}  # fmt: skip
    (out / "matrix.json").write_text(json.dumps({"spec": spec.to_json(), "cells": [earlier]}))
    state = run_matrix(plan_matrix(spec, cells, out), log=lambda _m: None)
    (cell,) = state["cells"]
    assert cell["status"] == "skipped" and cell["seconds"] == 42.5
    assert cell["run_seconds"] == 40.0 and cell["started"] == 1.0
    assert json.loads((out / "matrix.json").read_text())["cells"][0]["seconds"] == 42.5


# --- beyond the probe's list ----------------------------------------------------------------


def forged_nifti(path: Path) -> Path:
    """A small NIfTI whose header claims 32767^3 voxels (a few hundred bytes on disk)."""
    import nibabel as nib

    data = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)).to_bytes()
    header = bytearray(data)
    for offset in (42, 44, 46):  # dim[1], dim[2], dim[3] (int16, little endian)
        header[offset : offset + 2] = (32767).to_bytes(2, "little")
    path.write_bytes(bytes(header))
    return path


def forged_npz(path: Path) -> Path:
    """An .npz whose 'ct' header claims 32767^3 int16 voxels and holds 8 bytes."""
    import io
    import zipfile

    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<i2", "fortran_order": False, "shape": (32767, 32767, 32767)}
    )
    member.write(b"\0" * 8)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ct.npy", member.getvalue())
    return path


def test_forged_volume_headers_are_refused_before_any_allocation(tmp_path):
    from ctbench.core.cases import InvalidCaseError
    from ctbench.data.io import load_volume

    for path in (forged_nifti(tmp_path / "big.nii"), forged_npz(tmp_path / "big.npz")):
        with pytest.raises(InvalidCaseError, match=r"32767x32767x32767 = .* voxels, more than"):
            load_volume(path)


def test_model_and_explain_shapes_are_bounded(tmp_path):
    result = cli("model", "axialnet", "--input-shape", "100000,3,100000,100000")
    assert result.exit_code == 1 and "more than ctbench builds models for" in result.output
    result = cli("explain", "--arch", "axialnet", "--preset", "tiny", "--label", "lung_nodule",
                 "--volume-shape", "99999,100000,100000", "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 2 and "voxels" in result.output


@pytest.mark.parametrize("seed", ["-5", "99999999999999999999999"])
def test_seeds_outside_the_generators_range_are_usage_errors(tmp_path, seed):
    result = cli("run", "--arch", "axialnet", "--seed", seed, "--out", str(tmp_path))
    assert result.exit_code == 2 and "0<=x<=4294967295" in result.output


def test_an_emptied_axis_is_refused(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('[run]\npreset = "tiny"\narch = "axialnet"\n[axes]\nseed = [0, 1]\n')
    result = cli("matrix", str(spec), "--set", "axes.seed=[]", "--dry-run")
    assert result.exit_code == 1 and "an axis needs at least one value" in result.output


def test_pipes_in_a_dataset_folder_are_listed_not_opened(tmp_path):
    import ctbench

    root = tmp_path / "data"
    write_folder(root, {"c0": chest_volume()}, TINY, labels={"c0": {"lung_nodule": 1}})
    (root / "reports").mkdir()
    os.mkfifo(root / "reports" / "c0.txt")  # opening it would block for ever
    source = ctbench.create_dataset("folder", data_root=root, preset="tiny")
    assert [p["error"] for p in source.problems] == [f"{root}/reports/c0.txt: not a regular file"]


def test_paths_that_exist_but_are_not_files_say_so(tmp_path):
    result = cli("explain", "--checkpoint", "/dev/zero", "--label", "x", "--out", str(tmp_path))
    assert result.exit_code == 1 and "/dev/zero: not a regular file" in result.output


def test_a_foreign_matrix_state_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    state = {"spec": {}, "cells": [{"folder": "../../x", "status": "done"}]}
    (tmp_path / "m" / "matrix.json").write_text(json.dumps(state))
    result = cli("matrix", "--status", str(tmp_path / "m"))
    assert result.exit_code == 1 and "cell folder '../../x' cannot be a file name" in result.output
    result = cli("table", str(tmp_path / "m"), "--table", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_a_result_is_never_written_over_a_device_or_a_folder(tmp_path, finished_run):
    """As root, renaming a result onto /dev/null would replace the device node itself."""
    from ctbench.runtime.storage import NotARegularFileError, write_text

    for target in (Path("/dev/null"), tmp_path):
        with pytest.raises(NotARegularFileError, match=r"not a regular file|a folder"):
            write_text(target, "x")
    assert Path("/dev/null").is_char_device()
    result = cli("table", str(finished_run), "--table", "1", "--out", "/dev/null")
    assert result.exit_code == 1 and "/dev/null: not a regular file" in result.output
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("spacing", [1000.0, float("nan"), 0.0])
def test_an_implausible_spacing_is_refused_before_resampling(spacing):
    """A 20^3 volume whose header says 1000 mm voxels would be resampled to 4000^3 at 5 mm."""
    from ctbench.core.cases import InvalidCaseError
    from ctbench.data.io import resample

    with pytest.raises(InvalidCaseError, match=r"voxel spacing .* is not a CT's"):
        resample(np.zeros((20, 20, 20), np.int16), (spacing,) * 3, TINY)


def test_a_resampled_volume_above_the_voxel_cap_is_refused():
    from ctbench.core.cases import InvalidCaseError
    from ctbench.data.io import check_spacing

    with pytest.raises(InvalidCaseError, match="more than ctbench reads"):
        check_spacing((40.0, 40.0, 40.0), (600, 600, 600), (0.8, 0.8, 0.8), "big.nii")


def test_deeply_nested_specs_and_json_are_one_error(tmp_path, finished_run):
    import shutil

    spec = tmp_path / "deep.toml"
    spec.write_text("v = " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = cli("matrix", str(spec), "--dry-run")
    assert result.exit_code == 1 and "nested too deeply to be a spec" in result.output
    shutil.copytree(finished_run, tmp_path / "runs" / "r")
    (tmp_path / "runs" / "r" / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    result = cli("table", str(tmp_path / "runs"), "--table", "1")
    assert result.exit_code == 1 and "nested too deeply to be ctbench's JSON" in result.output


def test_an_empty_device_id_is_a_usage_error(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('[run]\npreset = "tiny"\narch = "axialnet"\n')
    result = cli("matrix", str(spec), "--devices", ",,", "--out", str(tmp_path / "m"))
    assert result.exit_code == 2 and "an empty device id" in result.output


def test_a_lock_file_planted_as_a_link_is_never_written_through(tmp_path):
    from ctbench.runtime.locks import FolderLockedError, folder_lock

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".ctbench.lock").symlink_to(victim)
    with (
        pytest.raises(FolderLockedError, match="the lock file is a symbolic link"),
        folder_lock(tmp_path / "run"),
    ):
        pass
    assert victim.read_text() == "precious"


def test_an_unknown_preset_is_refused_before_any_work(tmp_path):
    result = cli("run", "--arch", "axialnet", "--preset", "Tiny", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown preset 'Tiny' for dataset 'phantom'; its presets: tiny" in result.output
    assert list(tmp_path.iterdir()) == []
