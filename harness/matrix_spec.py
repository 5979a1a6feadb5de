"""Deprecated alias: ``ctbench.matrix_spec`` moved to ``ctbench.experiments.matrix_spec``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.experiments.matrix_spec")
