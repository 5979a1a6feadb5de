"""Every negation rule and every exclusion of the labeler's vocabulary has a sentence that
needs it: labelled as expected with the full vocabulary, labelled differently without it.

A few entries can never change a result on their own, because a later rule already removes
what they would: " normal" deletes any sentence the three "normal ..." delete-before rules
would shorten, and the "non" word rule deletes "noncalcified" and "nondilated" before the term
search could veto them. Those entries are kept (they are SARLE's) and listed
in SHADOWED; their sentences need the entry together with the one that shadows it, and a test
shows that the shadowing claim holds.
"""

from __future__ import annotations

import copy

import ctbench.regions.labeler as labeler
import pytest

LUNGS = {"right_lung", "left_lung"}

# rule phrase -> (sentence, expected abnormality -> organs)
RULE_SENTENCES = {
    "non": ("Nonenlarged heart.", {}),
    "no ... detected": ("No pleural effusion and pneumothorax were detected.", {}),
    " no ": (
        "No pleural effusion and a small nodule in the left lower lobe.",
        {"nodule": {"left_lung"}},
    ),
    " not ": ("The aorta is not dilated.", {}),
    " without": ("Cardiomegaly without pericardial effusion.", {"cardiomegaly": {"heart"}}),
    " resolution of": ("Interval resolution of the right pleural effusion.", {}),
    " removal of": ("Status post removal of the chest tube from the left lung.", {}),
    " free of": ("The pleural spaces are free of effusion.", {}),
    " negative for": ("Negative for pneumothorax.", {}),
    " absence of": ("Complete absence of pneumothorax.", {}),
    " risk ": ("Patient at risk for aspiration pneumonia.", {}),
    " within normal limits": ("Cardiomegaly previously, heart size now within normal limits.", {}),
    " normal in": ("Previously dilated, the aorta is now normal in caliber.", {}),
    " normal size": ("Previously enlarged mediastinal lymph nodes, now of normal size.", {}),
    " removed": ("The chest tube in the left lung has been removed.", {}),
    " resolved": ("The right pleural effusion has resolved.", {}),
    " normal": ("Normal postoperative appearance of the sternotomy.", {}),
    " unremarkable": ("The sternotomy is unremarkable.", {}),
    " clear": ("Lungs clear of consolidation.", {}),
    " patent": ("The coronary stent is patent.", {}),
    " intact": ("Sternotomy wires are intact.", {}),
    " follow up": ("Follow up of the right lung nodule is advised.", {}),
    " follow-up": ("Follow-up of the left lung nodule in 3 months.", {}),
    "fleischner": ("Fleischner criteria apply to the 5 mm right lung nodule.", {}),
    "screening": ("Lung cancer screening study.", {}),
    " was performed": ("Biopsy of the right lung mass was performed.", {}),
    " were performed": ("Biopsies of the mediastinal masses were performed.", {}),
    " was obtained": ("A CT of the chest was obtained to evaluate pneumonia.", {}),
    " were obtained": ("Images were obtained for suspected pneumothorax.", {}),
    " recommend": ("Recommend CT to evaluate the left lung nodule.", {}),
    " consider": ("Consider pneumonia in the right lower lobe.", {}),
    " correlate": ("Correlate clinically for pneumonia.", {}),
    " please": ("Please compare the left lung nodule with prior studies.", {}),
    # from the errors of CT-RATE's manually labelled reports (benchmarks/labeler_ct_rate.py)
    "new since the previous": (
        "A 4 mm nodule in the right lower lobe, which was not seen in the previous examination.",
        {"nodule": {"right_lung"}},
    ),
    "stable": ("Nodules in the left lung that do not differ in size.", {"nodule": {"left_lung"}}),
    "size qualifier": (
        "Lymph nodes that did not reach pathological size in the mediastinum.",
        {"lymphadenopathy": {"mediastinum"}},
    ),
    "size qualifier 2": (
        "Mediastinal lymph nodes not reaching pathological size.",
        {"lymphadenopathy": {"mediastinum"}},
    ),
    "size qualifier 3": (
        "Mediastinal lymph nodes, not pathological in size.",
        {"lymphadenopathy": {"mediastinum"}},
    ),
    "size limit": (
        "Mediastinal lymph nodes not exceeding 6 mm in short axis.",
        {"lymphadenopathy": {"mediastinum"}},
    ),
    "size pair": ("No pathological size and configuration lymph nodes in the mediastinum.", {}),
    "node stations": ("In the mediastinal lymph node stations, no lymph node is enlarged.", {}),
    "larger than normal": ("The heart is larger than normal.", {"cardiomegaly": {"heart"}}),
    " completely regressed": (
        "The consolidation in the left lower lobe has completely regressed.",
        {},
    ),
    " disappeared": ("The ground glass opacity in the right upper lobe has disappeared.", {}),
}

