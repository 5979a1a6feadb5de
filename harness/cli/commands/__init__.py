"""One module per ``ctbench`` subcommand, plus the parameter types and options they share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from ctbench.core.registry import SINGULAR, PluginError, default_registry
from ctbench.experiments.run_config import MAX_SEED, START_NAMES


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


def plugin_option(*declarations: str, kind: str, multiple: bool = False, **settings: Any):
    """An option naming a plugin of ``kind`` whose default is the installed plugin that declares
    ``default=True`` (``multiple``: every one that does, in registration order), looked up only
    when the command runs: the core names no plugin, and ``--help`` loads none."""
    singular = SINGULAR[kind]

    def default():
        from ctbench.core.contracts import default_names

        return tuple(default_names(kind)) if multiple else default_plugin(kind)

    shown = f"the {kind} that declare" if multiple else f"the {singular} that declares"
    shown += " default=True"
    return click.option(
        *declarations,
        type=PluginName(kind),
        multiple=multiple,
        default=default,
        show_default=shown,
        **settings,
    )


def default_plugin(kind: str) -> str:
    """The installed plugin of ``kind`` that declares ``default=True``; none or several is a
    usage error saying how to name one."""
    from ctbench.core.contracts import default_name

    try:
        return default_name(kind)
    except ValueError as error:
        raise click.UsageError(str(error)) from error


def dataset_option(command: Callable) -> Callable:
    """``--dataset NAME`` (default: the dataset that declares ``default=True``)."""
    return plugin_option("--dataset", "dataset_name", kind="datasets", help="Dataset.")(command)


class FiniteFloat(click.FloatRange):
    """A float option that refuses ``nan`` and ``inf`` at parse time (a NaN learning rate or
    lambda would otherwise fail, or be recorded, only after the data and PARTITION steps)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


SEED = click.IntRange(0, MAX_SEED)
"""Every ``--seed``: numpy's and torch's generators take 0 .. 2**32 - 1."""


class InputShape(click.ParamType):
    """A model input shape ``H,C,Y,X`` (slice groups, channels, rows, columns)."""

    name = "H,C,Y,X"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        try:
            shape = tuple(int(part) for part in str(value).replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if len(shape) != 4 or min(shape) < 1:
            self.fail(f"{value!r} is not four positive integers H,C,Y,X (e.g. 16,3,128,128)")
        return shape


class DeviceName(click.ParamType):
    """``--device``: a device that exists here, as a ``torch.device`` (torch is imported only
    when the command runs, not for ``--help``); one that does not is a usage error."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        from ctbench.runtime.devices import DeviceError, resolve_device

        try:
            return resolve_device(value)
        except DeviceError as error:
            self.fail(str(error), param, ctx)


def device_option(note: str = "") -> Callable[[Callable], Callable]:
    """``--device auto|cpu|cuda|cuda:N|mps`` (default auto), as explain, segment and pretrain
    take it (``ctbench run`` has it among its run options)."""
    from ctbench.runtime.device_names import DEVICE_HELP

    return click.option(
        "--device",
        type=DeviceName(),
        default="auto",
        show_default=True,
        help=f"{DEVICE_HELP} {note}".strip(),
    )


def weights_options(command: Callable) -> Callable:
    """``--start``, ``--pretrained/--no-pretrained`` and ``--weights PATH``, as every model
    command takes them.

    Unset means "the preset decides" (``None``); ``--weights`` implies pretrained, and
    ``--start`` excludes the other two (:func:`check_start`). :func:`resolve_weights` turns
    ``--pretrained``/``--weights`` into the options recorded in config.json.
    """
    command = click.option(
        "--start",
        type=click.Choice(START_NAMES),
        default=None,
        help="Where ResNet-18 starts: pretext (the dataset's own, `ctbench pretrain`, built once "
        "and cached), imagenet or random. Default: the preset's (phantom: pretext; paper: "
        "imagenet); random for models trained from scratch (axialnet-randinit, 3dconv).",
    )(command)
    command = click.option(
        "--weights",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="Local torchvision ResNet-18 weights file (implies --pretrained).",
    )(command)
    return click.option(
        "--pretrained/--no-pretrained",
        default=None,
        help="Start ResNet-18 from torchvision's ImageNet weights (torch hub cache, downloaded "
        "there when online) or from "
        "random weights: the same as --start imagenet / --start random.",
    )(command)


def resolve_weights(
    pretrained: bool | None, weights: Path | None, preset_default: bool | None = False
) -> dict[str, Any]:
    """The ``pretrained`` / ``weights`` model options, resolved and JSON-ready."""
    check_start(None, pretrained, weights)
    if weights is not None:
        return {"pretrained": True, "weights": str(weights.resolve())}
    return {"pretrained": preset_default if pretrained is None else pretrained, "weights": None}


def check_start(start: str | None, pretrained: bool | None, weights: Path | None) -> None:
    """``--start``, ``--pretrained`` and ``--weights`` contradicting each other is a usage
    error (``ctbench.experiments.run_options.start_problem``, the rule matrix cells follow)."""
    from ctbench.experiments.run_options import start_problem

    problem = start_problem(start, pretrained, weights)
    if problem:
        raise click.UsageError(problem)


def track_option(command: Callable) -> Callable:
    """``--track mlflow``, as ``ctbench run`` and ``ctbench matrix`` take it."""
    return click.option(
        "--track",
        type=click.Choice(["mlflow"]),
        default=None,
        help="Log each finished run to MLflow (pip install 'ctbench[mlflow]'): "
        "MLFLOW_TRACKING_URI, default a local store in ./mlruns.",
    )(command)


def run_folder_argument() -> Callable[[Callable], Callable]:
    """``RUN``: an existing run folder (the commands that study a finished run)."""
    return click.argument(
        "run_folder", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path)
    )


def run_study_options(cases: int, purpose: str) -> Callable[[Callable], Callable]:
    """``--explainer`` (repeat; default the run's), ``--cases`` and ``--split``, for commands
    that study a run's explanations on some volumes of a split."""

    def decorate(command: Callable) -> Callable:
        for option in reversed(
            (
                click.option(
                    "--explainer",
                    "explainers",
                    type=PluginName("explainers"),
                    multiple=True,
                    help=f"Explainers to {purpose} (repeat). Default: the run's.",
                ),
                click.option(
                    "--cases",
                    type=click.IntRange(min=cases),
                    default=8,
                    show_default=True,
                    help="Volumes to use.",
                ),
                click.option(
                    "--split",
                    type=click.Choice(["valid", "test"]),
                    default="test",
                    show_default=True,
                ),
            )
        ):
            command = option(command)
        return command

    return decorate
