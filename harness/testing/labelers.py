"""``check_labeler`` and its rules (``ctbench.core.contracts.MEMBERS["labelers"]``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ctbench.core.contracts import declared
from ctbench.testing.rules import registered, rule_table, run_checks
from ctbench.vocabulary import ORGANS, ct_rate_labels, output_labels

NORMAL = (
    "The heart size is normal. No pericardial effusion. The lungs are clear, with no nodule, "
    "consolidation or pleural effusion. No enlarged lymph nodes."
)
FINDINGS = "There is a right pleural effusion. Cardiomegaly."


@dataclass
class LabelerCase:
    """How to build the labeler (``factory()``) and what it declares."""

    factory: Callable[..., Any]
    declares: dict = field(default_factory=lambda: declared("labelers", {}))

    @cached_property
    def labeler(self) -> Any:
        return self.factory()

    def label(self, report: str) -> dict[str, list[str]]:
        out = self.labeler(report)
        assert isinstance(out, dict), f"labeler(report) gave {type(out).__name__}, not a dict"
        return out


def check_output_form(case: LabelerCase) -> None:
    """Known output labels in model order, each with a non-empty list of organs in ORGANS
    order."""
    out = case.label(FINDINGS)
    order = [label for label in output_labels() if label in out]
    assert list(out) == order, f"labels {list(out)} are unknown or not in model order"
    for label, organs in out.items():
        assert organs and set(organs) <= set(ORGANS), f"{label}: organs {organs}"
        assert list(organs) == sorted(organs, key=ORGANS.index), f"{label}: organs {organs}"


def check_normal_report(case: LabelerCase) -> None:
    """A normal report, negations and all, states no abnormality."""
    assert case.label(NORMAL) == {}, f"a normal report gave {case.label(NORMAL)}"
    assert case.label("") == {}, "an empty report gave labels"


def check_finding_and_place(case: LabelerCase) -> None:
    """A stated finding is found where the report puts it."""
    out = case.label(FINDINGS)
    assert "right_lung" in out.get("lung_pleural_effusion", []), f"right effusion: {out}"
    assert "heart" in out.get("heart_cardiomegaly", []), f"cardiomegaly: {out}"


def check_negation(case: LabelerCase) -> None:
    """A negated finding is not found."""
    out = case.label("No pleural effusion. There is no cardiomegaly.")
    assert not out, f"negated findings gave {out}"


def check_deterministic(case: LabelerCase) -> None:
    """The same report gives the same labels."""
    assert case.label(FINDINGS) == case.label(FINDINGS), "labels differ between calls"


def check_place(case: LabelerCase) -> None:
    """``place`` (when present) gives labels of the table, in organs the table allows."""
    if not hasattr(case.labeler, "place"):
        return
    table = ct_rate_labels()
    out = case.labeler.place(FINDINGS, table)
    assert set(out) <= set(table), f"place gave labels outside the table: {set(out) - set(table)}"
    assert "Pleural effusion" in out and "Cardiomegaly" in out, f"place gave {out}"
    for label, organs in out.items():
        assert set(organs) <= set(table[label]["organs"]), f"{label}: organs {organs}"
    assert case.labeler.place(NORMAL, table) == {}, "place found labels in a normal report"


LABELER_CHECKS: dict[str, Callable[[LabelerCase], None]] = rule_table(
    check_output_form,
    check_normal_report,
    check_finding_and_place,
    check_negation,
    check_deterministic,
    check_place,
)


def labeler_case(name_or_factory: str | Callable[..., Any], **declares: Any) -> LabelerCase:
    """A registered name (its declarations read from its registration) or a factory (with
    the declarations given here)."""
    return LabelerCase(*registered("labelers", name_or_factory, declares))


def check_labeler(name_or_factory: str | Callable[..., Any], **declares: Any) -> None:
    """Run every labeler rule; the first failure raises ``AssertionError`` naming it."""
    run_checks("labeler", LABELER_CHECKS, labeler_case(name_or_factory, **declares))
