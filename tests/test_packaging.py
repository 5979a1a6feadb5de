"""Packaging: one distribution `ctbench`; harness/ is `ctbench`, plugins/ is `ctbench.plugins`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from .conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
PACKAGE_ROOTS = {"ctbench": REPO_ROOT / "harness", "ctbench.plugins": REPO_ROOT / "plugins"}


def _package_folders() -> set[str]:
    """Every folder under harness/ and plugins/ holding Python files, as a dotted package."""
    packages = set()
    for dotted_root, root in PACKAGE_ROOTS.items():
        for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts or not any(folder.glob("*.py")):
                continue
            relative = folder.relative_to(root).parts
            packages.add(".".join((dotted_root, *relative)))
    return packages


def test_every_package_folder_is_in_the_explicit_packages_list():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = _package_folders()
    assert on_disk <= listed, f"add to pyproject packages: {sorted(on_disk - listed)}"
    assert listed <= on_disk, f"listed but missing on disk: {sorted(listed - on_disk)}"
    for package in on_disk:
        root = "ctbench.plugins" if package.startswith("ctbench.plugins") else "ctbench"
        folder = PACKAGE_ROOTS[root].joinpath(*package.split(".")[len(root.split(".")) :])
        assert (folder / "__init__.py").exists(), f"{folder} needs an __init__.py"


def test_project_metadata():
    project = PYPROJECT["project"]
    assert project["name"] == "ctbench"
    assert project["requires-python"] == ">=3.11"
    required = {
        "torch",
        "torchvision",
        "numpy",
        "scipy",
        "scikit-image",
        "scikit-learn",
        "pandas",
        "click",
        "pluggy",
        "tabulate",
    }
    names = {
        dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]
    }
    assert required <= names
    test_extra = {d.split(">")[0] for d in project["optional-dependencies"]["test"]}
    assert {"pytest", "pytest-benchmark", "ruff"} <= test_extra
    assert project["scripts"]["ctbench"] == "ctbench.cli:main"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {
        "ctbench": "harness",
        "ctbench.plugins": "plugins",
    }


def test_no_top_level_harness_or_plugins_module_is_installed(tmp_path: Path):
    probe = (
        "import importlib.util as u, ctbench, ctbench.plugins\n"
        "print(u.find_spec('harness'), u.find_spec('plugins'), ctbench.plugins.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["None", "None", "ctbench.plugins"]


def test_wheel_holds_every_module_under_the_ctbench_namespace(tmp_path: Path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(tmp_path.glob("ctbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    top_levels = {name.split("/")[0] for name in names}
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert top_levels == {"ctbench", dist_info}
    for dotted_root, root in PACKAGE_ROOTS.items():
        for source in root.rglob("*.py"):
            if "__pycache__" in source.parts:
                continue
            archived = "/".join((*dotted_root.split("."), *source.relative_to(root).parts))
            assert archived in names, f"{source} is missing from the wheel"
