"""Hook specifications of the ctbench plugin system (docs/plugins/README.md).

Every architecture, explainer, segmenter, downsampler, dataset and report labeler reaches
ctbench through one of these hooks, built-in and third-party alike. Each hook receives a
``register`` callable::

    register(name, factory, description="...", **meta)

A plugin module implements any subset of the hooks with ``@ctbench.hookimpl`` and is declared
as an entry point in the ``ctbench`` group of its distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy
from ctbench.core.contracts import with_contract

PROJECT_NAME = "ctbench"
"""Pluggy project name and entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callable handed to every ``register_*`` hook."""

    def __call__(
        self, name: str, factory: Callable[..., Any], *, description: str, **meta: Any
    ) -> None: ...


# --- Models ------------------------------------------------------------------------------


@hookspec
def register_architectures(register: Register) -> None:
    """Register model factories ``factory(n_classes, input_shape, **options) -> nn.Module``."""


@hookspec
def register_explainers(register: Register) -> None:
    """Register explainer factories ``factory(**options) -> explainer`` with
    ``explainer.explain(model, x, classes=None) -> (maps, logits)``."""


# --- Allowed regions (PARTITION) ---------------------------------------------------------


@hookspec
def register_segmenters(register: Register) -> None:
    """Register organ segmenter factories ``factory(**options) -> segmenter(volume, spacing)``."""


@hookspec
def register_downsamplers(register: Register) -> None:
    """Register mask downsamplers ``factory(**options) -> downsample(mask, shape, dilate)``."""


# --- Data --------------------------------------------------------------------------------


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset factories ``factory(preset=..., **options) -> CaseSource``."""


# --- Reports ------------------------------------------------------------------------------


@hookspec
def register_labelers(register: Register) -> None:
    """Register report labeler factories ``factory(**options) -> labeler(report)``."""


KINDS: tuple[str, ...] = (
    "architectures",
    "explainers",
    "segmenters",
    "downsamplers",
    "datasets",
    "labelers",
)
"""Plugin kinds; the hook for kind ``k`` is ``register_k``."""

for _kind in KINDS:
    with_contract(globals()[f"register_{_kind}"], _kind)
