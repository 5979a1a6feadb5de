"""How the core reads reports: through a registered labeler (docs/plugins/labelers.md).

PARTITION, the ``folder`` and ``ct-rate`` datasets and ``ctbench labels`` ask the labeler
named here, by default the one that declares ``default=True`` (the built-in ``sarle``, whose
rules live in :mod:`ctbench.regions.labeler`). The core knows no labeler by name.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ctbench.vocabulary import ORGANS, ct_rate_paper_labels


@cache
def labeler(name: str | None = None) -> Any:
    """The labeler ``name`` (default: the one that declares ``default=True``), built once."""
    from ctbench.core.api import create_labeler

    return create_labeler(name)


def identity(name: str | None = None) -> dict[str, str]:
    """``{"labeler", "fingerprint"}``: which labeler reads the reports, and a string that
    changes when what it reads may change (its own ``fingerprint``, else its distribution's
    version). PARTITION keys its cache of placements with it."""
    from importlib import metadata

    from ctbench.core.contracts import default_name
    from ctbench.core.registry import default_registry

    entry = default_registry().get("labelers", name or default_name("labelers"))
    chosen = labeler(name)
    declared = any("fingerprint" in vars(k) for k in type(chosen).__mro__)
    # read it directly when declared: getattr's default would hide a property that raises
    fingerprint = chosen.fingerprint if declared else getattr(chosen, "fingerprint", None)
    if fingerprint is None:
        try:
            fingerprint = f"{entry.provider} {metadata.version(entry.provider)}"
        except metadata.PackageNotFoundError:
            fingerprint = entry.provider
    return {"labeler": entry.name, "fingerprint": str(fingerprint)}


def locations(report: str, name: str | None = None) -> dict[str, list[str]]:
    """``{paper output label: organs}`` the labeler reads in ``report``."""
    return labeler(name)(report)


def place(report: str, table: dict[str, dict], name: str | None = None) -> dict[str, list[str]]:
    """``{label: organs}`` for another label set (``ctbench.vocabulary.ct_rate_labels``):
    the labeler's own ``place`` where it has one, else through the paper labels each label
    maps onto (:func:`ctbench.vocabulary.ct_rate_paper_labels`), in the organs they were
    found in; a label without paper labels is never found that way."""
    chosen = labeler(name)
    if hasattr(chosen, "place"):
        return chosen.place(report, table)
    return from_paper_labels(chosen(report), table)


def from_paper_labels(found: dict[str, list[str]], table: dict[str, dict]) -> dict[str, list[str]]:
    """``{label: organs}`` of ``table``'s labels (CT-RATE's) from a labeler's paper labels: a
    label is present when any paper label it maps onto is (``ct_rate_paper_labels``), in the
    organs they were found in."""
    mapping = ct_rate_paper_labels()
    out = {}
    for label in table:
        present = [paper for paper in mapping.get(label, ()) if paper in found]
        if present:
            organs = {organ for paper in present for organ in found[paper]}
            out[label] = sorted(organs or table[label]["organs"], key=ORGANS.index)
    return out
