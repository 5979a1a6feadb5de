"""Free-text radiology reports for phantom cases, in varied phrasing with negations.

A report has FINDINGS and IMPRESSION sections. Each present finding gets one positive sentence
naming its abnormality and location ("A 6 mm nodule in the right upper lobe."); absent findings
get negated or normal statements ("No pleural effusion.", "The lungs are clear.",
"Heart size is normal."). A negated sentence never also states a positive finding, so the
report labeler of PARTITION can be scored against the case's truth.
"""

from __future__ import annotations

import numpy as np

from .findings import CasePlan, FindingPlan

LOBE_WORDS = {
    ("right", "upper"): "right upper lobe",
    ("right", "middle"): "right middle lobe",
    ("right", "lower"): "right lower lobe",
    ("left", "upper"): "left upper lobe",
    ("left", "middle"): "lingula",
    ("left", "lower"): "left lower lobe",
}


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _side_words(sides: list[str]) -> str:
    return "bilateral" if len(sides) == 2 else sides[0]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def positive_sentence(finding: FindingPlan, rng: np.random.Generator) -> str:
    """One sentence stating a present finding with its location."""
    d = finding.details
    label = finding.label
    if label == "lung_nodule":
        where = LOBE_WORDS[d["side"], d["lobe"]]
        size = d["size_mm"]
        return _pick(
            rng,
            [
                f"A {size} mm nodule in the {where}.",
                f"There is a {size} mm pulmonary nodule in the {where}.",
                f"{_cap(where)} nodule measuring {size} mm.",
                f"Solid {size} mm nodule in the {where}.",
            ],
        )
    if label == "lung_mass":
        where = LOBE_WORDS[d["side"], d["lobe"]]
        size = d["size_cm"]
        return _pick(
            rng,
            [
                f"A {size} cm mass in the {where}.",
                f"There is a {size} cm spiculated mass in the {where}.",
                f"{_cap(where)} mass measuring {size} cm.",
            ],
        )
    if label == "lung_consolidation":
        where = LOBE_WORDS[d["side"], d["lobe"]]
        return _pick(
            rng,
            [
                f"Consolidation in the {where}.",
                f"There is dense consolidation of the {where}.",
                f"Focal consolidation is seen in the {where}.",
            ],
        )
    if label == "lung_groundglass":
        where = LOBE_WORDS[d["side"], d["lobe"]]
        return _pick(
            rng,
            [
                f"Ground glass attenuation in the {where}.",
                f"Patchy groundglass in the {where}.",
                f"There are ground-glass changes in the {where}.",
            ],
        )
    if label == "lung_emphysema":
        sides = d["sides"]
        if len(sides) == 2:
            return _pick(
                rng,
                [
                    f"{_cap(d['severity'])} centrilobular emphysema in both upper lobes.",
                    "Emphysematous changes in the bilateral upper lobes.",
                    f"{_cap(d['severity'])} emphysema, upper lobe predominant, in both lungs.",
                ],
            )
        return _pick(
            rng,
            [
                f"{_cap(d['severity'])} emphysema in the {sides[0]} upper lobe.",
                f"Emphysematous changes in the {sides[0]} upper lobe.",
            ],
        )
    if label == "lung_pneumothorax":
        side, size = d["side"], d["severity"]
        return _pick(
            rng,
            [
                f"{_cap(size)} {side} pneumothorax.",
                f"There is a {size} {side} pneumothorax.",
                f"{_cap(size)} anterior {side} pneumothorax.",
            ],
        )
    if label == "lung_pleural_effusion":
        sides, size = d["sides"], d["severity"]
        if len(sides) == 2:
            return _pick(
                rng,
                [
                    f"{_cap(size)} bilateral pleural effusions.",
                    f"There are {size} bilateral pleural effusions.",
                ],
            )
        return _pick(
            rng,
            [
                f"{_cap(size)} {sides[0]} pleural effusion.",
                f"There is a {size} {sides[0]} pleural effusion.",
                f"{_cap(sides[0])} pleural effusion, {size}.",
            ],
        )
    if label == "lung_atelectasis":
        sides = d["sides"]
        if len(sides) == 2:
            return _pick(
                rng,
                [
                    "Atelectasis in both lower lobes.",
                    "Bilateral lower lobe atelectasis.",
                    "Dependent atelectasis in the bilateral lower lobes.",
                ],
            )
        return _pick(
            rng,
            [
                f"Atelectasis in the {sides[0]} lower lobe.",
                f"{_cap(sides[0])} lower lobe atelectasis.",
                f"Dependent atelectasis at the {sides[0]} lung base.",
            ],
        )
    if label == "heart_cardiomegaly":
        return _pick(
            rng,
            [
                f"{_cap(d['severity'])} cardiomegaly.",
                "The heart is enlarged.",
                f"There is {d['severity']} cardiomegaly.",
            ],
        )
    if label == "heart_pericardial_effusion":
        return _pick(
            rng,
            [
                f"{_cap(d['severity'])} pericardial effusion.",
                f"There is a {d['severity']} pericardial effusion.",
                "Pericardial effusion is present.",
            ],
        )
    if label == "h_great_vessel_calcification":
        return _pick(
            rng,
            [
                "Calcification of the thoracic aorta.",
                "Aortic wall calcifications.",
                "Calcifications of the aortic arch and descending aorta.",
            ],
        )
    if label == "h_mediastinum_lymphadenopathy":
        station, size = d["station"], d["size_cm"]
        return _pick(
            rng,
            [
                f"Mediastinal lymphadenopathy with a {size} cm {station} node.",
                f"Enlarged {station} mediastinal lymph node measuring {size} cm.",
                f"Mediastinal adenopathy, {station}, {size} cm.",
            ],
        )
    raise ValueError(label)


