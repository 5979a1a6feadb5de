"""Deprecated alias: ``ctbench.partition`` moved to ``ctbench.regions.partition``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.regions.partition")
