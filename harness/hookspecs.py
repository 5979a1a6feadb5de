"""Deprecated alias: ``ctbench.hookspecs`` moved to ``ctbench.core.hookspecs``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.core.hookspecs")
