"""The ``ctbench`` command line (docs/running.md).

Subcommands live in ``ctbench.cli.commands.<name>`` and are imported only when they run (or when
``--help`` lists their one-line help), so ``ctbench --help`` imports neither torch nor any
plugin. A new command is one module in ``harness/commands/`` plus one line in ``COMMANDS``.
"""

from __future__ import annotations

import errno
import importlib
import sys
from pathlib import Path

import click

COMMANDS: dict[str, str] = {
    "compare": "ctbench.cli.commands.compare:compare",
    "data": "ctbench.cli.commands.data:data",
    "explain": "ctbench.cli.commands.explain:explain",
    "faithfulness": "ctbench.cli.commands.faithfulness:faithfulness",
    "labels": "ctbench.cli.commands.labels:labels",
    "matrix": "ctbench.cli.commands.matrix:matrix",
    "model": "ctbench.cli.commands.model:model",
    "plugins": "ctbench.cli.commands.plugins:plugins",
    "pretrain": "ctbench.cli.commands.pretrain:pretrain",
    "report": "ctbench.cli.commands.report:report",
    "run": "ctbench.cli.commands.run:run",
    "sanity": "ctbench.cli.commands.sanity:sanity",
    "segment": "ctbench.cli.commands.segment:segment",
    "table": "ctbench.cli.commands.table:table",
}
"""Command name -> ``module:attribute`` of its click command."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def invoke(self, ctx: click.Context):
        """Run the subcommand; the failures a user can meet anywhere (a full disk, a folder in
        use, a file too large or badly named) are one line, and no message prints a control
        character raw (a NUL byte in a name is shown escaped)."""
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            error.message = escape_controls(error.message)
            raise
        except Exception as error:
            message = user_error(error)
            if message is None:
                raise
            raise click.ClickException(escape_controls(message)) from error

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, cmd_name)


def escape_controls(text: str) -> str:
    """``text`` with control characters other than newline and tab escaped (``\\x00``)."""
    return "".join(
        c if c in "\n\t" or (ord(c) >= 32 and ord(c) != 127) else f"\\x{ord(c):02x}" for c in text
    )


def user_error(error: Exception) -> str | None:
    """The one-line message of an error a user meets whatever the command
    (docs/reliability.md), or None for a real bug, whose traceback must show."""
    from ctbench.runtime.locks import FolderLockedError
    from ctbench.runtime.storage import (
        DiskFullError,
        FileTooLargeError,
        NotARegularFileError,
        UnsafeNameError,
        disk_full_error,
        full_disk_cause,
    )

    said = (
        FolderLockedError,
        FileTooLargeError,
        UnsafeNameError,
        DiskFullError,
        NotARegularFileError,
    )
    if isinstance(error, said):  # their message is the one line
        return str(error)
    cause = full_disk_cause(error)
    if cause is not None:  # a write outside ctbench.runtime.storage (a log line, a library's file)
        return str(disk_full_error(cause, Path(cause.filename) if cause.filename else None))
    if isinstance(error, PermissionError | IsADirectoryError | NotADirectoryError) or (
        isinstance(error, OSError) and error.errno == errno.EROFS
    ):
        return f"{error.filename}: {error.strerror}" if error.filename else str(error)
    torch = sys.modules.get("torch")  # only a command that imported torch can run out in it
    gpu = torch is not None and isinstance(error, torch.OutOfMemoryError)
    if gpu or isinstance(error, MemoryError) or "can't allocate memory" in str(error):
        kind = "GPU" if gpu else "CPU"
        return (
            f"out of {kind} memory ({str(error).splitlines()[0][:200] or type(error).__name__}); "
            "lower --batch-size or --workers, or use a smaller preset"
        )
    return None


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="ctbench", prog_name="ctbench")
def main() -> None:
    """ctbench: explainable multiple-abnormality classification of chest CT volumes.

    Train, explain and evaluate AxialNet, HiResCAM, the mask loss, PARTITION and OrganIoU,
    and every comparison model of the paper, through installable plugins.
    """


if __name__ == "__main__":
    main()
