"""`ctbench model`: the CLI builds any architecture and exposes the weights choice."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from ctbench.cli import main
from ctbench.cli.commands import resolve_weights
from torchvision.models import resnet18


def invoke(*args: str):
    return CliRunner().invoke(main, ["model", *args])


def test_model_reports_the_reference_parameter_count_at_paper_shape():
    result = invoke("3DConv", "--input-shape", "135,3,420,420", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["name"] == "3dconv"
    assert summary["parameters"] == 5_765_744
    assert summary["representation_shape"] == [5, 5, 5]
    assert summary["cam_layout"] == "volume"
    assert (summary["pretrained"], summary["weights"]) == (False, None)
    assert summary["start"] == "random"


def test_model_says_its_start(tiny_phantom, monkeypatch):
    """--start pretext loads the preset's cached pretext weights (built when missing); the
    ablations trained from scratch refuse it."""
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    result = invoke(
        "axialnet", "--input-shape", "9,3,64,64", "--start", "pretext", "--preset", "tiny", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert (summary["start"], summary["pretrained"]) == ("pretext", True)
    assert Path(summary["weights"]).name.startswith("pretext-")
    refused = invoke("axialnet-randinit", "--start", "pretext", "--preset", "tiny")
    assert refused.exit_code == 1 and "does not declare pretrainable=True" in refused.output
    both = invoke("axialnet", "--start", "random", "--pretrained")
    assert both.exit_code != 0 and "either --start" in both.output


def test_model_builds_a_model_whose_factory_takes_no_weights():
    """A model that does not declare pretrainable=True gets no pretrained= or weights= (its
    factory need not take them, the architectures contract)."""
    result = invoke("hu-histogram", "--input-shape", "9,3,64,64", "--classes", "3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["start"], summary["pretrained"], summary["weights"]) == ("random", False, None)
    assert summary["parameters"] == 3 * (20 + 64) + 3  # rank one: a profile and a map a label


def test_model_loads_local_weights_and_records_them(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    result = invoke("axialnet", "--input-shape", "9,3,64,64", "--weights", str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["pretrained"] is True
    assert summary["weights"] == str(path.resolve())
    assert summary["start"] == "weights"


def test_missing_weights_is_one_clean_error(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    result = invoke("axialnet", "--input-shape", "9,3,64,64", "--pretrained")
    assert result.exit_code == 1
    assert "CTBENCH_OFFLINE is set" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["axialnt"], "Did you mean 'axialnet'?"),
        (["axialnet", "--input-shape", "9,3,64"], "is not four positive integers"),
        (["3dconv", "--input-shape", "9,3,64,64", "--pretrained"], "not declare pretrainable"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message):
    result = invoke(*args)
    assert result.exit_code != 0
    assert message in result.output


def test_resolve_weights():
    assert resolve_weights(None, None, preset_default=True) == {"pretrained": True, "weights": None}
    assert resolve_weights(False, None, preset_default=True) == {
        "pretrained": False,
        "weights": None,
    }
    assert resolve_weights(None, Path("w.pth"))["pretrained"] is True
    with pytest.raises(click.UsageError, match="drop --no-pretrained"):
        resolve_weights(False, Path("w.pth"))
