"""Deprecated alias: ``ctbench.io`` moved to ``ctbench.data.io``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.data.io")
