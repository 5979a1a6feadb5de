"""Deprecated alias: ``ctbench.figures`` moved to ``ctbench.report.figures``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.report.figures")
