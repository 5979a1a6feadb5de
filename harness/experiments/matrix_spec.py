"""Matrix specs: a TOML file of base ``ctbench run`` options and axes to cross -> cells.

A spec (docs/matrices.md)::

    [run]                  # base options: ctbench run's long options, dashes as underscores
    preset = "tiny"
    [axes]                 # each key a run option, each value the list of values to cross
    arch = ["axialnet", "bodycam"]
    explainer = [["hirescam", "gradcam"]]   # a repeatable option takes a list per value
    mask_loss = [false, true]
    [[exclude]]            # optional: drop every crossed cell that matches all these options
    arch = "bodycam"
    mask_loss = true
    [[include]]            # optional: extra cells, each the base options plus these
    arch = "ctnet"
    [slurm]                # optional: submitit parameters for --launcher slurm

Each cell's options are checked by the rules of RunConfig's fields and resolved on the same path
``ctbench run`` takes (``ctbench.experiments.run_options``), so a spec accepts what the command
line accepts (plugin names included, third-party ones too) and a cell's folder is the one
``ctbench run`` gives the same options; no cell goes through click.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

SECTIONS = ("name", "description", "table", "run", "axes", "include", "exclude", "slurm")
MATRIX_OWNED = ("out", "name", "resume", "overwrite", "quiet", "track")
"""``ctbench run`` options the matrix sets itself; a spec may not."""


class SpecError(ValueError):
    """A spec that cannot be read or names an option or value ``ctbench run`` refuses."""


@dataclass
class MatrixSpec:
    """A parsed spec; ``source`` is the file or shipped name it came from."""

    source: str
    run: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    include: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    slurm: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    table: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The spec as matrix.json records it (without where it was read from)."""
        return {key: value for key, value in asdict(self).items() if key != "source"}


@dataclass
class Cell:
    """One run of the matrix: its options, the ``ctbench run`` arguments, its config."""

    options: dict[str, Any]
    args: list[str]
    config: Any  # RunConfig, resolved
    folder: str

    def to_json(self) -> dict[str, Any]:
        return {"options": self.options, "args": self.args, "folder": self.folder}


def shipped_specs() -> dict[str, str]:
    """Name -> description of the specs in the package (``ctbench matrix --list``)."""
    found = {}
    for entry in sorted(resources.files("ctbench.specs").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            spec = parse_spec(entry.read_text(), entry.name[:-5])
            found[entry.name[:-5]] = spec.description
    return found


def load_spec(name_or_path: str | Path) -> MatrixSpec:
    """A spec file, or a shipped spec by name (``paper-table1``); files are read bounded
    (``READ_LIMITS["spec"]``)."""
    from ctbench.runtime.storage import printable, read_text

    if "\x00" in str(name_or_path):
        raise SpecError(f"{printable(str(name_or_path))}: not a file name (it holds a NUL byte)")
    path = Path(name_or_path)
    if path.exists() and not path.is_dir():  # a file, or a pipe or device (read bounded)
        try:
            return parse_spec(read_text(path, "spec"), str(path))
        except OSError as error:
            raise SpecError(f"{path}: unreadable ({error.strerror or error})") from error
        except ValueError as error:  # too large, not UTF-8
            raise SpecError(str(error)) from error
    shipped = resources.files("ctbench.specs") / f"{name_or_path}.toml"
    if "/" not in str(name_or_path) and shipped.is_file():
        return parse_spec(shipped.read_text(), str(name_or_path))
    raise SpecError(
        f"{printable(str(name_or_path))}: no such spec file, and no shipped spec of that name "
        f"(shipped: {', '.join(shipped_specs())})"
    )


SECTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "description": str,
    "table": (str, list),
    "run": dict,
    "axes": dict,
    "include": list,
    "exclude": list,
    "slurm": dict,
}


def parse_spec(text: str, source: str) -> MatrixSpec:
    from ctbench.runtime.storage import UnsafeNameError, safe_name

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{source}: not valid TOML ({error})") from error
    except RecursionError as error:  # arrays nested thousands deep
        raise SpecError(f"{source}: nested too deeply to be a spec") from error
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise SpecError(
            f"{source}: unknown section(s) {sorted(unknown)}; a spec has {', '.join(SECTIONS)}"
        )
    for key, kind in SECTION_TYPES.items():
        if key in data and not isinstance(data[key], kind):
            raise SpecError(f"{source}: {key!r} must be a {_kind_text(kind)}")
    for key in ("include", "exclude"):
        if not all(isinstance(rule, dict) for rule in data.get(key, [])):
            raise SpecError(f"{source}: each [[{key}]] must be a table of run options")
    for key, values in data.get("axes", {}).items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"{source}: axis {key!r} must be a non-empty list of values")
    table = data.get("table", [])
    name = data.get("name", Path(source).stem)
    try:
        safe_name(name, "the spec's name")
    except UnsafeNameError as error:  # it names the matrix's folder: never a path
        raise SpecError(f"{source}: {error}") from error
    return MatrixSpec(
        source=source,
        run=dict(data.get("run", {})),
        axes=dict(data.get("axes", {})),
        include=list(data.get("include", [])),
        exclude=list(data.get("exclude", [])),
        slurm=dict(data.get("slurm", {})),
        name=name,
        description=data.get("description", ""),
        table=[table] if isinstance(table, str) else list(table),
    )


