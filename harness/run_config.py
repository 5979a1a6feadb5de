"""Deprecated alias: ``ctbench.run_config`` moved to ``ctbench.experiments.run_config``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.experiments.run_config")
