"""Deprecated alias: ``ctbench.progress`` moved to ``ctbench.runtime.progress``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.runtime.progress")
