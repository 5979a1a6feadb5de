"""Sphinx configuration of ctbench's documentation site (MyST Markdown pages, the command
reference generated from click, the API from docstrings).

Build: ``pip install -e '.[docs]' && python -m sphinx -W -b html docs docs/_build/html``.
"""

from __future__ import annotations

from importlib import metadata

project = "ctbench"
author = "the ctbench developers"
release = metadata.version("ctbench")
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx_click"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# the paper tables are `ctbench table` output, included by results.md rather than pages of their own
exclude_patterns = [
    "_build",
    "slurm",
    "*.json",
    "paper-table1-default.md",
    "table1-default.md",
    "paper-table2-default.md",
    "mask-ladder-default.md",
]
myst_heading_anchors = 3
# pages link to source files and folders of the repository (the examples, the benchmarks):
# they are not documents, so MyST cannot resolve them as cross-references
suppress_warnings = ["myst.xref_missing"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures' annotations are strings (future annotations)
html_theme = "alabaster"
html_static_path: list[str] = []
