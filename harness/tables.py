"""Deprecated alias: ``ctbench.tables`` moved to ``ctbench.report.tables``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.report.tables")
