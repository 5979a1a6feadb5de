"""The stage packages of harness/ (docs/package-map.md): the map is current, and every old module
path still works for one release, as the same module, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from .conftest import REPO_ROOT

HARNESS = REPO_ROOT / "harness"
MAP = REPO_ROOT / "docs" / "package-map.md"
OLD = {
    path.stem: path for path in HARNESS.glob("*.py") if "Deprecated alias" in path.read_text()[:200]
}


def test_the_package_map_lists_every_module_and_no_other():
    text = MAP.read_text()  # table rows and section headings name the modules
    listed = set(re.findall(r"^(?:\| |## )`(ctbench(?:\.[a-z_]+)*)`", text, re.MULTILINE))
    on_disk = set()
    for path in HARNESS.rglob("*.py"):
        parts = path.relative_to(HARNESS).with_suffix("").parts
        if parts[0] in ("commands", "specs", "vocabulary") or path.parent == HARNESS:
            continue  # aliases, data packages and the top level are listed apart
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and not parts[-1].startswith("_"):
            on_disk.add(".".join(("ctbench", *parts)))
    assert on_disk - listed == set(), f"modules missing from {MAP.name}: {on_disk - listed}"
    top = {"ctbench", "ctbench.plugin", "ctbench.plugins", "ctbench.specs", "ctbench.vocabulary"}
    stale = listed - on_disk - top
    assert not stale, f"{MAP.name} names modules that do not exist: {stale}"


@pytest.mark.parametrize("old", sorted(OLD))
def test_an_old_module_path_is_the_moved_module_with_a_warning(old):
    text = OLD[old].read_text()
    new = re.search(r'alias\(__name__, "([a-z_.]+)"\)', text).group(1)
    sys.modules.pop(f"ctbench.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"ctbench.{old} moved to {new}"):
        module = importlib.import_module(f"ctbench.{old}")
    assert module is importlib.import_module(new)


def test_names_of_modules_that_became_packages_still_resolve():
    from ctbench.data.loader import VolumeDataset
    from ctbench.report.html import build_report

    with pytest.warns(DeprecationWarning, match="ctbench.data.VolumeDataset moved"):
        from ctbench.data import VolumeDataset as old_dataset
    with pytest.warns(DeprecationWarning, match="ctbench.report.build_report moved"):
        from ctbench.report import build_report as old_report
    assert old_dataset is VolumeDataset and old_report is build_report
    with pytest.warns(DeprecationWarning, match="ctbench.commands.run moved"):
        from ctbench.commands import run  # noqa: F401


def imports(path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, function-local ones included."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_the_example_plugins_import_only_the_plugin_surface():
    from .conftest import EXAMPLE_PLUGIN_DIR

    for path in (EXAMPLE_PLUGIN_DIR / "ctbench_example_plugin").glob("*.py"):
        for _, name in imports(path):
            if name.split(".")[0] == "ctbench":
                assert name == "ctbench.plugin", f"{path.name} imports {name}"


STAGES = ("core", "runtime", "data", "regions", "train", "explain", "evaluate")
"""The stages below the experiments: they import nothing from experiments, report or cli (the
CLI and the pipeline call them, never the other way round)."""


def test_lower_stages_do_not_import_the_pipeline_the_report_or_the_cli():
    upper = ("ctbench.experiments", "ctbench.report", "ctbench.cli")
    found = [
        f"{path.relative_to(HARNESS)}:{line} imports {name}"
        for stage in STAGES
        for path in sorted((HARNESS / stage).rglob("*.py"))
        for line, name in imports(path)
        if name.startswith(upper)
    ]
    assert found == []
