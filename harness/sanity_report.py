"""Deprecated alias: ``ctbench.sanity_report`` moved to ``ctbench.experiments.sanity_report``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.experiments.sanity_report")
