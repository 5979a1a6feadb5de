"""Deprecated alias: ``ctbench.commands.matrix`` moved to ``ctbench.cli.commands.matrix``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.cli.commands.matrix")
