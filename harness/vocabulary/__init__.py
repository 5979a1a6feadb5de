"""The paper's label space as shipped data (paper section 3.1 and appendix 7.2.1).

``output_labels.csv`` lists the 80 output labels in model order (29 great vessel / mediastinum
/ heart labels, then 51 ``lung_*`` labels that mean "left OR right lung"), each with its region
and the organs among ``ORGANS`` where that abnormality may be found.
"""

from __future__ import annotations

import csv
import difflib
from functools import cache
from importlib import resources

ORGANS: tuple[str, ...] = ("right_lung", "left_lung", "heart", "great_vessel", "mediastinum")
"""Location-specific truth and allowed regions are expressed over these organs."""


@cache
def _table() -> tuple[dict[str, str], ...]:
    return tuple(_rows("output_labels.csv"))


@cache
def output_labels() -> tuple[str, ...]:
    """The 80 output labels in the paper's model order."""
    return tuple(row["label"] for row in _table())


@cache
def label_organs() -> dict[str, tuple[str, ...]]:
    """``{label: organs where it may be found}`` (lung labels: both lungs)."""
    return {row["label"]: tuple(row["organs"].split("|")) for row in _table()}


def check_labels(names, source: str) -> tuple[str, ...]:
    """Return ``names`` as a tuple; an unknown label is one error naming ``source``."""
    known = set(output_labels())
    for name in names:
        if name not in known:
            closest = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean {closest[0]!r}?" if closest else ""
            raise ValueError(f"{source}: unknown label {name!r}.{hint}")
    return tuple(names)


def _rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(resources.files(__name__).joinpath(name).read_text().splitlines()))


@cache
def organ_locations() -> dict[str, tuple[str, ...]]:
    """``{organ: SARLE locations}`` that make up each organ's labels (RAD-ChestCT's columns;
    reference facts section 3): the generic ``lung`` and ``airways`` are in none."""
    return {
        row["organ"]: tuple(row["locations"].split("|"))
        for row in _rows("rad_chestct_locations.csv")
    }


@cache
def ct_rate_labels() -> dict[str, dict[str, tuple[str, ...]]]:
    """CT-RATE's 18 labels in its CSV order: ``{label: {"abnormalities": labeler terms that
    state it, "organs": where it may lie, "gate": which phrases count}}``
    (``ct_rate_labels.csv``; ``ctbench.regions.labeler.place_labels`` explains the gate)."""
    return {
        row["label"]: {
            "abnormalities": tuple(row["abnormalities"].split("|")),
            "organs": tuple(row["organs"].split("|")),
            "gate": row["gate"],
        }
        for row in _rows("ct_rate_labels.csv")
    }


@cache
def ct_rate_paper_labels() -> dict[str, tuple[str, ...]]:
    """``{CT-RATE label: paper output labels}`` for the 15 of CT-RATE's 18 labels that have a
    counterpart (``ct_rate_paper_labels.csv``, the mapping under which CT-RATE's manually
    labelled reports are scored: a report is positive for a CT-RATE label when a labeler
    outputs any of its paper labels). Medical material, Hiatal hernia and Mosaic attenuation
    pattern have none."""
    table = {
        row["label"]: tuple(row["paper_labels"].split("|"))
        for row in _rows("ct_rate_paper_labels.csv")
    }
    for label, names in table.items():
        check_labels(names, f"ct_rate_paper_labels.csv, {label}")
    return table
