"""Deprecated alias: ``ctbench.matrix`` moved to ``ctbench.experiments.matrix``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.experiments.matrix")
