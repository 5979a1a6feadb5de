"""ctbench matrix: specs -> cells (the folders ``ctbench run`` gives), and running them: skip,
resume, failures recorded, changed specs, parallel jobs, shards, submitit's local executor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ctbench.experiments.matrix_spec import (
    MATRIX_OWNED,
    SpecError,
    apply_settings,
    expand_cells,
    load_spec,
    parse_spec,
    shard_cells,
    shipped_specs,
)
from ctbench.experiments.run_config import RunConfig

ISSUE_SPEC = """
[run]
preset = "tiny"
epochs = 1
[axes]
arch = ["axialnet", "bodycam"]
explainer = [["hirescam", "gradcam"]]
mask_loss = [false, true]
seed = [0, 1]
"""

FAST = """
[run]
preset = "tiny"
start = "random"
epochs = 1
overlays = 0
explainer = ["hirescam"]
arch = "axialnet"
[axes]
seed = [0, 1]
"""


def test_issue_spec_crosses_to_the_folders_ctbench_run_gives():
    cells = expand_cells(parse_spec(ISSUE_SPEC, "issue.toml"))
    assert len(cells) == 8
    expected = [
        RunConfig(
            arch=arch,
            explainers=("hirescam", "gradcam"),
            preset="tiny",
            epochs=1,
            mask_loss=mask,
            seed=seed,
        )
        .resolved()
        .folder_name()
        for arch in ("axialnet", "bodycam")
        for mask in (False, True)
        for seed in (0, 1)
    ]
    assert [c.folder for c in cells] == expected
    assert cells[1].args == [
        "--preset", "tiny", "--epochs", "1", "--arch", "axialnet", "--explainer", "hirescam",
        "--explainer", "gradcam", "--no-mask-loss", "--seed", "1",
    ]  # fmt: skip


def test_exclude_include_and_dashed_or_field_names():
    spec = parse_spec(
        ISSUE_SPEC
        + '[[exclude]]\narch = "bodycam"\nmask_loss = true\n'
        + '[[include]]\narch = "ctnet"\nexplainer = []\nlambda = 1.0\n',
        "s.toml",
    )
    cells = expand_cells(spec)
    archs = [(c.config.arch, c.config.mask_loss) for c in cells]
    assert ("bodycam", True) not in archs and len(cells) == 8 - 2 + 1
    assert cells[-1].config.arch == "ctnet" and cells[-1].config.mask_lambda == 1.0
    assert cells[-1].config.explainers == ("hirescam", "gradcam")  # empty: the default
    base = parse_spec(
        '[run]\npreset="tiny"\nmask_loss=true\n[axes]\narch=["axialnet","bodycam"]\n'
        '[[exclude]]\narch="bodycam"\nmask_loss=true\n',
        "s",
    )
    assert [c.config.arch for c in expand_cells(base)] == ["axialnet"]  # a base option matches
    both = expand_cells(parse_spec('[run]\npreset="tiny"\narch="axialnet"\nmask_lambda=2.0', "s"))
    assert both[0].config.mask_lambda == 2.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[run]\narch = "axialnet"\nbogus = 1', "unknown run option 'bogus'"),
        ('[run]\narch = "resnet-99"', "resnet-99"),
        ('[run]\narch = "axialnet"\nepochs = -1', "epochs"),
        ('[run]\narch = "axialnet"\nout = "x"', "set by the matrix"),
        ("[axes]\narch = []", "non-empty list"),
        ("[run\n", "not valid TOML"),
        ("[cells]\n", "unknown section"),
    ],
)
def test_bad_specs_name_the_file_and_the_problem(text, message):
    with pytest.raises(SpecError, match=r"bad\.toml") as caught:
        expand_cells(parse_spec(text, "bad.toml"))
    assert message in str(caught.value)


def test_cell_arguments_give_ctbench_run_the_same_config():
    """A cell is built without click; its --cell-args, parsed by ctbench run's own parser,
    resolve to the same config (so the matrix and the command line cannot drift apart)."""
    from ctbench.cli.commands.run import config_from_options, run

    spec = parse_spec(
        ISSUE_SPEC + '[[include]]\narch = "axialnet"\nlambda = 2\nseed = "3"\nstart = "random"\n',
        "s",
    )
    cells = expand_cells(spec)
    assert cells[-1].config.mask_lambda == 2.0 and cells[-1].config.seed == 3
    for cell in cells:
        with run.make_context("run", list(cell.args)) as context:
            params = {k: v for k, v in context.params.items() if k not in MATRIX_OWNED}
        assert config_from_options(params) == cell.config, cell.args


def test_a_matrix_expands_without_the_command_line(tmp_path):
    code = (
        "import sys\n"
        "from ctbench.experiments.matrix_spec import expand_cells, load_spec\n"
        "cells = expand_cells(load_spec('paper-table2'))\n"
        "assert cells and 'click' not in sys.modules and 'ctbench.cli' not in sys.modules, "
        "sorted(m for m in sys.modules if 'click' in m or 'ctbench.cli' in m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arch": "axialnet", "seed": -1}, "--seed: -1 is not in the range 0 to"),
        ({"arch": "axialnet", "lr": 0}, "--lr: must be above 0"),
        ({"arch": "axialnet", "lambda": float("nan")}, "--lambda: nan is not a finite number"),
        ({"arch": "axialnet", "optimizer": "rmsprop"}, "--optimizer: 'rmsprop' is not one of"),
        ({"arch": "axialnet", "mask_loss": "yes"}, "--mask-loss: expected true or false"),
        ({"arch": "axialnet", "epochs": 1.5}, "--epochs: expected an integer"),
        ({"arch": "axialnet", "explainer": "hirescm"}, "--explainer: unknown explainer"),
        ({"arch": "axialnet", "data_root": "/no/such"}, "--data-root: /no/such is not an"),
        ({"arch": "axialnet", "start": "random", "pretrained": True}, "give either --start"),
        ({"arch": "axialnet", "preset": "huge"}, "unknown preset 'huge' for dataset 'phantom'"),
    ],
)
def test_cell_values_are_checked_by_the_fields_rules(options, message):
    from ctbench.experiments.run_options import config_from_options

    with pytest.raises(ValueError, match=re.escape(message)):
        config_from_options(options)


def test_settings_override_base_options_and_axes():
    spec = apply_settings(parse_spec(ISSUE_SPEC, "s"), ["preset=default", "axes.seed=[3, 4, 5]"])
    cells = expand_cells(spec)
    assert {c.config.preset for c in cells} == {"default"}
    assert sorted({c.config.seed for c in cells}) == [3, 4, 5] and len(cells) == 12
    pinned = expand_cells(apply_settings(parse_spec(ISSUE_SPEC, "s"), ["seed=7"]))
    assert {c.config.seed for c in pinned} == {7} and len(pinned) == 4


def test_shards_are_disjoint_deterministic_and_cover_every_cell():
    cells = expand_cells(parse_spec(ISSUE_SPEC, "s"))
    shares = [shard_cells(cells, (i, 3)) for i in (1, 2, 3)]
    folders = [c.folder for share in shares for c in share]
    assert sorted(folders) == sorted(c.folder for c in cells) and len(set(folders)) == 8
    again = expand_cells(parse_spec(ISSUE_SPEC, "s"))
    assert [c.folder for c in shard_cells(again, (2, 3))] == [c.folder for c in shares[1]]


def test_shipped_specs_expand_on_every_preset():
    names = shipped_specs()
    for expected in ("paper-table1", "paper-table2", "paper-table5", "paper-table7"):
        assert expected in names
    counts = {"paper-table1": 8, "table1": 10, "paper-table2": 2, "paper-table5": 6}
    counts["paper-table7"] = 2
    for name, count in counts.items():
        for preset in ("tiny", "default", "paper"):
            cells = expand_cells(apply_settings(load_spec(name), [f"preset={preset}"]))
            assert len(cells) == count and {c.config.preset for c in cells} == {preset}
    table1 = expand_cells(load_spec("paper-table1"))
    assert {c.config.arch for c in table1} == {
        "ctnet", "3dconv", "bodyconv", "bodycam", "axialnet-maxpool", "axialnet-randinit",
        "axialnet-nocustomconv", "axialnet",
    }  # fmt: skip
    assert all(c.config.explainers == ("gradcam", "hirescam") for c in table1)
    ours = {c.config.arch for c in expand_cells(load_spec("table1"))}
    assert ours == {c.config.arch for c in table1} | {"hu-histogram", "axialnet-ms"}
    table5 = expand_cells(load_spec("paper-table5"))
    assert {(c.config.downsampler, c.config.dilate) for c in table5} == {
        (d, dilate) for d in ("area", "trilinear", "nearest") for dilate in (False, True)
    }
    assert all(c.config.mask_loss for c in table5)
    timing = {c.config.arch: c.config for c in expand_cells(load_spec("timing"))}
    assert len(timing) == 8 and timing["3dconv"].head_epochs == 0  # no backbone to freeze
    assert {c.head_epochs for a, c in timing.items() if a != "3dconv"} == {2}


def test_third_party_plugins_take_part(example_plugin):
    cells = expand_cells(
        parse_spec('[run]\npreset = "tiny"\n[axes]\narch = ["example-tinynet"]', "s")
    )
    assert cells[0].config.arch == "example-tinynet"


@pytest.fixture
def cache_env(tiny_phantom, monkeypatch):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))


def invoke(*args):
    from ctbench.cli import main

    return CliRunner().invoke(main, ["matrix", *args], catch_exceptions=False)


def test_matrix_runs_skips_resumes_and_records_failures(cache_env, tmp_path):
    spec = tmp_path / "fast.toml"
    # ctnet is not explainable: with the mask loss it fails at once, and must not stop the others
    spec.write_text(FAST + '[[include]]\narch = "ctnet"\nmask_loss = true\n')
    out = tmp_path / "m"
    first = invoke(str(spec), "--out", str(out))
    assert first.exit_code == 1, first.output
    state = json.loads((out / "matrix.json").read_text())
    statuses = [c["status"] for c in state["cells"]]
    assert statuses == ["done", "done", "failed"] and state["summary"]["failed"] == 1
    failed = state["cells"][2]
    assert "not explainable" in failed["error"]
    assert "Traceback" in Path(failed["log"]).read_text()
    assert "failed: ctnet" in first.output
    for cell in state["cells"][:2]:
        assert (out / cell["folder"] / "metrics.json").is_file()
        assert cell["overhead_seconds"] < 2.0 and cell["run_seconds"] > 0
    # a finished cell is skipped; an unfinished one (no metrics.json) is resumed
    (out / state["cells"][1]["folder"] / "metrics.json").unlink()
    spec.write_text(FAST)
    second = invoke(str(spec), "--out", str(out), "--replace")
    assert second.exit_code == 0, second.output
    again = json.loads((out / "matrix.json").read_text())
    assert [c["status"] for c in again["cells"]] == ["skipped", "done"]
    assert [c["action"] for c in again["cells"]] == ["skip", "resume"]
    assert "resuming" in Path(again["cells"][1]["log"]).read_text()
    status = invoke("--status", str(out))
    assert "1 done" in status.output and "1 skipped" in status.output


def test_changed_spec_says_what_it_drops_and_adds(cache_env, tmp_path):
    spec = tmp_path / "fast.toml"
    spec.write_text(FAST.replace("seed = [0, 1]", "seed = [0]"))
    out = tmp_path / "m"
    assert invoke(str(spec), "--out", str(out)).exit_code == 0
    spec.write_text(FAST.replace("seed = [0, 1]", "seed = [1]"))
    refused = invoke(str(spec), "--out", str(out))
    assert refused.exit_code == 1 and "drops 1 cell" in refused.output
    assert "seed0" in refused.output and "--replace" in refused.output
    dry = invoke(str(spec), "--out", str(out), "--dry-run")
    assert "seed1" in dry.output and "drops" in dry.output
    spec.write_text(FAST)  # a superset: adds seed 1, drops nothing
    grown = invoke(str(spec), "--out", str(out))
    assert grown.exit_code == 0 and "adds 1 cell" in grown.output
    assert "1 done, 0 failed, 1 skipped" in grown.output


@pytest.mark.slow
def test_parallel_jobs_split_threads_and_match_one_job(cache_env, tmp_path):
    """Two worker processes, each with half the threads, give the numbers of one process with
    that many threads (the thread count changes float sums, so it must match)."""
    import torch

    spec = tmp_path / "fast.toml"
    spec.write_text(FAST)
    threads = max(1, (os.cpu_count() or 1) // 2)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        serial = invoke(str(spec), "--out", str(tmp_path / "one"))
    finally:
        torch.set_num_threads(before)
    parallel = invoke(str(spec), "--out", str(tmp_path / "two"), "--jobs", "2")
    assert serial.exit_code == 0 and parallel.exit_code == 0, parallel.output
    for cell in json.loads((tmp_path / "one" / "matrix.json").read_text())["cells"]:
        one = json.loads((tmp_path / "one" / cell["folder"] / "metrics.json").read_text())
        two = json.loads((tmp_path / "two" / cell["folder"] / "metrics.json").read_text())
        assert two["auroc"] == pytest.approx(one["auroc"], abs=1e-6)
        assert two["config"]["machine"]["torch_threads"] == threads


@pytest.mark.slow
def test_submitit_local_launcher_runs_and_tracks_cells_as_jobs(cache_env, tmp_path, monkeypatch):
    """The slurm path through submitit's local executor; the job logs its run to MLflow."""
    pytest.importorskip("submitit", reason="the slurm extra is not installed")
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow puts a new experiment's artifacts under ./mlruns
    spec = tmp_path / "fast.toml"
    spec.write_text(FAST.replace("seed = [0, 1]", "seed = [0]"))
    out = tmp_path / "m"
    result = invoke(
        str(spec), "--out", str(out), "--launcher", "submitit-local", "--track", "mlflow"
    )
    assert result.exit_code == 0, result.output
    (cell,) = json.loads((out / "matrix.json").read_text())["cells"]
    assert cell["status"] == "done" and cell["job_id"]
    assert (out / cell["folder"] / "metrics.json").is_file() and (out / "submitit").is_dir()
    (run,) = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("ctbench").experiment_id]
    )
    assert run.info.run_name == cell["folder"]


