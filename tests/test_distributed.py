"""torchrun and DDP: global batches, sharded evaluation, a 2-process run against 1 process,
resume under torchrun, and a failing rank that stops the job."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ctbench.runtime.distributed import (
    Distributed,
    GlobalBatchSampler,
    global_permutation,
    shard,
)
from torch.utils.data import DataLoader


def ranks(world: int) -> list[Distributed]:
    return [Distributed(rank=r, world_size=world) for r in range(world)]


def test_one_process_visits_cases_in_the_seeded_dataloader_order():
    loader = DataLoader(
        list(range(23)), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(7)
    )
    expected = [batch.tolist() for batch in loader]
    sampler = GlobalBatchSampler(23, 4, shuffle=True, seed=7, job=Distributed())
    assert list(sampler) == expected
    assert global_permutation(23, 7) == [i for batch in expected for i in batch]


@pytest.mark.parametrize(("n", "batch", "world"), [(24, 4, 2), (23, 4, 2), (25, 6, 4), (9, 4, 3)])
def test_ranks_split_every_global_batch(n, batch, world):
    single = list(GlobalBatchSampler(n, batch, shuffle=True, seed=3, job=Distributed()))
    parts = [list(GlobalBatchSampler(n, batch, shuffle=True, seed=3, job=j)) for j in ranks(world)]
    assert all(len(p) == len(single) for p in parts)  # every rank takes part in every step
    for step, global_batch in enumerate(single):
        joined = [i for p in parts for i in p[step]]
        assert all(p[step] for p in parts)
        sizes = [len(p[step]) for p in parts]
        assert max(sizes) - min(sizes) <= 1
        if len(global_batch) >= world:
            assert joined == global_batch  # the same cases as one process, no repeat
        else:  # a last batch smaller than the job is topped up from the order's start
            assert joined[: len(global_batch)] == global_batch
            assert len(joined) == world


def test_evaluation_shards_cover_each_case_once_and_merge_in_order():
    from ctbench.evaluate.evaluation import SplitOutputs, merge_shards

    n, labels = 7, 3
    logits = np.arange(n * labels, dtype=float).reshape(n, labels)
    parts = []
    for job in ranks(3):
        index = shard(n, job)
        part = SplitOutputs(
            split="test",
            case_ids=[f"c{i}" for i in index],
            truth=logits[index] > 5,
            logits=logits[index],
            attention={"hirescam": logits[index][:, :, None]},
            lesion_iou={"hirescam": logits[index][None]},  # [T, N, M]
            explain_seconds={"hirescam": 1.0},
        )
        parts.append((index, part))
    assert sorted(i for index, _ in parts for i in index) == list(range(n))
    merged = merge_shards([*parts, ([], None)])  # a fourth rank had no case
    assert merged.case_ids == [f"c{i}" for i in range(n)]
    assert np.array_equal(merged.logits, logits)
    assert np.array_equal(merged.attention["hirescam"][:, :, 0], logits)
    assert np.array_equal(merged.lesion_iou["hirescam"][0], logits)
    assert merged.explain_seconds == {"hirescam": 3.0}


# --- torchrun, 2 gloo processes on the tiny preset ------------------------------------------

RUN = ["run", "--arch", "axialnet", "--preset", "tiny", "--mask-loss", "--overlays", "0"]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *args]


@pytest.fixture(scope="module")
def env(tiny_phantom) -> dict[str, str]:
    return {
        **os.environ,
        "CTBENCH_CACHE_DIR": str(tiny_phantom.folder.parent),
        "OMP_NUM_THREADS": "1",
    }


def finished(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


@pytest.fixture(scope="module")
def single_and_ddp(tmp_path_factory, env) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("ddp")
    single = [sys.executable, "-m", "ctbench", *RUN, "--out", str(out), "--name", "single"]
    finished(subprocess.run(single, env=env, capture_output=True, text=True, timeout=600))
    ddp = torchrun("-m", "ctbench", *RUN, "--out", str(out), "--name", "ddp", "--quiet")
    result = subprocess.run(ddp, env=env, capture_output=True, text=True, timeout=600)
    finished(result)
    assert result.stdout.count("run folder:") == 1  # rank 0 speaks, rank 1 does not
    return out / "single", out / "ddp"


@pytest.mark.slow
def test_two_process_run_writes_one_complete_run_folder(single_and_ddp):
    _, ddp = single_and_ddp
    config = json.loads((ddp / "config.json").read_text())
    assert config["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert config["device"]["device"] == "cpu"
    for name in ("metrics.json", "predictions.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (ddp / name).is_file(), name
    predictions = pd.read_csv(ddp / "predictions.csv")
    metrics = json.loads((ddp / "metrics.json").read_text())
    labels = predictions["label"].nunique()
    for split in ("valid", "test"):
        rows = predictions[predictions["split"] == split]
        assert len(rows) == metrics["cases"][split] * labels  # every case once, no padding
        assert not rows.duplicated(["case_id", "label"]).any()
    assert not list(ddp.glob("**/*.tmp"))


def test_two_processes_match_one_process_of_the_same_global_batch(single_and_ddp):
    """Tolerance 1e-4 on every logit and loss: both runs see the same global batches and the
    same weighted losses (mask loss included), so they differ only in the order float32
    gradients are summed (gloo's all-reduce): about 1e-7 per step, measured under 1e-6
    after 20 epochs. Backbone BatchNorm stays in eval (head warm-up), so nothing else differs."""
    single, ddp = single_and_ddp
    a = json.loads((single / "metrics.json").read_text())
    b = json.loads((ddp / "metrics.json").read_text())
    for first, second in zip(a["training"]["history"], b["training"]["history"], strict=True):
        for key in ("train_loss", "valid_loss", "train_mask_loss", "valid_mask_loss"):
            assert first[key] == pytest.approx(second[key], abs=1e-4), key
    key = ["split", "case_id", "label"]
    left = pd.read_csv(single / "predictions.csv").set_index(key).sort_index()
    right = pd.read_csv(ddp / "predictions.csv").set_index(key).sort_index()
    assert list(left.index) == list(right.index)
    assert np.abs(left["logit"].values - right["logit"].values).max() <= 1e-4
    assert a["auroc_median"] == pytest.approx(b["auroc_median"], abs=1e-6)
    for name in a["organiou"]:
        assert a["organiou"][name] == pytest.approx(b["organiou"][name], abs=0.02)


@pytest.mark.slow
def test_resume_under_torchrun(tmp_path, env):
    args = [
        *RUN[:-2], "--start", "random", "--epochs", "3", "--overlays", "0", "--quiet",
        "--out", str(tmp_path), "--name", "r",
    ]  # fmt: skip
    # "--": torchrun's parser would take --start for its own --start-method (README)
    job = subprocess.Popen(
        torchrun("-m", "ctbench", "--", *args), env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    ranks = descendants(job.pid)  # torchrun starts its ranks in sessions of their own
    os.killpg(job.pid, signal.SIGKILL)  # torchrun and both ranks, mid-run
    for pid in ranks:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    job.wait()
    wait_for_lock_release(tmp_path / "r")  # a killed rank holds it until it has exited
    assert last.exists() and not (tmp_path / "r" / "metrics.json").exists()
    result = subprocess.run(
        torchrun("-m", "ctbench", "--", *args, "--resume"),
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    finished(result)
    assert "resuming from" in result.stdout
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["training"]["history"]] == [0, 1, 2]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        path = Path(f"/proc/{parent}/task/{parent}/children")
        children = [int(c) for c in path.read_text().split()] if path.exists() else []
        found += children
        todo += children
    return found


def wait_for_lock_release(folder: Path, timeout: float = 60.0) -> None:
    """Until the run folder's lock is free: a killed process holds it until it has exited."""
    from ctbench.runtime.locks import FolderLockedError, folder_lock

    deadline = time.time() + timeout
    while True:
        try:
            with folder_lock(folder):
                return
        except FolderLockedError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def test_a_failing_rank_stops_the_job_with_its_error(tmp_path, env):
    script = tmp_path / "fail.py"
    script.write_text(
        "import torch\n"
        "from ctbench.runtime.distributed import initialise\n"
        "job = initialise(torch.device('cpu'))\n"
        "if job.rank == 1:\n"
        "    raise ValueError('rank one cannot read case c7')\n"
        "job.barrier()  # rank 0 would wait here for ever without torchrun's teardown\n"
    )
    began = time.perf_counter()
    result = subprocess.run(
        torchrun(str(script)), env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "rank one cannot read case c7" in result.stdout + result.stderr
    assert time.perf_counter() - began < 60


@pytest.mark.slow
def test_the_layer4_scope_under_torchrun_matches_one_process(tmp_path, env):
    """--finetune layer4 under torchrun: each rank fills its own (volume, augmentation) cache
    for its share of every global batch, and the run ends where one process ends."""
    layer4 = [*RUN, "--finetune", "layer4", "--head-epochs", "2", "--layer4-epochs", "2"]
    layer4 += ["--out", str(tmp_path)]
    single = [sys.executable, "-m", "ctbench", *layer4, "--name", "single"]
    finished(subprocess.run(single, env=env, capture_output=True, text=True, timeout=600))
    ddp = torchrun("-m", "ctbench", *layer4, "--name", "ddp", "--quiet")
    finished(subprocess.run(ddp, env=env, capture_output=True, text=True, timeout=600))
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("single", "ddp"))
    stages = [r["stage"] for r in b["training"]["history"]]
    assert stages == ["head"] * 2 + ["layer4"] * 2
    for first, second in zip(a["training"]["history"], b["training"]["history"], strict=True):
        for key in ("train_loss", "valid_loss", "train_mask_loss"):
            assert first[key] == pytest.approx(second[key], abs=1e-4), key
    key = ["split", "case_id", "label"]
    left = pd.read_csv(tmp_path / "single" / "predictions.csv").set_index(key).sort_index()
    right = pd.read_csv(tmp_path / "ddp" / "predictions.csv").set_index(key).sort_index()
    assert np.abs(left["logit"].values - right["logit"].values).max() <= 1e-4
