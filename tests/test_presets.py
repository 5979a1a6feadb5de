"""Presets, plugin defaults and the one place a run's config is resolved (issue 29, part 2)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from ctbench.cli import main
from ctbench.core.contracts import default_name, default_names
from ctbench.core.registry import KINDS, default_registry
from ctbench.experiments.run_config import TRAINING_RECIPES, RunConfig, preset_defaults

REPO_ROOT = Path(__file__).resolve().parents[1]

DATASETS_PLUGIN = """
import ctbench

@ctbench.hookimpl
def register_datasets(register):
    register("ctbench-test-names", lambda **o: None, description="names only",
             presets=("small", "large"))
    register("ctbench-test-table", lambda **o: None, description="a table",
             presets={"quick": {"recipe": "cpu-tiny", "batch_size": 2},
                      "typo": {"recipe": "cpu", "epochz": 3},
                      "norecipe": {"recipe": "gpu"}})
    register("ctbench-test-any", lambda **o: None, description="no presets")
"""

SECOND_DEFAULT = """
import ctbench

@ctbench.hookimpl
def register_datasets(register):
    register("ctbench-test-other", lambda **o: None, description="x", default=True)
"""


def test_each_phantom_preset_trains_by_its_own_table():
    tiny, default, paper = (preset_defaults("phantom", p) for p in ("tiny", "default", "paper"))
    assert tiny == {"recipe": "cpu-tiny", **TRAINING_RECIPES["cpu-tiny"], "downsampler": "area"}
    assert default == {"recipe": "cpu", **TRAINING_RECIPES["cpu"], "downsampler": "area"}
    assert paper == {"recipe": "paper", **TRAINING_RECIPES["paper"], "downsampler": None}
    assert (tiny["pretext_epochs"], tiny["head_epochs"]) == (2, 20)
    assert (paper["epochs"], paper["batch_size"], paper["optimizer"]) == (100, 1, "sgd")
    # the disk datasets share one table, with the same run defaults
    for name in ("rad-chestct", "ct-rate", "folder"):
        assert preset_defaults(name, "tiny") == tiny
        assert preset_defaults(name, "paper") == paper


def test_a_presets_downsampler_or_else_the_declared_default():
    assert RunConfig(arch="axialnet", preset="tiny").resolved().downsampler == "area"
    assert RunConfig(arch="axialnet", preset="paper").resolved().downsampler == "nearest"
    assert default_name("downsamplers") == "nearest"


def test_unknown_presets_are_one_error_naming_the_datasets_presets():
    for dataset in ("phantom", "ct-rate"):
        with pytest.raises(ValueError, match="unknown preset 'huge' for dataset") as caught:
            RunConfig(arch="axialnet", dataset=dataset, preset="huge").resolved()
        assert "its presets: tiny, default, paper" in str(caught.value)


def test_a_plugins_preset_table_names_only_or_recipes(plugin_site):
    plugin_site.add_module("ctbench_test_presets", DATASETS_PLUGIN)
    plugin_site.install("ctbench-test-presets", {"presets": "ctbench_test_presets"})
    # names only: known names train with the paper's recipe, others are refused
    assert preset_defaults("ctbench-test-names", "small")["recipe"] == "paper"
    with pytest.raises(ValueError, match="its presets: small, large"):
        preset_defaults("ctbench-test-names", "tiny")
    # a table: the recipe's numbers with the preset's own keys over them
    quick = preset_defaults("ctbench-test-table", "quick")
    assert quick == {**TRAINING_RECIPES["cpu-tiny"], "recipe": "cpu-tiny", "batch_size": 2,
                     "downsampler": None}  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown run default.*epochz"):
        preset_defaults("ctbench-test-table", "typo")
    with pytest.raises(ValueError, match="unknown recipe 'gpu'; recipes: cpu-tiny, cpu, paper"):
        preset_defaults("ctbench-test-table", "norecipe")
    # no presets declared: any name, the paper's recipe
    assert preset_defaults("ctbench-test-any", "whatever")["recipe"] == "paper"


def test_defaults_come_from_what_plugins_declare():
    assert default_name("datasets") == "phantom"
    assert default_name("segmenters") == "morphological"
    assert default_names("explainers") == ["hirescam", "gradcam"]  # registration order
    config = RunConfig(arch="axialnet").resolved()
    assert (config.dataset, config.segmenter, config.mask_explainer) == (
        "phantom",
        "morphological",
        "hirescam",
    )
    assert config.explainers == ("hirescam", "gradcam") and config.is_resolved
    assert not RunConfig(arch="axialnet").is_resolved


def test_two_default_datasets_are_one_clear_error(plugin_site):
    plugin_site.add_module("ctbench_test_second", SECOND_DEFAULT)
    plugin_site.install("ctbench-test-second", {"second": "ctbench_test_second"})
    with pytest.raises(ValueError, match=r"2 do \(.*phantom.*ctbench-test-other"):
        RunConfig(arch="axialnet").resolved()
    result = CliRunner().invoke(main, ["data", "check", "--preset", "tiny"])
    assert result.exit_code == 2 and "name one with --dataset" in result.output
    # naming one works
    assert RunConfig(arch="axialnet", dataset="phantom").resolved().dataset == "phantom"


def test_ctbench_run_resolves_its_config_once(monkeypatch, tmp_path):
    import ctbench.experiments.runs as runs

    calls, seen = [], []
    original = RunConfig.resolved

    def counting(self):
        calls.append(self)
        return original(self)

    def stop(config, folder, **_):
        seen.append(config)
        raise ValueError("stopped after the config")

    monkeypatch.setattr(RunConfig, "resolved", counting)
    monkeypatch.setattr(runs, "execute_run", stop)
    result = CliRunner().invoke(
        main, ["run", "--arch", "axialnet", "--preset", "tiny", "--out", str(tmp_path)]
    )
    assert "stopped after the config" in result.output
    assert len(calls) == 1 and seen[0].is_resolved
    assert seen[0] == RunConfig(arch="axialnet", preset="tiny").resolved()


# --- the core names no plugin ------------------------------------------------------------

ORDINARY_WORDS = {"folder", "nearest", "trilinear", "heuristic"}
"""Plugin names that are also words the core uses for other things: interpolation modes
(torch's and scipy's), the "heuristic" metadata key and method label, folder paths."""

ALLOWED = {
    ("harness/core/paper.py", "area"): "the paper's Table 5 rows, by the paper's words",
    ("harness/cli/commands/data.py", "phantom"): "`ctbench data phantom`, deprecated alias",
    ("harness/cli/commands/labels.py", "ct-rate"): "the CT-RATE label vocabulary's name",
}


def test_the_core_names_no_plugin():
    """No string in ctbench's code (docstrings aside) is a built-in plugin's name, except the
    few listed with their reason: defaults come from declarations, paper numbers from
    ``paper_name``."""
    registry = default_registry()
    names = {name for kind in KINDS for name in registry.names(kind)} - ORDINARY_WORDS
    found = set()
    for path in sorted((REPO_ROOT / "harness").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in names
                and id(node) not in docstrings
            ):
                found.add((str(path.relative_to(REPO_ROOT)), node.value))
    assert found == set(ALLOWED), sorted(found - set(ALLOWED))


def test_the_dataset_check_refuses_a_broken_preset_table():
    from dataclasses import replace

    from ctbench.core.contracts import declared
    from ctbench.testing import DATASET_CHECKS
    from ctbench.testing.datasets import dataset_case

    rule = DATASET_CHECKS["declared_presets"]
    case = dataset_case("phantom")
    rule(case)  # the phantom's own table passes
    for presets, message in (
        ({"tiny": {"recipe": "gpu"}}, "presets['tiny']: unknown recipe 'gpu'"),
        ({"tiny": {"epochz": 1}}, "presets['tiny']: unknown run default(s) epochz"),
        (("small",), "preset 'tiny' is not among the declared presets small"),
    ):
        broken = replace(case, declares=declared("datasets", {"presets": presets}))
        with pytest.raises(AssertionError, match=re.escape(message)):
            rule(broken)
