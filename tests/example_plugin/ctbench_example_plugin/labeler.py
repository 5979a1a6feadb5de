"""``example-keywords``: a report labeler of a few keywords (docs/plugins/labelers.md).

``labeler(report) -> {label: organs}``: a sentence that names a finding and no negation word
states it, in the lung its side word names (both when none). Written to show the contract,
not to label well: compare it with the built-in ones by
``python benchmarks/labeler_ct_rate.py --labeler example-keywords``.
"""

from __future__ import annotations

import re

from ctbench.plugin import ORGANS, hookimpl, output_labels

KEYWORDS = {
    "effusion": "lung_pleural_effusion",
    "nodule": "lung_nodule",
    "emphysema": "lung_emphysema",
    "atelectasis": "lung_atelectasis",
    "cardiomegaly": "heart_cardiomegaly",
}
NEGATION = re.compile(r"\b(no|not|without|absent)\b")


class KeywordLabeler:
    def __call__(self, report: str) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        for sentence in re.split(r"[.;\n]+", report.lower()):
            if not sentence.strip() or NEGATION.search(sentence):
                continue
            for word, label in KEYWORDS.items():
                if word in sentence:
                    found.setdefault(label, set()).update(_organs(label, sentence))
        return {
            label: sorted(found[label], key=ORGANS.index)
            for label in output_labels()  # the paper's model order
            if label in found
        }


def _organs(label: str, sentence: str) -> set[str]:
    if label.startswith("heart_"):
        return {"heart"}
    sides = {side for side in ("right", "left") if side in sentence}
    return {f"{side}_lung" for side in sides} or {"right_lung", "left_lung"}


@hookimpl
def register_labelers(register):
    register(
        "example-keywords",
        KeywordLabeler,
        description="Example plugin: five keywords, negation by a word list",
    )
