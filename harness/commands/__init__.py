"""One module per ``ctbench`` subcommand, plus the parameter types they share."""

from __future__ import annotations

from typing import Any

import click
from ctbench.registry import SINGULAR, PluginError, default_registry


class PluginName(click.ParamType):
    """A plugin name of one kind, checked against the registry when the command runs.

    Validation is deferred to conversion so that ``--help`` loads no plugin; a wrong name is
    a usage error with the registry's message (known names and the closest match).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = SINGULAR[kind]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return default_registry().get(self.kind, str(value)).name
        except PluginError as error:
            self.fail(str(error), param, ctx)
