"""Deprecated alias: ``ctbench.explanation_scores`` moved to ``ctbench.evaluate.explanation_scores``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.evaluate.explanation_scores")
