"""Deprecated alias: ``ctbench.metrics`` moved to ``ctbench.evaluate.metrics``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.evaluate.metrics")