# (abnormality, excluded term) -> (sentence, expected abnormality -> organs)
EXCLUSION_SENTENCES = {
    ("nodule", " pleural nodul"): ("A pleural nodule of 8 mm in the right hemithorax.", {}),
    ("nodule", "hypodense nodul"): ("A hypodense nodule of 20 mm in the left lobe.", {}),
    ("mass", "mass effect"): ("Mild mass effect upon the right lower lobe.", {}),
    ("calcification", "noncalcified"): (
        "Noncalcified plaque in the aorta.",
        {"plaque": {"great_vessel"}},
    ),
    ("calcification", "non-calcified"): (
        "Non-calcified plaque in the aorta.",
        {"plaque": {"great_vessel"}},
    ),
    ("dilation_or_ectasia", "nondilated"): ("Nondilated ascending aorta.", {}),
    ("dilation_or_ectasia", "non-dilated"): ("Non-dilated ascending aorta.", {}),
    ("density", "linear densit"): (
        "Linear density in the left lower lobe.",
        {"bandlike_or_linear": {"left_lung"}},
    ),
    ("density", "fibrotic densit"): (
        "Fibrotic densities in the left lower lobe.",
        {"fibrosis": {"left_lung"}},
    ),
    ("scarring", "linear scar"): (
        "Linear scarring in the right middle lobe.",
        {"bandlike_or_linear": {"right_lung"}},
    ),
    # from the errors of CT-RATE's manually labelled reports (benchmarks/labeler_ct_rate.py)
    ("atelectasis", "fibroatelecta"): (
        "Fibroatelectatic changes in the right middle lobe.",
        {"fibrosis": {"right_lung"}},
    ),
    ("atelectasis", "fibro atelecta"): (
        "Fibro atelectasis in the left lower lobe.",
        {"fibrosis": {"left_lung"}},
    ),
    ("atelectasis", "fibro-atelecta"): (
        "Fibro-atelectatic bands in the lingula.",
        {"fibrosis": {"left_lung"}},
    ),
    ("atelectasis", "vertebra"): ("Collapse of the T8 vertebra.", {}),
    ("groundglass", "glass nodule"): (
        "A 6 mm ground glass nodule in the right upper lobe.",
        {"nodule": {"right_lung"}},
    ),
    ("pleural_effusion", "pericardi"): (
        "Minimal effusion in the pericardial space.",
        {"pericardial_effusion": {"heart"}},
    ),
    ("pleural_effusion", "perirenal"): ("Perirenal effusion on the left.", {}),
    ("pleural_effusion", "perinephric"): ("Mild effusion in the perinephric fat on the right.", {}),
    ("pleural_effusion", "subcapsular"): ("A thin subcapsular effusion along the spleen.", {}),
    ("lymphadenopathy", "intrapulmonary lymph"): (
        "A 5 mm nodule on the right major fissure, an intrapulmonary lymph node?",
        {"nodule": {"right_lung"}},
    ),
    ("lymphadenopathy", "intraparenchymal lymph"): (
        "Two nodules in the right middle lobe (intraparenchymal lymph node?).",
        {"nodule": {"right_lung"}},
    ),
    ("lymphadenopathy", "subpleural lymph"): (
        "Subpleural nodules in the left lower lobe, in favour of subpleural lymph nodes.",
        {"nodule": {"left_lung"}},
    ),
    ("lymphadenopathy", "fissural lymph"): (
        "A perifissural lymph node-like nodule in the left lung.",
        {"nodule": {"left_lung"}},
    ),
    ("density", "sequela"): (
        "Sequelae density increases in the right upper lobe.",
        {"fibrosis": {"right_lung"}},
    ),
    ("density", "pleuroparenchymal"): ("Pleuroparenchymal density increase in the left apex.", {}),
    ("density", "pleural parenchymal"): (
        "Pleural parenchymal density increases in the right apex.",
        {},
    ),
    ("density", "soft tissue densit"): (
        "Soft tissue density in the right lower lobe.",
        {"soft_tissue": {"right_lung"}},
    ),
    ("density", "low densit"): (
        "A low density nodule of 5 mm in the left upper lobe.",
        {"nodule": {"left_lung"}},
    ),
    ("density", "low-densit"): (
        "A low-density nodule of 4 mm in the right lower lobe.",
        {"nodule": {"right_lung"}},
    ),
    ("density", "metallic"): ("A metallic density in the left lung from prior surgery.", {}),
    ("density", "fat densit"): (
        "A lesion of fat density beside the right lung.",
        {"lesion": {"right_lung"}},
    ),
    ("density", "fatty"): ("Increased density in the fatty tissue around the right lung base.", {}),
    ("density", "material densit"): (
        "Suture material densities in the right upper lobe.",
        {"suture": {"right_lung"}},
    ),
    ("density", "decrease"): ("Decreased density of the left lung apex.", {}),
    ("density", "parenchyma densit"): ("Lung parenchyma density is homogeneous.", {}),
    ("density", "nodular densit"): (
        "Nodular densities in the right lower lobe.",
        {"nodule": {"right_lung"}},
    ),
    ("density", "emphysematous"): (
        "Emphysematous density reduction in both upper lobes.",
        {"emphysema": LUNGS},
    ),
    ("density", "foreign body"): (
        "A density consistent with a foreign body in the left main bronchus.",
        {},
    ),
    ("density", "mosaic"): ("Mosaic density differences in both lungs.", {}),
    ("density", "hypodens"): ("Hypodensity at the right lung base.", {}),
    ("density", "hyperdens"): ("Hyperdensities in the left lower lobe.", {}),
    ("density", "negative hu"): ("Areas of negative HU density next to the left lung.", {}),
    ("density", "atelecta"): (
        "Density increase consistent with atelectasis in the right lower lobe.",
        {"atelectasis": {"right_lung"}},
    ),
    ("density", "operative"): ("Operative density increases in the left upper lobe.", {}),
}