def test_a_worker_takes_one_device_and_its_share_of_threads(monkeypatch):
    """--devices: each worker process pops one device for CUDA_VISIBLE_DEVICES at start."""
    import multiprocessing

    import torch
    from ctbench.experiments.matrix import _init_worker

    queue = multiprocessing.get_context("spawn").Queue()
    queue.put("1")
    before = torch.get_num_threads()
    for name in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    try:
        _init_worker(1, queue)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1" and os.environ["OMP_NUM_THREADS"] == "1"
        assert torch.get_num_threads() == 1 and queue.empty()
    finally:
        torch.set_num_threads(before)


def test_cell_args_give_one_cell_to_a_job_and_torchrun_is_refused(tmp_path, monkeypatch):
    """Slurm job arrays run one cell per task (`--cell-args I`, docs/slurm); a whole matrix
    under torchrun is refused with that recipe instead of running every cell on every rank."""
    import shlex

    from ctbench.experiments.matrix import plan_matrix
    from ctbench.experiments.matrix_spec import apply_settings, expand_cells, load_spec

    spec = load_spec("paper-table1")
    apply_settings(spec, ["preset=tiny"])
    plan = plan_matrix(spec, expand_cells(spec), tmp_path / "t1")
    for number in (1, len(plan.cells)):
        printed = invoke("paper-table1", "--preset", "tiny", "--out", str(tmp_path / "t1"),
                         "--cell-args", str(number))  # fmt: skip
        expected = [*plan.cells[number - 1].args, "--out", str(tmp_path / "t1")]
        assert shlex.split(printed.output) == expected
    beyond = invoke("paper-table1", "--cell-args", str(len(plan.cells) + 1))
    assert beyond.exit_code == 2 and f"has {len(plan.cells)} cells" in beyond.output
    monkeypatch.setenv("WORLD_SIZE", "2")
    refused = invoke("paper-table1", "--preset", "tiny", "--out", str(tmp_path / "t1"))
    assert refused.exit_code == 1 and "--cell-args" in refused.output
    assert not (tmp_path / "t1").exists()
