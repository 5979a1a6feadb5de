"""Deprecated alias: ``ctbench.faithfulness_report`` moved to
``ctbench.experiments.faithfulness_report``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.experiments.faithfulness_report")
