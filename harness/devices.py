"""Deprecated alias: ``ctbench.devices`` moved to ``ctbench.runtime.devices``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.runtime.devices")
