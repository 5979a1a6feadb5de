"""Deprecated alias: ``ctbench.segmentation`` moved to ``ctbench.regions.segmentation``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.regions.segmentation")
