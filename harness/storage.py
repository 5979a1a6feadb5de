"""Deprecated alias: ``ctbench.storage`` moved to ``ctbench.runtime.storage``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.runtime.storage")
