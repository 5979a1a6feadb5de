"""Deprecated alias: ``ctbench.commands.model`` moved to ``ctbench.cli.commands.model``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.cli.commands.model")
