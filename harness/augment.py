"""Deprecated alias: ``ctbench.augment`` moved to ``ctbench.data.augment``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.data.augment")
