"""Deprecated alias: ``ctbench.volume_cache`` moved to ``ctbench.data.volume_cache``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.data.volume_cache")
