"""The ``ctbench`` command line (README: Running experiments).

Subcommands live in ``ctbench.commands.<name>`` and are imported only when they run (or when
``--help`` lists their one-line help), so ``ctbench --help`` imports neither torch nor any
plugin. A new command is one module in ``harness/commands/`` plus one line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, str] = {
    "compare": "ctbench.commands.compare:compare",
    "data": "ctbench.commands.data:data",
    "explain": "ctbench.commands.explain:explain",
    "faithfulness": "ctbench.commands.faithfulness:faithfulness",
    "labels": "ctbench.commands.labels:labels",
    "matrix": "ctbench.commands.matrix:matrix",
    "model": "ctbench.commands.model:model",
    "plugins": "ctbench.commands.plugins:plugins",
    "pretrain": "ctbench.commands.pretrain:pretrain",
    "report": "ctbench.commands.report:report",
    "run": "ctbench.commands.run:run",
    "sanity": "ctbench.commands.sanity:sanity",
    "segment": "ctbench.commands.segment:segment",
    "table": "ctbench.commands.table:table",
}
"""Command name -> ``module:attribute`` of its click command."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="ctbench", prog_name="ctbench")
def main() -> None:
    """ctbench: explainable multiple-abnormality classification of chest CT volumes.

    Train, explain and evaluate AxialNet, HiResCAM, the mask loss, PARTITION and OrganIoU,
    and every comparison model of the paper, through installable plugins.
    """


if __name__ == "__main__":
    main()
