"""`ctbench explain`: overlays for a checkpoint or an untrained model, on a case or a file."""

from __future__ import annotations

import ctbench
import numpy as np
import torch
from click.testing import CliRunner
from ctbench.cli import main
from ctbench.runtime.checkpoints import save_checkpoint

from tests.figure_checks import assert_figure, has_colour


def run(*args):
    return CliRunner().invoke(main, ["explain", *args])


def test_explain_untrained_arch_on_a_phantom_case(tmp_path, monkeypatch, tiny_phantom):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    result = run(
        "--arch",
        "axialnet",
        "--preset",
        "tiny",
        "--split",
        "train",
        "--index",
        "1",
        "--label",
        "lung_pleural_effusion",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    png = tmp_path / "trn00001_lung_pleural_effusion.png"
    # 3 top slice groups x (CT, HiResCAM, Grad-CAM), then the per-slice score panel
    image = assert_figure(png, (3.2 * 3 + 0.5, 3.2 * 3 + 2.6), (4, 3))
    assert has_colour(image, "#1f77b4") and has_colour(image, "#d62728")  # scores, top marks


LABELS = ["lung_nodule", "heart_cardiomegaly"]


def checkpoint_and_scan(tmp_path, model, arch, volume_shape):
    """A saved two-label checkpoint and a box-shaped scan file; returns their paths."""
    checkpoint = save_checkpoint(
        tmp_path / "m.pt", model, arch=arch, input_shape=(9, 3, 64, 64), label_names=LABELS
    )
    volume = np.full(volume_shape, -1000, np.int16)
    volume[:, 10:50, 10:50] = 40
    np.savez_compressed(tmp_path / "scan.npz", ct=volume)
    return checkpoint, tmp_path / "scan.npz"


def explain_cardiomegaly(checkpoint, scan, out):
    return run(
        "--checkpoint",
        str(checkpoint),
        "--volume",
        str(scan),
        "--label",
        "heart_cardiomegaly",
        "--explainer",
        "hirescam",
        "--out",
        str(out),
    )


def test_explain_a_checkpoint_on_a_file(tmp_path):
    torch.manual_seed(0)
    model = ctbench.create_model("bodyconv", 2, (9, 3, 64, 64))
    checkpoint, scan = checkpoint_and_scan(tmp_path, model, "bodyconv", (30, 70, 70))
    result = explain_cardiomegaly(checkpoint, scan, tmp_path)
    assert result.exit_code == 0, result.output
    # 3 top slice groups x (CT, HiResCAM), then the per-slice attention panel
    assert_figure(tmp_path / "scan_heart_cardiomegaly.png", (3.2 * 2 + 0.5, 3.2 * 3 + 2.6), (4, 2))


def test_explain_errors_are_clear(tmp_path, monkeypatch, tiny_phantom):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    result = run("--arch", "axialnet", "--preset", "tiny", "--label", "lung_efusion")
    assert result.exit_code == 2 and "is not among the model's labels" in result.output
    result = run("--preset", "tiny", "--label", "lung_nodule")
    assert result.exit_code == 2 and "exactly one of --checkpoint and --arch" in result.output
    result = run("--arch", "ctnet", "--preset", "tiny", "--label", "lung_nodule")
    assert result.exit_code == 1 and "CTNet is not explainable" in result.output
    if not torch.cuda.is_available():
        result = run("--arch", "axialnet", "--preset", "tiny", "--label", "lung_nodule",
                     "--device", "cuda")  # fmt: skip
        assert result.exit_code == 2 and "CUDA is not available here" in result.output


def test_explain_on_a_named_device_gives_the_cpu_numbers(tmp_path, monkeypatch, tiny_phantom):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    common = ("--arch", "axialnet", "--preset", "tiny", "--label", "lung_nodule")
    on_device = run(*common, "--device", device, "--out", str(tmp_path / "a"))
    on_cpu = run(*common, "--device", "cpu", "--out", str(tmp_path / "b"))
    assert on_device.exit_code == 0 == on_cpu.exit_code, on_device.output + on_cpu.output
    probability = [float(r.output.strip().rsplit("= ", 1)[1]) for r in (on_device, on_cpu)]
    assert abs(probability[0] - probability[1]) <= 1e-4


def test_explain_reports_the_probability_of_the_requested_label(tmp_path):
    from ctbench.data.io import load_volume
    from ctbench.data.loader import prepare_volume
    from ctbench.data.preprocess import Preprocessing

    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 2, (9, 3, 64, 64)).eval()
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([-5.0, 5.0]))  # the two labels far apart
    checkpoint, scan = checkpoint_and_scan(tmp_path, model, "axialnet", (27, 64, 64))
    _, x = prepare_volume(load_volume(scan)[0], Preprocessing(volume_shape=(27, 64, 64)))
    with torch.no_grad():
        expected = torch.sigmoid(model(x[None]))[0, 1].item()
    result = explain_cardiomegaly(checkpoint, scan, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"p(heart_cardiomegaly) = {expected:.4f}" in result.output
