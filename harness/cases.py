"""Deprecated alias: ``ctbench.cases`` moved to ``ctbench.core.cases``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.core.cases")
