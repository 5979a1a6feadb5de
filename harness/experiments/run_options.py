"""Run option values -> a resolved :class:`RunConfig`, checked by the fields' own rules.

``ctbench run`` and every matrix cell build their config here (:func:`config_from_options`),
so the command line and a spec accept the same values and a matrix never goes through click:
each RunConfig field's metadata (:func:`ctbench.experiments.run_config.option`) holds its rules
(a plugin kind, choices, bounds, a folder that must exist), and :func:`checked` applies them.
:func:`run_arguments` writes the same options back as ``ctbench run`` arguments (``ctbench
matrix --cell-args``), and the tests check that click parses them to the same config.
"""

from __future__ import annotations

import math
import typing
from dataclasses import Field
from pathlib import Path
from typing import Any

from ctbench.experiments.run_config import (
    START_NAMES,
    RunConfig,
    field_for_key,
    field_types,
    option_name,
)


def config_from_options(options: dict[str, Any]) -> RunConfig:
    """The resolved RunConfig of ``options`` (keys: option names such as ``lambda`` and
    ``explainer``, or field names); an unknown key or a value its field refuses is a
    ValueError naming the option. ``explainers`` left empty means the default explainers.
    This is the one path from option values to a run's config."""
    values: dict[str, Any] = {}
    for key, value in options.items():
        run_field = field_for_key(key)
        values[run_field.name] = checked(run_field, value)
    if values.get("explainers") == ():  # no --explainer given: the declared defaults
        values["explainers"] = None
    _check_start(values)
    return RunConfig(**values).resolved()


def checked(run_field: Field, value: Any) -> Any:
    """``value`` for ``run_field`` as RunConfig stores it, or a ValueError saying why not."""
    meta, flag = run_field.metadata, option_flag(run_field)
    if value is None:
        if run_field.default is not None:
            raise ValueError(f"{flag}: a value is required")
        return None
    if repeatable(run_field):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError(f"{flag}: expected a name or a list of names, got {value!r}")
        return tuple(dict.fromkeys(_one_value(run_field, meta, flag, item) for item in items))
    if run_field.name == "dataset_options":
        return dataset_options(value)
    return _one_value(run_field, meta, flag, value)


def dataset_options(value: Any) -> dict[str, Any]:
    """A spec's table of dataset options, or ``ctbench run --dataset-option KEY=VALUE``'s
    strings (each VALUE read as JSON when it is, else as text): one dict."""
    import json

    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, list | tuple):
        raise ValueError(f"--dataset-option: expected KEY=VALUE items, got {value!r}")
    options: dict[str, Any] = {}
    for item in value:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--dataset-option {item!r}: write KEY=VALUE")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options


def _one_value(run_field: Field, meta, flag: str, value: Any) -> Any:
    base = base_type(field_types()[run_field.name])
    if meta.get("plugin"):
        return _plugin_name(meta["plugin"], value, flag)
    if meta.get("folder") or run_field.name == "weights":
        return _existing(value, flag, folder=bool(meta.get("folder")))
    if run_field.name == "start":
        base, meta = str, {"choices": START_NAMES}
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{flag}: expected true or false, got {value!r}")
        return value
    if base in (int, float) and isinstance(value, str):  # as the command line gives it
        value = _number(value, base, flag)
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{flag}: expected an integer, got {value!r}")
        _check_bounds(value, meta, flag)
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{flag}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{flag}: {value!r} is not a finite number")
        if meta.get("positive") and value <= 0:
            raise ValueError(f"{flag}: must be above 0, got {value!r}")
        _check_bounds(value, meta, flag)
        return value
    if not isinstance(value, str):
        raise ValueError(f"{flag}: expected a string, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ValueError(f"{flag}: {value!r} is not one of {', '.join(meta['choices'])}")
    return value


def _number(text: str, kind: type, flag: str) -> float:
    try:
        return kind(text.strip())
    except ValueError:
        word = "an integer" if kind is int else "a number"
        raise ValueError(f"{flag}: expected {word}, got {text!r}") from None


def _check_bounds(value: float, meta, flag: str) -> None:
    low, high = meta.get("minimum"), meta.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{low if low is not None else '-inf'} to {high if high is not None else 'inf'}"
        raise ValueError(f"{flag}: {value!r} is not in the range {span}")


def _plugin_name(kind: str, value: Any, flag: str) -> str:
    from ctbench.core.registry import PluginError, default_registry

    try:
        return default_registry().get(kind, str(value)).name
    except PluginError as error:
        raise ValueError(f"{flag}: {error}") from error


def _existing(value: Any, flag: str, *, folder: bool) -> str:
    path = Path(str(value))
    if not (path.is_dir() if folder else path.is_file()):
        raise ValueError(f"{flag}: {path} is not an existing {'folder' if folder else 'file'}")
    return str(path.resolve())


def start_problem(start: str | None, pretrained: bool | None, weights: Any) -> str:
    """Why ``--start``, ``--pretrained`` and ``--weights`` contradict each other ("" when
    they do not): ``start`` excludes the other two, and ``weights`` implies pretrained."""
    if start is not None and (pretrained is not None or weights is not None):
        return "give either --start or --pretrained/--no-pretrained/--weights"
    if weights is not None and pretrained is False:
        return "--weights loads pretrained weights; drop --no-pretrained"
    return ""


def _check_start(values: dict[str, Any]) -> None:
    start, pretrained, weights = (values.get(k) for k in ("start", "pretrained", "weights"))
    problem = start_problem(start, pretrained, weights)
    if problem:
        raise ValueError(problem)
    if weights is not None:
        values["pretrained"] = True


def repeatable(run_field: Field) -> bool:
    """Whether the option is given once per value (``--explainer a --explainer b``)."""
    hint = field_types()[run_field.name]
    return any(typing.get_origin(h) is tuple for h in (hint, *typing.get_args(hint)))


def base_type(hint):
    """``int`` of ``int | None``, ``str`` of ``tuple[str, ...]``."""
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    return base_type(args[0]) if args else hint


def option_flag(run_field: Field) -> str:
    """The field's ``ctbench run`` option: ``--lambda`` for ``mask_lambda``."""
    return "--" + option_name(run_field).replace("_", "-")


def run_arguments(options: dict[str, Any]) -> list[str]:
    """``ctbench run`` arguments for option values: ``{"mask_loss": True, "explainer": ["a",
    "b"]}`` -> ``["--mask-loss", "--explainer", "a", "--explainer", "b"]``; a ValueError for an
    unknown key or a list given to a one-value option. ``dataset_options`` become
    ``--dataset-option KEY=JSON`` items."""
    import json

    args: list[str] = []
    for key, value in options.items():
        run_field = field_for_key(key)
        if value is None:
            continue
        if run_field.name == "dataset_options":
            for name, one in dataset_options(value).items():
                args += ["--dataset-option", f"{name}={json.dumps(one)}"]
            continue
        flag = option_flag(run_field)
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
            continue
        values = value if isinstance(value, list | tuple) else [value]
        if len(values) != 1 and not repeatable(run_field):
            raise ValueError(f"{key!r} takes one value, not {value!r}")
        for one in values:
            args += [flag, str(one)]
    return args
