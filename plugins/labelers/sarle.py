"""``sarle``: ctbench's SARLE-style rule labeler (``ctbench.regions.labeler``), the default.

Its rules and lexicon are data (``vocabulary/sarle.json``); their development against CT-RATE's
manually labelled reports is in docs/labeler.md.
"""

from __future__ import annotations

import ctbench
from ctbench.regions import labeler as rules
from ctbench.regions.labeler import label_report, place_labels


class SarleLabeler:
    """``labeler(report) -> {label: organs}``; ``place`` for CT-RATE's 18 labels through the
    labeler's own terms and gates (``vocabulary/ct_rate_labels.csv``)."""

    @property
    def fingerprint(self) -> str:
        return f"sarle {rules.fingerprint()}"

    def __call__(self, report: str) -> dict[str, list[str]]:
        return label_report(report)["locations"]

    def place(self, report: str, table: dict[str, dict]) -> dict[str, list[str]]:
        return place_labels(report, table)


@ctbench.hookimpl
def register_labelers(register):
    register(
        "sarle",
        SarleLabeler,
        description="SARLE-style rules: negation and normal phrases deleted, then term search "
        "and location inference (paper appendix 7.2.1)",
        default=True,
    )
