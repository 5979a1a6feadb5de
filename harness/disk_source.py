"""Deprecated alias: ``ctbench.disk_source`` moved to ``ctbench.data.disk_source``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.data.disk_source")
