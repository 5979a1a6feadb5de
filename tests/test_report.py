"""ctbench report: one self-contained page, opened in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium here (.ci/run installs Debian's chromium where it can)")


def open_in_browser(page: Path) -> tuple[str, list[str]]:
    """The DOM Chromium renders for ``page`` and the console messages it logged."""
    result = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=3000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def test_console_check_catches_a_broken_page(tmp_path):
    """The check below would see a script error: a page with one is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    _, console = open_in_browser(page)
    assert any("boom" in line for line in console)
    assert any("missing is not defined" in line for line in console)


def test_report_renders_offline_with_tables_and_images(finished_run, tmp_path):
    from ctbench.cli import main

    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(finished_run), "--out", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    # self-contained: nothing fetched from anywhere, no script at all
    assert not re.search(r"""(src|href)=['"](?!data:)""", text) and "<script" not in text
    dom, console = open_in_browser(page)
    assert console == []
    assert dom.count("<table") >= 2 and "test AUROC median" in dom
    assert "lung_nodule" in dom  # the per-label table
    images = re.findall(r"<img alt=\"([^\"]+)\" src=\"data:image/png;base64,", dom)
    for expected in ("AUROC per label with 95% CI", "OrganIoU per label and explainer",
                     "loss curves", "per-slice scores"):  # fmt: skip
        assert expected in images
    assert sum(1 for alt in images if alt.startswith(("tst", "test"))) >= 1  # overlays


def test_report_of_a_matrix_has_its_cells_and_tables(finished_run, tmp_path):
    import json

    from ctbench.report.html import build_report

    matrix = tmp_path / "m"
    for seed in (0, 1):
        shutil.copytree(finished_run, matrix / f"run{seed}")
    cells = [{"folder": f"run{s}", "status": "done", "seconds": 1.0} for s in (0, 1)]
    state = {"spec": {"table": ["1", "2"]}, "spec_source": "paper-table1", "cells": cells}
    (matrix / "matrix.json").write_text(json.dumps(state))
    text = build_report(matrix)
    assert "Matrix (paper-table1)" in text and "Table 1: architecture comparison" in text
    assert "Table 2: table 2 needs runs with mask_loss" in text  # says why it is not there
    assert text.count("<details>") == 2
