"""The run folder has one owner (ctbench.experiments.run_folder): its layout, its state, its
records, and the JSON Schemas of metrics.json and config.json (docs/schemas/)."""

from __future__ import annotations

import ast
import json

import pytest
from ctbench.experiments.run_folder import SCHEMA_VERSION, RunFolder, finished_runs

from .conftest import REPO_ROOT

SCHEMAS = REPO_ROOT / "docs" / "schemas"
OWNED = ("metrics.json", "predictions.csv", "per_label.csv", "timing.json", "slice_scores.npz",
         "sanity.json", "best.pt", "last.pt")  # fmt: skip


def validator(name: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    return Draft202012Validator(schemas[name], registry=registry)


def test_a_finished_run_matches_the_documented_schemas(finished_run):
    run = RunFolder(finished_run)
    metrics, config = run.read_metrics(), run.read_config()
    assert metrics["schema_version"] == SCHEMA_VERSION
    validator("metrics.schema.json").validate(metrics)
    validator("config.schema.json").validate(config)
    broken = {key: value for key, value in metrics.items() if key != "auroc"}
    assert not validator("metrics.schema.json").is_valid(broken)


def test_the_folder_knows_its_files_and_its_state(finished_run, tmp_path):
    run = RunFolder(finished_run)
    assert run.state() == "finished" and run.finished
    for path in (run.config, run.predictions, run.per_label, run.timing, run.best_checkpoint):
        assert path.is_file(), path
    assert run.figures.is_dir()
    fresh = RunFolder(tmp_path / "new")
    assert fresh.state() == "new"
    fresh.path.mkdir()
    (fresh.path / ".ctbench.lock").write_text("{}")
    assert fresh.state() == "new"  # a lock file alone is no run
    (fresh.path / "config.json").write_text("{}")
    assert fresh.state() == "unfinished"
    with pytest.raises(ValueError, match="not a ctbench run configuration"):
        fresh.read_config()
    assert finished_runs(finished_run) == [finished_run]
    assert finished_runs(finished_run.parent) == [finished_run]


def test_a_newer_metrics_layout_is_refused(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="newer than this ctbench reads"):
        RunFolder(tmp_path).read_metrics()
    (tmp_path / "metrics.json").write_text(json.dumps({"auroc": {}}))  # before versions: 0
    assert RunFolder(tmp_path).read_metrics() == {"auroc": {}}


def test_only_the_owner_spells_the_run_folders_file_names():
    spelled = {}
    for path in (REPO_ROOT / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in OWNED:
                spelled.setdefault(node.value, set()).add(path.relative_to(REPO_ROOT).as_posix())
    owners = {"harness/experiments/run_folder.py", "harness/train/training.py"}
    assert spelled and all(places <= owners for places in spelled.values()), spelled
