"""A third-party plugin works end to end: installed, listed, built through create_model."""

from __future__ import annotations

import json
import subprocess
import sys

import ctbench
import pytest
import torch
from ctbench.core.registry import UnknownPluginError

from .conftest import EXAMPLE_PLUGIN_DIR


def test_example_plugin_appears_in_ctbench_plugins(example_plugin):
    result = subprocess.run(
        [sys.executable, "-m", "ctbench.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=example_plugin.env(),
        check=True,
    )
    listing = json.loads(result.stdout)
    assert {
        "name": "example-tinynet",
        "provider": "ctbench-example-plugin",
        "description": "Example plugin: tiny explainable slice-wise MIL classifier",
    } in listing["architectures"]


def test_example_plugin_builds_through_create_model(example_plugin):
    torch.manual_seed(0)
    model = ctbench.create_model("example-tinynet", n_classes=5, input_shape=(4, 3, 32, 32))
    x = torch.randn(2, 4, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 5)
    assert model.representation_shape == (4, 4, 4)
    # The MIL identity of the contract: the mean of the per-slice scores is the logit.
    torch.testing.assert_close(model.slice_scores(x).mean(dim=2), logits)
    with pytest.raises(ValueError, match="no pretrained weights"):
        ctbench.create_model("example-tinynet", 5, (4, 3, 32, 32), pretrained=True)


def test_create_model_validates_its_arguments(example_plugin):
    with pytest.raises(ValueError, match="n_classes must be a positive int"):
        ctbench.create_model("example-tinynet", 0, (4, 3, 32, 32))
    with pytest.raises(ValueError, match="four positive ints"):
        ctbench.create_model("example-tinynet", 3, (3, 32, 32))
    with pytest.raises(UnknownPluginError, match="Did you mean 'example-tinynet'"):
        ctbench.create_model("example-tinynt", 3, (4, 3, 32, 32))


def test_example_plugin_installs_from_its_own_pyproject(tmp_path, plugin_site):
    """A real wheel build and install of the example, as a plugin author's user would do it."""
    target = plugin_site.path
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(EXAMPLE_PLUGIN_DIR),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel_dist = next(target.glob("ctbench_example_plugin-*.dist-info"))
    assert "[ctbench]" in (wheel_dist / "entry_points.txt").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "ctbench.cli", "plugins"],
        capture_output=True,
        text=True,
        env=plugin_site.env(),
        check=True,
        cwd=tmp_path,
    )
    assert "example-tinynet" in result.stdout
    assert "ctbench-example-plugin" in result.stdout
