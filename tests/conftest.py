"""Shared fixtures: install plugins for one test through a temporary dist-info on sys.path."""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path

import pytest
from ctbench.core.registry import reset_default_registry

os.environ["CTBENCH_OFFLINE"] = "1"  # tests never download (subprocesses inherit it)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN_DIR = Path(__file__).resolve().parent / "example_plugin"


def write_dist_info(
    site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]
) -> Path:
    """Write the smallest dist-info importlib.metadata accepts: METADATA and entry_points.txt."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    lines = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return dist_info


class PluginSite:
    """A temporary site folder on sys.path whose dist-infos ctbench's registry will load."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self.paths = [str(path)]
        self._monkeypatch = monkeypatch
        monkeypatch.syspath_prepend(str(path))

    def add_source(self, folder: Path) -> None:
        """Make the modules in ``folder`` importable (as an installed package's would be)."""
        self.paths.append(str(folder))
        self._monkeypatch.syspath_prepend(str(folder))

    def install(self, name: str, entry_points: dict[str, str], version: str = "1.0") -> None:
        write_dist_info(self.path, name, version, {"ctbench": entry_points})
        importlib.invalidate_caches()
        reset_default_registry()

    def add_module(self, module_name: str, source: str) -> None:
        (self.path / f"{module_name}.py").write_text(source)
        importlib.invalidate_caches()

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should see the same plugins."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*self.paths, env.get("PYTHONPATH", "")])
        return env


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty plugin site; the default registry is reset before and after the test."""
    reset_default_registry()
    site = PluginSite(tmp_path / "site", monkeypatch)
    site.path.mkdir()
    yield site
    for name in [m for m in sys.modules if m.startswith("ctbench_test_")]:
        del sys.modules[name]
    reset_default_registry()


@pytest.fixture
def example_plugin(plugin_site: PluginSite) -> PluginSite:
    """The example plugin of tests/example_plugin, installed from its own pyproject's metadata."""
    project = tomllib.loads((EXAMPLE_PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    plugin_site.add_source(EXAMPLE_PLUGIN_DIR)
    plugin_site.install(
        project["name"], project["entry-points"]["ctbench"], version=project["version"]
    )
    return plugin_site


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory):
    """The tiny phantom preset, fully generated once per test session in a private cache."""
    from ctbench.plugins.datasets.phantom import PhantomSource

    source = PhantomSource("tiny", seed=0, cache_dir=tmp_path_factory.mktemp("phantom-cache"))
    source.materialise(progress=False)
    return source


@pytest.fixture(scope="session")
def tiny_cases(tiny_phantom):
    return [
        tiny_phantom.load(cid)
        for s in ("train", "valid", "test")
        for cid in tiny_phantom.case_ids(s)
    ]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_phantom):
    """A finished tiny run folder (random start, one epoch, hirescam and gradcam, 2 overlays)."""
    from ctbench.experiments.run_config import RunConfig
    from ctbench.experiments.runs import execute_run

    saved = os.environ.get("CTBENCH_CACHE_DIR")
    os.environ["CTBENCH_CACHE_DIR"] = str(tiny_phantom.folder.parent)
    try:
        config = RunConfig(arch="axialnet", preset="tiny", start="random", epochs=1, overlays=2)
        folder = tmp_path_factory.mktemp("finished") / "run"
        execute_run(config, folder, progress=False, log=lambda _message: None)
    finally:
        if saved is None:
            del os.environ["CTBENCH_CACHE_DIR"]
        else:
            os.environ["CTBENCH_CACHE_DIR"] = saved
    return folder
