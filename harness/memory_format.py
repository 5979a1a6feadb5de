"""Deprecated alias: ``ctbench.memory_format`` moved to ``ctbench.runtime.memory_format``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.runtime.memory_format")
