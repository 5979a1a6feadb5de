"""Deprecated alias: ``ctbench.distributed`` moved to ``ctbench.runtime.distributed``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.runtime.distributed")