# entry -> the rule that removes everything it would (see the module docstring)
SHADOWED = {
    " within normal limits": " normal",
    " normal in": " normal",
    " normal size": " normal",
    ("calcification", "noncalcified"): "non",
    ("calcification", "non-calcified"): "non",
    ("dilation_or_ectasia", "nondilated"): "non",
    ("dilation_or_ectasia", "non-dilated"): "non",
}


def rule_name(rule: dict) -> str:
    """A rule's name in RULE_SENTENCES: its phrase, or its ``name`` when another rule shares
    the phrase."""
    return rule.get("name", rule["phrase"])


def found(sentence: str) -> dict[str, set[str]]:
    return labeler.label_sentences(sentence).matrix


def without(*entries) -> dict:
    """The shipped vocabulary less the given rule phrases and (abnormality, term) exclusions."""
    vocab = copy.deepcopy(labeler.vocabulary())
    for entry in entries:
        if isinstance(entry, tuple):
            abnormality, term = entry
            vocab["abnormalities"][abnormality]["exclude"].remove(term)
        else:
            vocab["rules"] = [r for r in vocab["rules"] if rule_name(r) != entry]
    return vocab


def test_every_rule_and_exclusion_has_a_sentence():
    vocab = labeler.vocabulary()
    assert set(RULE_SENTENCES) == {rule_name(rule) for rule in vocab["rules"]}
    exclusions = {
        (name, term)
        for name, entry in vocab["abnormalities"].items()
        for term in entry.get("exclude", [])
    }
    assert set(EXCLUSION_SENTENCES) == exclusions


CASES = {**RULE_SENTENCES, **EXCLUSION_SENTENCES}


@pytest.mark.parametrize("entry", list(CASES), ids=str)
def test_the_sentence_needs_its_entry(entry, monkeypatch):
    sentence, expected = CASES[entry]
    assert found(sentence) == expected
    removed = (entry, SHADOWED[entry]) if entry in SHADOWED else (entry,)
    reduced = without(*removed)
    monkeypatch.setattr(labeler, "vocabulary", lambda: reduced)
    assert found(sentence) != expected, f"{entry!r} is not needed by {sentence!r}"


@pytest.mark.parametrize("entry", list(SHADOWED), ids=str)
def test_shadowed_entries_are_shadowed(entry, monkeypatch):
    """The claim behind SHADOWED: removing the entry alone changes nothing for its sentence."""
    sentence, expected = CASES[entry]
    reduced = without(entry)
    monkeypatch.setattr(labeler, "vocabulary", lambda: reduced)
    assert found(sentence) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # " not " keeps the sentence when "exclude" or "change" follows within two words
        ("Pleural effusion is not excluded.", {"pleural_effusion": LUNGS}),
        # " no " stops at " and ": what follows is kept
        ("No consolidation and right pneumothorax.", {"pneumothorax": {"right_lung"}}),
        # recommend / consider / correlate / please delete a sentence only when they open it
        (
            "Left lung nodule, for which we recommend biopsy.",
            {"nodule": {"left_lung"}},
        ),
        ("Pneumonia in the right lower lobe; consider aspiration.", {"pneumonia": {"right_lung"}}),
    ],
)
def test_rule_conditions(sentence, expected):
    assert found(sentence) == expected
