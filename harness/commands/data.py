"""Deprecated alias: ``ctbench.commands.data`` moved to ``ctbench.cli.commands.data``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.cli.commands.data")
