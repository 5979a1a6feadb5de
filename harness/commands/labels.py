"""Deprecated alias: ``ctbench.commands.labels`` moved to ``ctbench.cli.commands.labels``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.cli.commands.labels")
