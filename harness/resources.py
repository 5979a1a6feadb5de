"""Deprecated alias: ``ctbench.resources`` moved to ``ctbench.runtime.resources``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.runtime.resources")
