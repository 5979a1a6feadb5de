"""Plugin contracts (issue 28): one written contract per kind, equal to what the core reads;
a check per kind run over every registered plugin; the recipe follows what a model declares;
the minimal example of each kind runs end to end through the command line."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import warnings
from dataclasses import replace

import ctbench
import pytest
from ctbench.core.contracts import MEMBERS, METADATA, contract_text, markdown_tables
from ctbench.core.registry import PluginWarning, Registry, default_registry
from ctbench.testing import (
    ARCHITECTURE_CHECKS,
    DATASET_CHECKS,
    DOWNSAMPLER_CHECKS,
    EXPLAINER_CHECKS,
    LABELER_CHECKS,
    SEGMENTER_CHECKS,
    architecture_case,
    check_architecture,
    check_dataset,
    check_downsampler,
    check_explainer,
    check_labeler,
    check_segmenter,
    dataset_case,
    downsampler_case,
    explainer_case,
    labeler_case,
    segmenter_case,
)

from .conftest import EXAMPLE_PLUGIN_DIR, REPO_ROOT, write_dist_info

KINDS = tuple(METADATA)
BUILT_IN = default_registry().list_plugins()


# --- every check over every registered plugin ---------------------------------------------


@pytest.mark.parametrize("rule", list(EXPLAINER_CHECKS))
@pytest.mark.parametrize("name", BUILT_IN["explainers"])
def test_every_explainer_keeps_the_contract(name, rule):
    EXPLAINER_CHECKS[rule](explainer_case(name))


@pytest.mark.parametrize("rule", list(SEGMENTER_CHECKS))
@pytest.mark.parametrize("name", BUILT_IN["segmenters"])
def test_every_segmenter_keeps_the_contract(name, rule):
    SEGMENTER_CHECKS[rule](segmenter_case(name))


@pytest.mark.parametrize("rule", list(DOWNSAMPLER_CHECKS))
@pytest.mark.parametrize("name", BUILT_IN["downsamplers"])
def test_every_downsampler_keeps_the_contract(name, rule):
    DOWNSAMPLER_CHECKS[rule](downsampler_case(name))


@pytest.mark.parametrize("rule", list(LABELER_CHECKS))
@pytest.mark.parametrize("name", BUILT_IN["labelers"])
def test_every_labeler_keeps_the_contract(name, rule):
    LABELER_CHECKS[rule](labeler_case(name))


@pytest.mark.parametrize("name", ["axialnet", "axialnet-randinit", "3dconv", "ctnet"])
def test_declared_capabilities_of_built_in_models(name):
    """The declaration rules (the other architecture rules run over every model in
    test_architectures.py)."""
    case = architecture_case(name)
    ARCHITECTURE_CHECKS["declared_trunk"](case)
    ARCHITECTURE_CHECKS["declared_start"](case)


def test_every_generated_dataset_keeps_the_contract(tiny_phantom, monkeypatch):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    case = dataset_case("phantom")
    for check in DATASET_CHECKS.values():
        check(case)


def test_datasets_read_from_disk_keep_the_contract(tmp_path):
    """``folder``, ``rad-chestct`` and ``ct-rate`` on layouts written by the tests."""
    from tests.real_layouts import write_ct_rate, write_folder, write_rad_chestct
    from tests.test_hardening import TINY, chest_volume

    volumes = {f"c{i}": chest_volume(i) for i in range(6)}
    labels = {cid: {"lung_nodule": i % 2} for i, cid in enumerate(volumes)}
    write_folder(tmp_path / "folder", volumes, TINY, labels=labels)
    rows = (tmp_path / "folder" / "labels.csv").read_text().splitlines()
    splits = ["split", "train", "train", "valid", "valid", "test", "test"]
    (tmp_path / "folder" / "labels.csv").write_text(
        "\n".join(f"{r},{s}" for r, s in zip(rows, splits, strict=True)) + "\n"
    )
    check_dataset("folder", data_root=tmp_path / "folder", cache_dir=tmp_path / "cache")
    ids = ["trn00001", "trn00002", "val00001", "tst00001"]
    write_rad_chestct(
        tmp_path / "rad",
        {cid: chest_volume(i) for i, cid in enumerate(ids)},
        {cid: {("nodule", "right_lung")} for cid in ids[::2]},
    )
    check_dataset(
        "rad-chestct", data_root=tmp_path / "rad", cache_dir=tmp_path / "cache", spacing_mm=5.0
    )
    names = [f"train_{p}_a_1.nii.gz" for p in range(1, 21)] + ["valid_900_a_1.nii.gz"]
    write_ct_rate(
        tmp_path / "ct-rate",
        dict.fromkeys(names, chest_volume()),
        TINY,
        positives={names[0]: {"Lung nodule"}},
        reports={names[0]: "A 5 mm nodule in the left lower lobe."},
    )
    check_dataset("ct-rate", data_root=tmp_path / "ct-rate", cache_dir=tmp_path / "cache")


def test_every_example_plugin_keeps_its_kinds_contract(example_plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tmp_path))
    check_architecture("example-tinynet")
    check_explainer("example-gradact")
    check_segmenter("example-threshold")
    check_downsampler("example-maxpool")
    check_dataset("example-spheres")
    check_dataset("example-spheres-nomasks")
    check_labeler("example-keywords")


def test_a_check_names_the_rule_that_broke(example_plugin):
    """A declaration the plugin does not keep fails, and the failure names the rule."""
    gradcam = default_registry().get("explainers", "gradcam").factory
    with pytest.raises(AssertionError, match="explainer check 'declared_faithful' failed"):
        check_explainer(gradcam, faithful=True)
    tiny = default_registry().get("architectures", "example-tinynet").factory
    case = replace(architecture_case(tiny), declares={"pretrainable": False, "trunk": True})
    with pytest.raises(AssertionError, match="declares trunk=True without backbone"):
        ARCHITECTURE_CHECKS["declared_trunk"](case)


# --- one written contract, equal to what the core reads -----------------------------------


def read_attributes(receivers: set[str]) -> set[str]:
    """Names the core reads with getattr/hasattr (a string literal) on variables named in
    ``receivers`` (``model``, ``source``, ...), over every module of harness/."""
    found = set()
    for path in (REPO_ROOT / "harness").rglob("*.py"):
        if "testing" in path.parts:  # the checks probe on purpose
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in ("getattr", "hasattr") or len(node.args) < 2:
                continue
            target, name = node.args[0], node.args[1]
            receiver = ast.unparse(target)
            if receiver in receivers and isinstance(name, ast.Constant):
                found.add(name.value)
    return found


def test_the_core_reads_no_model_member_the_contract_does_not_name():
    read = read_attributes({"model", "network", "self.model"})
    assert read, "the scan found nothing: its patterns are stale"
    assert read <= set(MEMBERS["architectures"]), read - set(MEMBERS["architectures"])


def test_the_core_reads_no_dataset_member_the_contract_does_not_name():
    read = read_attributes({"source", "self.source", "dataset"})
    assert read, "the scan found nothing: its patterns are stale"
    assert read <= set(MEMBERS["datasets"]), read - set(MEMBERS["datasets"])


def test_the_core_reads_no_labeler_member_the_contract_does_not_name():
    read = read_attributes({"chosen", "labeler"})
    assert read, "the scan found nothing: its patterns are stale"
    assert read <= set(MEMBERS["labelers"]), read - set(MEMBERS["labelers"])


def test_registration_metadata_in_use_is_all_declared():
    """Every metadata key the core reads (``.meta.get("key")``) is in the contract."""
    read = set()
    for path in (REPO_ROOT / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and ast.unparse(node.func.value).endswith(".meta")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                read.add(node.args[0].value)
    declared = {key for keys in METADATA.values() for key in keys}
    assert read and read <= declared, read - declared


@pytest.mark.parametrize("kind", KINDS)
def test_docs_hooks_and_api_say_the_same_contract(kind):
    page = (REPO_ROOT / "docs" / "plugins" / f"{kind}.md").read_text()
    assert markdown_tables(kind) in page, f"docs/plugins/{kind}.md: regenerate its tables"
    from ctbench.core import hookspecs

    assert contract_text(kind) in getattr(hookspecs, f"register_{kind}").__doc__
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"docs/plugins/{kind}.md" in readme
    if kind == "datasets":
        from ctbench.core.cases import CaseSource

        assert contract_text(kind) in CaseSource.__doc__
    create = {"architectures": "create_model"}.get(kind, f"create_{kind[:-1]}")
    assert contract_text(kind) in getattr(ctbench.core.api, create).__doc__
    if kind == "explainers":
        assert "explain(model, x, classes=None)" in ctbench.core.api.create_explainer.__doc__


def test_a_registration_with_unknown_or_mistyped_metadata_is_refused():
    class Plugin:
        @ctbench.hookimpl
        def register_architectures(self, register):
            register("typo", lambda n, s: None, description="x", pretrainabel=True)
            register("mistyped", lambda n, s: None, description="x", trunk="yes")
            register("fine", lambda n, s: None, description="x", trunk=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = Registry.from_plugins({"p": Plugin()})
    said = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert registry.names("architectures") == ["fine"]
    assert any("unknown metadata pretrainabel=" in m for m in said)
    assert any("metadata trunk='yes' must be a bool" in m for m in said)


# --- the recipe follows what the model declares ------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "default", "paper"])
def test_a_model_without_declarations_trains_end_to_end_under_every_preset(example_plugin, preset):
    from ctbench.experiments.run_config import RunConfig, preset_defaults

    config = RunConfig(arch="example-tinynet", preset=preset).resolved()
    assert (config.start, config.pretrained, config.head_epochs) == ("random", False, 0)
    assert config.epochs == preset_defaults("phantom", preset)["scratch_epochs"]
    recipe = config.recipe()
    assert recipe["name"] == "end to end from the model's own initialisation"
    assert "example-tinynet does not declare pretrainable=True" in recipe["why"]


def test_built_in_recipes_are_unchanged():
    from ctbench.experiments.run_config import RunConfig

    tiny = RunConfig(arch="axialnet", preset="tiny").resolved()
    assert (tiny.start, tiny.head_epochs, tiny.epochs) == ("pretext", 20, 0)
    assert tiny.recipe()["name"] == "head warm-up on the frozen pretrained trunk"
    paper = RunConfig(arch="axialnet", preset="paper").resolved()
    assert (paper.start, paper.head_epochs, paper.epochs) == ("imagenet", 0, 100)
    assert paper.recipe()["name"] == "end to end from a pretrained start"
    scratch = RunConfig(arch="3dconv", preset="default").resolved()
    assert (scratch.start, scratch.head_epochs, scratch.epochs) == ("random", 0, 3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"head_epochs": 5}, "--head-epochs 5: example-tinynet declares no trunk split"),
        ({"start": "pretext"}, "does not declare pretrainable=True, so it cannot start from"),
        ({"weights": "/w.pth"}, "cannot start from the --weights file"),
        ({"pretrained": True}, "cannot start from ImageNet weights"),
    ],
)
def test_an_option_the_model_cannot_honour_is_refused_before_work(example_plugin, options, message):
    from ctbench.experiments.run_config import RunConfig

    with pytest.raises(ValueError, match=message):
        RunConfig(arch="example-tinynet", preset="tiny", **options).resolved()


def test_a_mask_explainer_must_declare_differentiable():
    from ctbench.experiments.run_config import RunConfig

    config = RunConfig(
        arch="axialnet", preset="tiny", mask_loss=True, mask_explainer="integrated-gradients"
    )
    with pytest.raises(ValueError, match="does not declare differentiable=True"):
        config.resolved()


# --- the examples end to end through the command line ------------------------------------


@pytest.fixture(scope="module")
def example_env(tmp_path_factory, tiny_phantom) -> dict[str, str]:
    """The example plugins installed for subprocesses (a dist-info from their pyproject)."""
    site = tmp_path_factory.mktemp("site")
    project = tomllib.loads((EXAMPLE_PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    entry_points = {"ctbench": project["entry-points"]["ctbench"]}
    write_dist_info(site, project["name"], project["version"], entry_points)
    path = os.pathsep.join([str(site), str(EXAMPLE_PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "CTBENCH_CACHE_DIR": str(tiny_phantom.folder.parent),
    }


def ctbench_cli(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ctbench", *args], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize(
    "plugin",
    [
        ("--arch", "example-tinynet"),
        ("--explainer", "example-gradact"),
        ("--dataset", "example-spheres"),
        ("--dataset", "example-spheres-nomasks"),
        ("--segmenter", "example-threshold"),
        ("--downsampler", "example-maxpool"),
    ],
    ids=lambda plugin: plugin[1],
)
def test_each_example_runs_through_ctbench_run(example_env, tmp_path, plugin):
    """``ctbench run`` on the tiny preset naming the plugin and nothing else (the explainer,
    dataset, segmenter and downsampler on the example model, which needs no pretext)."""
    chosen = ("--arch", "example-tinynet", *plugin) if plugin[0] != "--arch" else plugin
    result = ctbench_cli(example_env, "run", *chosen, "--preset", "tiny", "--out", str(tmp_path))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert config["recipe"]["name"] == "end to end from the model's own initialisation"
    assert "recipe: end to end from the model's own initialisation" in result.stdout
    assert config["model_options"] == {}  # no weight options for a model that takes none
    assert metrics["skipped_cases"] == [] and metrics["auroc"]
    if plugin[0] == "--explainer":
        assert set(metrics["organiou"]) == {"example-gradact"}
    if plugin[1] == "example-spheres":  # finding masks: the localisation family is scored
        lesion = metrics["explanation_metrics"]["lesion"]["hirescam"]
        assert lesion["pointing_game"]["mean"] is not None
    if plugin[1] == "example-spheres-nomasks":
        assert "lesion" not in metrics.get("explanation_metrics", {})
    if plugin[0] in ("--segmenter", "--downsampler"):
        assert config["run"][plugin[0][2:]] == plugin[1]


@pytest.mark.slow
def test_the_example_model_runs_in_a_matrix_beside_a_built_in_one(example_env, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "beside"\ntable = ["1"]\n[run]\npreset = "tiny"\n'
        '[axes]\narch = ["example-tinynet", "axialnet-randinit"]\n'
    )
    out = tmp_path / "matrix"
    result = ctbench_cli(example_env, "matrix", str(spec), "--out", str(out))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "2 done, 0 failed" in result.stdout
    table = ctbench_cli(example_env, "table", str(out))
    assert table.returncode == 0, table.stderr[-2000:]
    rows = [line for line in table.stdout.splitlines() if line.startswith("| ")]
    assert any(row.startswith("| example-tinynet ") for row in rows)
    assert any(row.startswith("| axialnet-randinit ") for row in rows)


def test_the_mask_loss_on_a_model_that_cannot_take_it_fails_before_the_pretext(
    tiny_phantom, tmp_path, monkeypatch
):
    import ctbench.experiments.runs as runs
    from ctbench.experiments.run_config import RunConfig

    def no_pretext(*_args, **_kwargs):
        raise AssertionError("the pretext was built for a run that cannot train")

    monkeypatch.setattr(runs, "pretext_start", no_pretext)
    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    config = RunConfig(arch="ctnet", preset="tiny", mask_loss=True)
    assert config.resolved().start == "pretext"
    with pytest.raises(ValueError, match="ctnet is not explainable"):
        runs.execute_run(config, tmp_path / "run", progress=False, log=lambda _m: None)
