"""Deprecated alias: ``ctbench.commands.segment`` moved to ``ctbench.cli.commands.segment``
(docs/package-map.md); the old path goes in 0.3."""

from ctbench._moved import alias

alias(__name__, "ctbench.cli.commands.segment")
