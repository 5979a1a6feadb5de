"""Deprecated alias: ``ctbench.training`` moved to ``ctbench.train.training``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.train.training")
