"""Plugin registries (docs/plugins/README.md).

A :class:`Registry` owns one fresh pluggy manager. It loads the plugin modules named by the
``ctbench`` entry points, calls each plugin's ``register_*`` hooks with a ``register``
callable that remembers which distribution provided the name, and looks plugins up by kind and
name. Nothing happens at import time: :func:`default_registry` builds the process-wide
registry on first use and :func:`reset_default_registry` forgets it (tests, new installs).

Failures stay local: a plugin that fails to import or to register gives one
:class:`PluginWarning` naming it and its error; a name registered by two providers is an
error naming both, raised only when that name is looked up; every other plugin keeps working.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any

import pluggy
from ctbench.core import hookspecs
from ctbench.core.contracts import metadata_problem
from ctbench.core.hookspecs import KINDS, PROJECT_NAME

SINGULAR = {
    "architectures": "architecture",
    "explainers": "explainer",
    "segmenters": "segmenter",
    "downsamplers": "downsampler",
    "datasets": "dataset",
    "labelers": "labeler",
}

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
"""Registered names: lower case letters, digits, '.' and '-' (e.g. ``axialnet-maxpool``)."""


class PluginError(Exception):
    """A plugin could not be found, loaded or registered."""


class UnknownPluginError(PluginError, LookupError):
    """No plugin of that kind has that name."""


class DuplicatePluginError(PluginError):
    """Two providers registered the same name for the same kind."""


class PluginWarning(UserWarning):
    """A plugin failed to import or register; the other plugins still work."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered name: what builds it, who provides it, and what it says of itself."""

    kind: str
    name: str
    factory: Callable[..., Any]
    provider: str
    description: str
    meta: Mapping[str, Any] = field(default_factory=dict)


def normalise_name(name: str) -> str:
    """User-facing lookup is case-insensitive and accepts '_' for '-' (``AxialNet_MaxPool``)."""
    return name.strip().lower().replace("_", "-")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds are {', '.join(KINDS)}")


def new_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager that knows ctbench's hook specifications and nothing else."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


