"""Deprecated: ``ctbench.commands`` moved to ``ctbench.cli.commands`` (docs/package-map.md); this
path goes in 0.3."""

from ctbench._moved import moved_names

__getattr__ = moved_names(__name__, "ctbench.cli.commands")
