"""``ctbench run`` end to end on the tiny phantom: the run folder, its numbers, resume, compare.

Runs go through the installed console script in a subprocess (as a user runs them, and so that
one can be killed with SIGKILL).
"""

from __future__ import annotations

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
from sklearn.metrics import roc_auc_score

RUN = ["--arch", "axialnet", "--preset", "tiny", "--epochs", "2", "--overlays", "1", "--quiet"]


def ctbench_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ctbench.cli", *args]


@pytest.fixture(scope="module")
def run_env(tiny_phantom) -> dict[str, str]:
    return {**os.environ, "CTBENCH_CACHE_DIR": str(tiny_phantom.folder.parent)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, run_env) -> Path:
    out = tmp_path_factory.mktemp("runs")
    result = subprocess.run(
        ctbench_command("run", *RUN, "--out", str(out), "--name", "full"),
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test AUROC median" in result.stdout
    return out / "full"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_run_folder_has_every_output(tiny_run):
    for name in ("config.json", "metrics.json", "predictions.csv", "per_label.csv"):
        assert (tiny_run / name).is_file(), name
    for name in ("timing.json", "slice_scores.npz", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (tiny_run / name).is_file(), name
    from tests.figure_checks import assert_figure, has_colour

    figures = tiny_run / "figures"
    curves = assert_figure(figures / "loss_curves.png", (6, 4), (1, 1))
    assert has_colour(curves, "#1f77b4") and has_colour(curves, "#d62728")  # train, valid
    # 12 labels in 3 rows of 4, each with the absent (blue) and present (orange) profile
    profiles = assert_figure(figures / "slice_scores.png", (3.4 * 4, 2.6 * 3), (3, 4))
    assert has_colour(profiles, "#1f77b4") and has_colour(profiles, "#ff7f0e")
    (overlay,) = (figures / "overlays").glob("*.png")
    assert_figure(overlay, (3.2 * 3 + 0.5, 3.2 * 3 + 2.6), (4, 3))  # CT, HiResCAM, Grad-CAM

    config = read_json(tiny_run / "config.json")
    assert config["seed"] == 0 and config["ctbench_version"]
    # the tiny preset starts from its pretext (built once in the dataset cache), then trains
    # the head on the frozen backbone's output, then --epochs 2 full epochs
    assert config["run"]["start"] == "pretext" and config["start"]["name"] == "pretext"
    pretext = config["start"]["pretext"]
    assert config["model_options"] == {"pretrained": True, "weights": pretext["path"]}
    assert Path(pretext["path"]).is_file() and len(pretext["sha256"]) == 64
    assert pretext["settings"]["epochs"] == 2 and pretext["source"]["seed"] == 1000
    assert config["run"]["optimizer"] == "adam" and config["run"]["downsampler"] == "area"

    metrics = read_json(tiny_run / "metrics.json")
    for key in ("auroc", "auroc_median", "auroc_iqr", "organiou", "organiou_per_label"):
        assert key in metrics, key
    assert set(metrics["organiou"]) == {"hirescam", "gradcam"}
    assert set(metrics["explanation_metrics"]["lesion"]["hirescam"]) >= {"pointing_game", "iou_ct"}
    assert set(metrics["timing"]) >= {"data", "partition", "train", "evaluate_test", "total"}
    assert metrics["config"] == config
    assert metrics["training"]["epochs_run"] == 2
    assert metrics["training"]["head_epochs_run"] == 20
    assert [r["stage"] for r in metrics["training"]["history"]] == ["head"] * 20 + ["full"] * 2
    for value in metrics["organiou"].values():
        assert 0.0 <= value <= 1.0


def test_metrics_agree_with_the_predictions_and_the_checkpoint(tiny_run, tiny_phantom):
    """AUROC recomputed from predictions.csv, and the best checkpoint reproduces the logits."""
    from ctbench.data.loader import VolumeDataset, make_loader
    from ctbench.runtime.checkpoints import model_from_checkpoint

    metrics = read_json(tiny_run / "metrics.json")
    predictions = pd.read_csv(tiny_run / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    labels = list(tiny_phantom.label_names)
    finite = []
    for label in labels:
        rows = test[test["label"] == label]
        if 0 < rows["truth"].sum() < len(rows):
            want = roc_auc_score(rows["truth"], rows["logit"])
            assert metrics["auroc"][label] == pytest.approx(want, abs=1e-12)
            finite.append(want)
        else:
            assert metrics["auroc"][label] is None
    assert metrics["auroc_median"] == pytest.approx(float(np.median(finite)))
    assert metrics["auroc_mean"] == pytest.approx(float(np.mean(finite)))
    per_label = pd.read_csv(tiny_run / "per_label.csv")
    truth = test.pivot(index="case_id", columns="label", values="truth")[labels]
    assert per_label["test_positives"].tolist() == truth.sum(axis=0).tolist()

    model, payload = model_from_checkpoint(tiny_run / "checkpoints" / "best.pt")
    # best_epoch indexes the history; a checkpoint's epoch counts full epochs (-1: warm-up)
    best = metrics["training"]["history"][metrics["training"]["best_epoch"]]
    assert payload["epoch"] == (best["epoch"] if best["stage"] == "full" else -1)
    batch = next(iter(make_loader(VolumeDataset(tiny_phantom, "test"), batch_size=4)))
    with torch.no_grad():
        logits = model(batch["x"]).numpy()
    saved = test.pivot(index="case_id", columns="label", values="logit").loc[batch["case_id"]]
    np.testing.assert_allclose(saved[labels].to_numpy(), logits, rtol=1e-4, atol=1e-5)


def test_finished_run_is_not_overwritten(tiny_run, run_env):
    before = (tiny_run / "metrics.json").read_bytes()
    args = ("run", *RUN, "--out", str(tiny_run.parent), "--name", "full")
    result = subprocess.run(ctbench_command(*args), env=run_env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "finished run" in result.stderr and "--overwrite" in result.stderr
    assert (tiny_run / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_resume_after_kill_ends_like_an_uninterrupted_run(tiny_run, run_env):
    out = tiny_run.parent
    folder = out / "killed"
    args = ctbench_command("run", *RUN, "--out", str(out), "--name", "killed")
    process = subprocess.Popen(args, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = folder / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists(), process.stderr.read().decode()[-2000:]
    assert not (folder / "metrics.json").exists(), "the run finished before it was killed"

    unfinished = subprocess.run(args, env=run_env, capture_output=True, text=True)
    assert unfinished.returncode != 0 and "--resume" in unfinished.stderr

    from ctbench.runtime.checkpoints import load_checkpoint

    before = load_checkpoint(last)["training"]["history"]  # the epochs done before the kill
    resumed = subprocess.run([*args, "--resume"], env=run_env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    heads = sum(r["stage"] == "head" for r in before)
    done = f"{heads} head epochs and {len(before) - heads} full epochs done"
    assert done in resumed.stdout
    want, got = read_json(tiny_run / "metrics.json"), read_json(folder / "metrics.json")
    # resumed, not restarted: the epochs before the kill were not run again (a rerun would
    # have measured new times); the in-process test in test_training.py checks the state
    assert got["training"]["history"][: len(before)] == before
    for key in ("auroc", "organiou", "organiou_per_label", "explanation_metrics"):
        assert_same_numbers(got[key], want[key], key)
    for a, b in zip(got["training"]["history"], want["training"]["history"], strict=True):
        for key in ("train_loss", "valid_loss"):
            assert a[key] == pytest.approx(b[key], abs=1e-6)


def assert_same_numbers(got, want, where: str) -> None:
    """Nested dicts of numbers (None where a metric is undefined) agree to 1e-6."""
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for key in want:
            assert_same_numbers(got[key], want[key], f"{where}.{key}")
    elif want is None:
        assert got is None, where
    else:
        assert got == pytest.approx(want, abs=1e-6), where


def test_compare_prints_delong_table(tiny_run, tmp_path, run_env):
    from ctbench.evaluate.stats import benjamini_hochberg, delong_test

    other = tmp_path / "other"
    other.mkdir()
    predictions = pd.read_csv(tiny_run / "predictions.csv")
    rng = np.random.default_rng(0)
    predictions["logit"] = rng.normal(size=len(predictions))  # a different "model"
    predictions.to_csv(other / "predictions.csv", index=False)

    args = ctbench_command("compare", str(tiny_run), str(other), "--format", "csv")
    result = subprocess.run(args, env=run_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    from io import StringIO

    table = pd.read_csv(StringIO(result.stdout))
    first = pd.read_csv(tiny_run / "predictions.csv")
    ps = []
    for row in table.itertuples():
        a = first[(first["split"] == "test") & (first["label"] == row.label)]
        b = predictions[(predictions["split"] == "test") & (predictions["label"] == row.label)]
        if 0 < a["truth"].sum() < len(a):
            want = delong_test(a["truth"].to_numpy(), a["logit"], b["logit"])
            assert row.p_value == pytest.approx(want.p_value, rel=1e-9)
            assert row.auroc_a == pytest.approx(want.auc_a)
        ps.append(row.p_value)
    np.testing.assert_allclose(table["p_fdr"], benjamini_hochberg(ps))

    same = subprocess.run(
        ctbench_command("compare", str(tiny_run), str(tiny_run), "--format", "csv"),
        env=run_env,
        capture_output=True,
        text=True,
    )
    assert same.returncode == 0, same.stderr
    itself = pd.read_csv(StringIO(same.stdout)).dropna(subset=["p_value"])
    assert len(itself) > 0
    assert (itself["z"] == 0).all() and (itself["p_value"] == 1).all()
    assert (itself["p_fdr"] == 1).all() and (itself["auroc_a"] == itself["auroc_b"]).all()
    plain = subprocess.run(
        ctbench_command("compare", str(tiny_run), str(tiny_run)),
        env=run_env,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0 and "AUROC A" in plain.stdout


def test_mask_loss_run(tmp_path, run_env):
    """Also a run whose output is not a terminal (no --quiet): one line per epoch and phase on
    stdout, no progress-bar redraws anywhere."""
    args = ctbench_command(
        "run", "--arch", "axialnet", "--preset", "tiny", "--epochs", "1", "--mask-loss",
        "--explainer", "hirescam", "--overlays", "0", "--out", str(tmp_path),
        "--name", "mask",
    )  # fmt: skip
    result = subprocess.run(args, env=run_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\r" not in result.stderr and "\r" not in result.stdout
    assert "it/s" not in result.stderr and "batch/s" not in result.stderr
    lines = result.stdout.splitlines()
    for phase in ("partition", "train", "evaluate_valid", "evaluate_test", "figures"):
        assert sum(line.startswith(f"{phase}: done in") for line in lines) == 1, phase
    assert sum(line.startswith("epoch 1/1:") for line in lines) == 1
    # the 20 head epochs on cached features log every second one
    assert [line.split(":")[0] for line in lines if line.startswith("head epoch")] == [
        f"head epoch {k}/20" for k in range(2, 21, 2)
    ]
    metrics = read_json(tmp_path / "mask" / "metrics.json")
    history = metrics["training"]["history"]
    assert [r["stage"] for r in history] == ["head"] * 20 + ["full"]
    for record in history:  # the mask loss trains the head on cached features too
        assert record["train_mask_loss"] > 0 and record["valid_mask_loss"] > 0
        total = record["valid_class_loss"] + record["valid_mask_loss"] / 3
        assert record["valid_loss"] == pytest.approx(total, rel=1e-6)
    assert metrics["config"]["run"]["mask_loss"] is True


def tiny_config(**options):
    """A one-epoch tiny-preset RunConfig with the given options."""
    from ctbench.experiments.run_config import RunConfig

    base = {
        "explainers": ("hirescam",),
        "dataset": "phantom",
        "preset": "tiny",
        "segmenter": "morphological",
        "mask_explainer": "hirescam",
        "epochs": 1,
    }
    return RunConfig(**(base | options))


def test_bad_case_is_skipped_and_listed_and_unexplainable_model_runs(
    tiny_phantom, tmp_path, monkeypatch
):
    """A corrupt case file is skipped and listed (the run goes on); CTNet, which is not
    explainable, still trains and is scored on AUROC, without OrganIoU."""
    import shutil

    from ctbench.experiments.runs import execute_run

    cache = tmp_path / "cache"
    shutil.copytree(tiny_phantom.folder, cache / tiny_phantom.folder.name)
    broken = cache / tiny_phantom.folder.name / "cases" / "val00003.npz"
    broken.write_bytes(b"not an npz file")
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(cache))
    messages: list[str] = []
    config = tiny_config(arch="ctnet", overlays=0)
    metrics = execute_run(config, tmp_path / "run", progress=False, log=messages.append)
    (skipped,) = metrics["skipped_cases"]
    assert skipped["case_id"] == "val00003" and skipped["split"] == "valid"
    assert "val00003" in skipped["error"]
    assert any("skipped valid case val00003" in m for m in messages)
    assert any("not explainable" in m for m in messages)
    assert metrics["n_cases"]["valid"] == 11
    assert "organiou" not in metrics and np.isfinite(metrics["auroc_median"])


def test_maxpool_mask_loss_refuses_an_unfaithful_mask_explainer(
    tiny_phantom, tmp_path, monkeypatch
):
    from ctbench.experiments.runs import execute_run

    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    config = tiny_config(arch="axialnet-maxpool", mask_explainer="gradcam", mask_loss=True)
    with pytest.raises(ValueError, match=r"max over slices.*gradcam"):
        execute_run(config, tmp_path / "run", progress=False, log=lambda _: None)


def test_presets_resolve_training_and_weights():
    from ctbench.experiments.run_config import RunConfig

    base = {
        "explainers": ("hirescam",),
        "dataset": "phantom",
        "segmenter": "morphological",
        "mask_explainer": "hirescam",
    }
    paper = RunConfig(arch="axialnet", preset="paper", **base).resolved()
    assert (paper.optimizer, paper.lr, paper.schedule) == ("sgd", 1e-3, "constant")
    assert (paper.batch_size, paper.epochs, paper.patience) == (1, 100, 15)
    assert paper.pretrained is True and paper.downsampler == "nearest"
    # a preset asks for ImageNet weights only from models that take them
    assert (
        RunConfig(arch="axialnet-randinit", preset="paper", **base).resolved().pretrained is False
    )
    assert paper.start == "imagenet" and paper.head_epochs == 0
    tiny = RunConfig(arch="axialnet", preset="tiny", **base).resolved()
    assert tiny.pretrained is True and tiny.optimizer == "adam"
    default = RunConfig(arch="axialnet", preset="default", **base).resolved()
    assert (default.start, default.head_epochs, default.epochs) == ("pretext", 60, 0)
    # the ablations keep their meaning: from random weights, full epochs and no warm-up
    for arch in ("axialnet-randinit", "3dconv"):
        scratch = RunConfig(arch=arch, preset="default", **base).resolved()
        assert (scratch.start, scratch.pretrained) == ("random", False)
        assert (scratch.head_epochs, scratch.epochs) == (0, 3)
    unpretrained = RunConfig(arch="axialnet", preset="default", pretrained=False, **base)
    assert unpretrained.resolved().start == "random"
    assert (
        RunConfig(arch="axialnet", preset="default", start="random", head_epochs=5, **base)
        .resolved()
        .head_epochs
        == 5
    )
    with pytest.raises(ValueError, match="unknown start"):
        RunConfig(arch="axialnet", preset="default", start="moco", **base).resolved()
    explicit = RunConfig(arch="axialnet", preset="tiny", lr=0.5, pretrained=True, **base)
    assert explicit.resolved().lr == 0.5 and explicit.resolved().pretrained is True
    weighted = RunConfig(arch="axialnet", preset="tiny", weights="/w/resnet18.pth", **base)
    assert weighted.resolved().pretrained is True  # --weights implies pretrained, recorded
    assert weighted.resolved().to_json()["weights"] == "/w/resnet18.pth"
    assert weighted.resolved().start == "weights"
    reseeded = RunConfig(arch="axialnet", preset="paper", seed=1, **base).resolved()
    assert paper.folder_name() != reseeded.folder_name()
    again = RunConfig(arch="axialnet", preset="paper", **base).resolved()
    assert paper.folder_name() == again.folder_name()


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path):
    from click.testing import CliRunner
    from ctbench.cli import main

    args = ["run", "--arch", "axialnet", "--preset", "huge", "--out", str(tmp_path / "runs")]
    result = CliRunner().invoke(main, [*args, "--name", "r"])
    assert result.exit_code == 1 and "unknown preset 'huge' for dataset 'phantom'" in result.output
    assert not (tmp_path / "runs" / "r").exists()


def test_missing_imagenet_weights_fail_fast_with_instructions(tmp_path):
    env = {
        **os.environ,
        "CTBENCH_CACHE_DIR": str(tmp_path / "cache"),
        "TORCH_HOME": str(tmp_path / "torch"),
    }
    args = ctbench_command("run", "--arch", "axialnet", "--preset", "paper", "--out", str(tmp_path))
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "resnet18" in result.stderr and "--weights" in result.stderr
    assert not list((tmp_path / "cache").glob("*/cases/*.npz")), "data generated before failing"
