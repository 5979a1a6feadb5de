"""Deprecated alias: ``ctbench.api`` moved to ``ctbench.core.api``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.core.api")
