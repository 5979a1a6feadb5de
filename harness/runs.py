"""Deprecated alias: ``ctbench.runs`` moved to ``ctbench.experiments.runs``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.experiments.runs")
