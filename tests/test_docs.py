"""The documentation holds together: a README of one screen whose links, like every page's,
lead to files that exist, and code that points only at pages that exist."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_one_screen():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; its content belongs in docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_leads_to_a_file(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.relative_to(REPO_ROOT)}: {target} does not exist"


def test_code_points_only_at_pages_that_exist():
    named = set()
    for folder in ("harness", "plugins"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            named |= set(re.findall(r"docs/[a-z0-9/_-]+\.md", path.read_text()))
    assert named, "the scan found no page named in the code"
    missing = sorted(name for name in named if not (REPO_ROOT / name).is_file())
    assert not missing, f"the code names pages that do not exist: {missing}"


def test_every_command_has_its_reference_page():
    from ctbench.cli import COMMANDS

    pages = {path.stem for path in (REPO_ROOT / "docs" / "commands").glob("*.md")}
    assert pages == set(COMMANDS), (
        f"docs/commands/ differs from the commands: {pages ^ set(COMMANDS)}"
    )
    for name, target in COMMANDS.items():
        module, attribute = target.split(":")
        text = (REPO_ROOT / "docs" / "commands" / f"{name}.md").read_text()
        assert f".. click:: {module}:{attribute}" in text and f":prog: ctbench {name}" in text
