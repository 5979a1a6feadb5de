"""Old import paths of modules that moved into stage packages (docs/package-map.md).

Each old module is a two-line alias: importing it warns once (DeprecationWarning) and hands back
the module at its new path, the same object, so that code (and tests that patch it) written
against the old path keeps working for one release.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any


def alias(old: str, new: str) -> None:
    """Make module ``old`` the module ``new`` (call it from the old module's body)."""
    warnings.warn(
        f"{old} moved to {new}; the old path goes in ctbench 0.3", DeprecationWarning, stacklevel=3
    )
    sys.modules[old] = importlib.import_module(new)


def moved_names(package: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a package that was a module: its old names resolve from
    ``new``, with a DeprecationWarning."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        module = importlib.import_module(new)
        if not hasattr(module, name):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(
            f"{package}.{name} moved to {new}.{name}; the old path goes in ctbench 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(module, name)

    return __getattr__
