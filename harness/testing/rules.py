"""What every kind's checks share: the plugin and its declarations, the rule table and runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def rule_table(*checks: Callable[[Any], None]) -> dict[str, Callable[[Any], None]]:
    """``{rule name: check}``, the name being the function's less ``check_``."""
    return {check.__name__.removeprefix("check_"): check for check in checks}


def registered(
    kind: str, name_or_factory: str | Callable[..., Any], declares: dict[str, Any]
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``(factory, declarations)`` of a registered name (read from its registration) or of a
    bare factory (``declares`` given by the caller, defaults filled)."""
    from ctbench.core.contracts import declared, declared_of
    from ctbench.core.registry import default_registry

    if isinstance(name_or_factory, str):
        factory = default_registry().get(kind, name_or_factory).factory
        return factory, declared_of(kind, name_or_factory)
    return name_or_factory, declared(kind, declares)


def run_checks(label: str, checks: dict[str, Callable[[Any], None]], case: Any) -> None:
    """Every rule on ``case``; the first failure is an AssertionError naming the rule."""
    for check_name, check in checks.items():
        try:
            check(case)
        except AssertionError as error:
            raise AssertionError(f"{label} check '{check_name}' failed: {error}") from error
