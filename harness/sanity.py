"""Deprecated alias: ``ctbench.sanity`` moved to ``ctbench.explain.sanity``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.explain.sanity")
