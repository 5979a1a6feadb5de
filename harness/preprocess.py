"""Deprecated alias: ``ctbench.preprocess`` moved to ``ctbench.data.preprocess``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.data.preprocess")