class Registry:
    """Every plugin name of every kind, collected from the plugins of one plugin manager."""

    def __init__(
        self, manager: pluggy.PluginManager, providers: Mapping[str, str] | None = None
    ) -> None:
        """Collect registrations; ``providers`` maps pluggy plugin names to distributions."""
        self.manager = manager
        self._providers = dict(providers or {})
        self._entries: dict[str, dict[str, list[PluginEntry]]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            self._collect(kind)

    # --- construction --------------------------------------------------------------------

    @classmethod
    def from_entry_points(cls, group: str = PROJECT_NAME) -> Registry:
        """Load every installed plugin module of the entry-point ``group``."""
        manager = new_plugin_manager()
        providers: dict[str, str] = {}
        entry_points = sorted(
            metadata.entry_points(group=group),
            key=lambda ep: (_distribution_name(ep), ep.name),
        )
        for entry_point in entry_points:
            provider = _distribution_name(entry_point)
            plugin_name = f"{provider}:{entry_point.name}"
            try:
                module = entry_point.load()
            except Exception as error:  # any import-time failure stays local to the plugin
                _warn(
                    f"ctbench plugin {entry_point.name!r} ({entry_point.value}) from "
                    f"distribution {provider!r} failed to import: "
                    f"{type(error).__name__}: {error}. Its plugins are unavailable."
                )
                continue
            if _register_module(manager, module, plugin_name):
                providers[plugin_name] = provider
        return cls(manager, providers)

    @classmethod
    def from_plugins(cls, plugins: Mapping[str, object] | Iterable[tuple[str, object]]) -> Registry:
        """Build a registry from plugin objects, keyed by provider name (tests, notebooks)."""
        manager = new_plugin_manager()
        items = plugins.items() if isinstance(plugins, Mapping) else plugins
        providers = {}
        for provider, plugin in items:
            if _register_module(manager, plugin, provider):
                providers[provider] = provider
        return cls(manager, providers)

    def _collect(self, kind: str) -> None:
        hook = getattr(self.manager.hook, f"register_{kind}")
        for impl in hook.get_hookimpls():
            provider = self._providers.get(impl.plugin_name, impl.plugin_name)
            try:
                impl.function(register=self._register_function(kind, provider))
            except Exception as error:
                _warn(
                    f"ctbench plugin {impl.plugin_name!r} failed in register_{kind}: "
                    f"{type(error).__name__}: {error}. Names it registered before the error "
                    "are kept."
                )

    def _register_function(self, kind: str, provider: str) -> Callable[..., None]:
        def register(
            name: str, factory: Callable[..., Any], *, description: str = "", **meta: Any
        ) -> None:
            problem = _registration_problem(kind, name, factory, description, meta)
            if problem:
                _warn(f"ctbench plugin {provider!r} registered a bad {SINGULAR[kind]}: {problem}")
                return
            entry = PluginEntry(
                kind, name, factory, provider, description.strip(), MappingProxyType(meta)
            )
            same_name = self._entries[kind].setdefault(name, [])
            same_name.append(entry)
            if len(same_name) > 1:
                _warn(
                    f"ctbench {SINGULAR[kind]} {name!r} is registered by "
                    f"{_providers_text(same_name)}; uninstall one of them to use it."
                )

        return register

    # --- lookup --------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Sorted registered names of ``kind``."""
        _check_kind(kind)
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> list[PluginEntry]:
        """Every registration of ``kind`` (a duplicated name appears once per provider)."""
        _check_kind(kind)
        return [entry for name in self.names(kind) for entry in self._entries[kind][name]]

    def defaults(self, kind: str) -> list[str]:
        """The names of ``kind`` whose registration declares ``default=True``, in registration
        order (entry points sorted by distribution and name, then the order of ``register``
        calls): a run's default explainers keep the order their plugin gave them."""
        _check_kind(kind)
        return [
            name
            for name, found in self._entries[kind].items()
            if len(found) == 1 and found[0].meta.get("default") is True
        ]

    def get(self, kind: str, name: str) -> PluginEntry:
        """The entry for ``name``; an unknown or ambiguous name is a :class:`PluginError`."""
        _check_kind(kind)
        key = normalise_name(name)
        found = self._entries[kind].get(key)
        if not found:
            raise UnknownPluginError(self._unknown_message(kind, name))
        if len(found) > 1:
            raise DuplicatePluginError(
                f"{SINGULAR[kind]} {key!r} is registered by {_providers_text(found)}; "
                "uninstall one of them to use it"
            )
        return found[0]

    def create(self, kind: str, name: str, /, *args: Any, **options: Any) -> Any:
        """Call the factory registered for ``name``."""
        return self.get(kind, name).factory(*args, **options)

    def list_plugins(self) -> dict[str, list[str]]:
        """``{kind: [names]}`` for every kind, including empty ones."""
        return {kind: self.names(kind) for kind in KINDS}

    def _unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        message = f"unknown {SINGULAR[kind]} {name!r}."
        if not known:
            return (
                f"{message} No {kind} are installed; install a plugin that provides one "
                "(see 'ctbench plugins')."
            )
        closest = difflib.get_close_matches(normalise_name(name), known, n=1, cutoff=0.0)
        return f"{message} Did you mean {closest[0]!r}? Known {kind}: {', '.join(known)}."


def _registration_problem(
    kind: str, name: object, factory: object, description: object, meta: dict[str, Any]
) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return f"name {name!r} must match {NAME_PATTERN.pattern} (lower case, digits, '.', '-')"
    if not callable(factory):
        return f"{name!r}: factory {factory!r} is not callable"
    if not isinstance(description, str) or not description.strip():
        return f"{name!r}: a non-empty description= is required"
    problem = metadata_problem(kind, meta)
    return f"{name!r}: {problem}" if problem else ""


def _register_module(manager: pluggy.PluginManager, module: object, plugin_name: str) -> bool:
    """Register one plugin object; hook signature errors warn and leave the others alone."""
    try:
        manager.register(module, name=plugin_name)
        manager.check_pending()
    except Exception as error:
        if manager.get_plugin(plugin_name) is not None:
            manager.unregister(name=plugin_name)
        _warn(f"ctbench plugin {plugin_name!r} is not a valid plugin: {error}")
        return False
    return True


def _distribution_name(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else "unknown"


def _providers_text(entries: list[PluginEntry]) -> str:
    return " and ".join(repr(entry.provider) for entry in entries)


def _warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, built from the installed entry points on first use."""
    global _default
    if _default is None:
        _default = Registry.from_entry_points()
    return _default


def reset_default_registry() -> None:
    """Forget the process-wide registry; the next lookup reloads the entry points."""
    global _default
    _default = None
