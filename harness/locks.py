"""Deprecated alias: ``ctbench.locks`` moved to ``ctbench.runtime.locks``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.runtime.locks")
