"""Deprecated alias: ``ctbench.explanations`` moved to ``ctbench.explain.explanations``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.explain.explanations")