def _kind_text(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    words = {str: "string", list: "list", dict: "table"}
    return " or ".join(words[k] for k in kinds)


DEFAULT_MAX_CELLS = 5000
"""The most cells a matrix expands to unless ``--max-cells`` raises it: a spec that crosses
more is refused before anything is expanded (a typo in an axis can ask for millions)."""


def count_cells(spec: MatrixSpec) -> int:
    """An upper bound of the spec's cells (the axes' product plus the includes), computed
    without expanding anything."""
    return math.prod(len(values) for values in spec.axes.values()) + len(spec.include)


def check_size(spec: MatrixSpec, max_cells: int = DEFAULT_MAX_CELLS) -> int:
    """The spec's cell count bound; more than ``max_cells`` is a SpecError saying how to
    raise the limit."""
    count = count_cells(spec)
    if count > max_cells:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in spec.axes.items()) or "no axis"
        raise SpecError(
            f"{spec.source}: the spec crosses {sizes} = {count:,} cells, more than the limit of "
            f"{max_cells:,}; check its axes, or raise the limit with --max-cells"
        )
    return count


def apply_settings(spec: MatrixSpec, settings: list[str]) -> MatrixSpec:
    """``--set KEY=VALUE`` overrides: ``preset=tiny`` (a base option), ``axes.seed=[0, 1]``;
    the value is TOML (a bare word is taken as a string)."""
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep:
            raise SpecError(f"--set {setting!r}: expected KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        except RecursionError as error:
            raise SpecError(f"--set {key}: the value is nested too deeply") from error
        section, _, name = key.strip().rpartition(".")
        section = section or "run"
        if section not in ("run", "axes", "slurm"):
            raise SpecError(f"--set {setting!r}: the key's section must be run, axes or slurm")
        if section == "axes" and not isinstance(value, list):
            value = [value]
        if section == "axes" and not value:
            raise SpecError(f"--set {setting!r}: an axis needs at least one value")
        getattr(spec, section)[name] = value
        if section == "run":
            spec.axes.pop(name, None)  # a base option set by hand replaces its axis
        elif section == "axes":
            spec.run.pop(name, None)
    return spec


def expand_cells(spec: MatrixSpec, max_cells: int = DEFAULT_MAX_CELLS) -> list[Cell]:
    """Every cell of the spec in a fixed order: the axes' product (first axis slowest), less
    the excluded, plus the included; cells with the same run folder appear once. A spec of
    more than ``max_cells`` cells is refused first (:func:`check_size`)."""
    check_size(spec, max_cells)
    keys = list(spec.axes)
    combos = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.axes.values())
    ]
    combos = [
        c for c in combos if not any(_matches({**spec.run, **c}, rule) for rule in spec.exclude)
    ]
    combos += [dict(extra) for extra in spec.include]
    cells, seen = [], set()
    for combo in combos:
        cell = make_cell(spec, {**spec.run, **combo})
        if cell.folder not in seen:
            seen.add(cell.folder)
            cells.append(cell)
    return cells


def _matches(combo: dict[str, Any], rule: dict[str, Any]) -> bool:
    return all(key in combo and combo[key] == value for key, value in rule.items())


def make_cell(spec: MatrixSpec, options: dict[str, Any]) -> Cell:
    """One cell: its options checked by RunConfig's field rules and resolved
    (:func:`ctbench.experiments.run_options.config_from_options`, the same path ``ctbench run``
    takes), and the ``ctbench run`` arguments that give the same config."""
    from ctbench.experiments.run_options import config_from_options, run_arguments

    for key in options:
        if key in MATRIX_OWNED:
            raise SpecError(f"{spec.source}: {key!r} is set by the matrix, not by a spec")
    try:
        config = config_from_options(options)
        args = run_arguments(options)
    except KeyError as error:  # an unknown option: the message lists the known ones
        raise SpecError(f"{spec.source}: {error.args[0]}") from error
    except (ValueError, TypeError) as error:
        raise SpecError(f"{spec.source}: cell {options}: {error}") from error
    return Cell(options=options, args=args, config=config, folder=config.folder_name())


def shard_cells(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Shard ``i/n`` (1-based) takes cells i, i+n, i+2n, ... of the spec's order: the same
    spec gives every machine a fixed, disjoint share, and the shares cover all cells."""
    if shard is None:
        return cells
    index, count = shard
    return cells[index - 1 :: count]
