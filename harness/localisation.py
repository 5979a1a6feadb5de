"""Deprecated alias: ``ctbench.localisation`` moved to ``ctbench.evaluate.localisation``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.evaluate.localisation")