NEGATIONS = {
    "lung_nodule": ["No pulmonary nodules.", "No suspicious pulmonary nodule."],
    "lung_mass": ["No lung mass.", "No pulmonary mass is identified."],
    "lung_consolidation": ["No consolidation.", "No focal consolidation."],
    "lung_groundglass": ["No ground glass attenuation.", "No groundglass changes."],
    "lung_emphysema": ["No emphysema.", "No evidence of emphysema."],
    "lung_atelectasis": ["No atelectasis.", "No significant atelectasis."],
    "lung_pleural_effusion": ["No pleural effusion.", "No pleural effusions."],
    "lung_pneumothorax": ["No pneumothorax.", "Negative for pneumothorax."],
    "heart_cardiomegaly": ["Heart size is normal.", "Normal heart size.", "No cardiomegaly."],
    "heart_pericardial_effusion": ["No pericardial effusion.", "No pericardial effusion is seen."],
    "h_great_vessel_calcification": [
        "The thoracic aorta is normal in caliber.",
        "No aortic calcification.",
    ],
    "h_mediastinum_lymphadenopathy": [
        "No mediastinal lymphadenopathy.",
        "No enlarged mediastinal lymph nodes.",
    ],
}
PARENCHYMA = (
    "lung_nodule",
    "lung_mass",
    "lung_consolidation",
    "lung_groundglass",
    "lung_emphysema",
    "lung_atelectasis",
)


def write_report(plan: CasePlan, rng: np.random.Generator) -> str:
    """The report for one planned case."""
    present = {f.label for f in plan.findings}
    lines: list[str] = []
    # Lungs and airways
    for name in PARENCHYMA:
        lines += _sentences(plan, name, rng)
    if not present & set(PARENCHYMA):
        lines.append(
            _pick(rng, ["The lungs are clear.", "Lungs are clear.", "No focal lung abnormality."])
        )
    else:
        absent = [name for name in PARENCHYMA if name not in present]
        for name in rng.permutation(absent)[: int(rng.integers(0, len(absent) + 1))]:
            lines.append(_pick(rng, NEGATIONS[name]))
    lines.append("The central airways are patent.")
    # Pleura
    pleura = ("lung_pleural_effusion", "lung_pneumothorax")
    if not present & set(pleura):
        lines.append(
            _pick(
                rng,
                ["No pleural effusion or pneumothorax.", "No pleural effusion. No pneumothorax."],
            )
        )
    else:
        for name in pleura:
            lines += _sentences(plan, name, rng) or [_pick(rng, NEGATIONS[name])]
    # Heart, great vessels, mediastinum
    for name in (
        "heart_cardiomegaly",
        "heart_pericardial_effusion",
        "h_great_vessel_calcification",
        "h_mediastinum_lymphadenopathy",
    ):
        lines += _sentences(plan, name, rng) or [_pick(rng, NEGATIONS[name])]
    lines.append(
        _pick(rng, ["Visualized upper abdomen is unremarkable.", "Osseous structures are intact."])
    )

    impression = [text for name in _LABEL_ORDER for text in _sentences(plan, name, rng)]
    if not impression:
        impression = [_pick(rng, ["No acute cardiopulmonary abnormality.", "Normal chest CT."])]
    numbered = " ".join(f"{i}. {text}" for i, text in enumerate(impression, 1))
    return "FINDINGS: " + " ".join(lines) + "\nIMPRESSION: " + numbered


_LABEL_ORDER = (
    *PARENCHYMA,
    "lung_pleural_effusion",
    "lung_pneumothorax",
    "heart_cardiomegaly",
    "heart_pericardial_effusion",
    "h_great_vessel_calcification",
    "h_mediastinum_lymphadenopathy",
)
_ONE_SENTENCE_PER_INSTANCE = ("lung_nodule", "h_mediastinum_lymphadenopathy")


def _sentences(plan: CasePlan, label: str, rng: np.random.Generator) -> list[str]:
    """Positive sentences for ``label``: one per nodule or node, one for a bilateral finding."""
    instances = [f for f in plan.findings if f.label == label]
    if label not in _ONE_SENTENCE_PER_INSTANCE:
        instances = instances[:1]
    return [positive_sentence(f, rng) for f in instances]
