"""SARLE-style report labeler with locations (paper appendix 7.2.1, Table 3; SARLE).

1. Sentences: the report is split into sentences (decimals such as "1.5 cm" stay whole; a
   quote or a bullet ends one too, as in CT-RATE's listed impressions).
2. Phrase classification: ordered rules delete normal and negated phrases ("No pleural
   effusion.", "... without pericardial effusion", "The lungs are clear."); a sentence is
   abnormal if any text remains.
3. Term search on what remains: abnormality and location terms (any-of substrings, term pairs
   that must both occur, regular expressions, exclusions that veto a hit and words that keep
   it despite them), all vocabulary shipped as data (``vocabulary/sarle.json``).
4. Location inference: a lobe implies its lung; "bilateral"/"both" imply both lungs; a
   lung-only pathology implies the lungs (the side from "right"/"left"/"lingula" in the
   sentence, else both); a heart-only pathology implies the heart; abnormalities an organ
   cannot hold are removed from it; a finding placed in both lungs for want of a side lies on
   the side another sentence of the report states for it. Measurement rules: a nodule over
   1 cm adds ``nodulegr1cm``; a node over 1 cm is lymphadenopathy.

Output: the abnormality x location matrix, the output labels of the paper's 80-label
vocabulary and, per label, the organs among right_lung, left_lung, heart, great_vessel and
mediastinum that hold it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path

from ctbench.vocabulary import ORGANS, output_labels

LUNGS = frozenset({"right_lung", "left_lung"})
ORGAN_PREFIX = {
    "great_vessel": "h_great_vessel_",
    "mediastinum": "h_mediastinum_",
    "heart": "heart_",
    "right_lung": "lung_",
    "left_lung": "lung_",
}
_HEADER = re.compile(r"(?:^|(?<=[\s.;]))([A-Za-z][A-Za-z ]{2,30}):")  # "Findings:", "INDICATION:"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:x\s*(\d+(?:\.\d+)?)\s*)?(mm|cm)\b")


def read_report(path) -> str:
    """A report file's text: UTF-8 (a BOM is fine), at most ``READ_LIMITS["report"]`` bytes
    (a stream without end stops there). A binary or otherwise encoded file is one ValueError
    naming the file, the byte and its position: never guessed at, since a wrong guess would
    change the words the labeler reads."""
    from ctbench.runtime.storage import decode_utf8, read_bytes

    data = read_bytes(path, "report")
    if b"\x00" in data:
        raise ValueError(f"{path}: not a text report (it holds NUL bytes: a binary file?)")
    return decode_utf8(data, path)


@cache
def fingerprint() -> str:
    """SHA-256 of the rules' code and vocabulary: changes whenever the labels may."""
    import hashlib

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(resources.files("ctbench.vocabulary").joinpath("sarle.json").read_bytes())
    return digest.hexdigest()[:16]


@cache
def vocabulary() -> dict:
    """The shipped labeler vocabulary (terms, organ rules, negation rules)."""
    text = resources.files("ctbench.vocabulary").joinpath("sarle.json").read_text()
    return json.loads(text)


def image_sections(report: str) -> str:
    """The report less the sections that do not describe the images (indication, clinical
    information, technique, comparison: ``sections_ignored``), whose "rule out pneumonia"
    would otherwise read as a finding. A section runs from its ``Header:`` to the next."""
    ignored = vocabulary()["sections_ignored"]
    kept, start, skipping = [], 0, False
    for match in _HEADER.finditer(report):
        if not skipping:
            kept.append(report[start : match.start()])
        name = match.group(1).strip().lower()
        skipping = name in ignored
        start = match.start() if not skipping else match.end()
    if not skipping:
        kept.append(report[start:])
    return " ".join(kept)


def split_sentences(report: str) -> list[str]:
    """Sentences of a report's image sections; section headers and list numbers are dropped."""
    text = image_sections(report)
    text = re.sub(r"\b[A-Z][A-Z ]{2,}:", " ", text)  # FINDINGS:, IMPRESSION:, ...
    text = re.sub(r"(?:^|\s)\d+[.)]\s+", " ", text)  # "1. ", "2) "
    # a quote or bullet delimits too: CT-RATE's impressions list findings as "...", • ...
    parts = re.split(r"(?<=[.;!?])\s+|\n+|[\"\u201c\u201d\u2022\u00b7]", text)
    return [p.strip() for p in parts if p.strip(" .")]


def _apply_rule(text: str, rule: dict) -> str:
    phrase, kind = rule["phrase"], rule["kind"]
    if kind == "delete_word_starting":
        return re.sub(rf"\b{phrase}\S*", " ", text)
    if kind == "delete_phrase":
        return re.sub(phrase, " ", text)
    if kind == "replace":
        return re.sub(phrase, rule["with"], text)
    position = text.find(phrase)
    if position < 0:
        return text
    if kind == "delete_sentence":
        after = text[position + len(phrase) :].split()[:2]
        if any(w.strip() in " ".join(after) for w in rule.get("unless_within", [])):
            return text
        return " "
    if kind == "delete_sentence_if_first":
        first = text[:position].strip() == ""
        ends = rule.get("if_ends")
        if ends is not None:
            words = text.strip(" .").split()
            first = first and bool(words) and words[-1] in ends
        return " " if first else text
    if kind == "delete_before":
        return " " + text[position:]
    if kind == "delete_after":
        rest = text[position:]
        stops = [rest.find(s) for s in rule.get("stop", []) if rest.find(s) > 0]
        keep = rest[min(stops) :] if stops else ""
        return text[:position] + " " + keep
    raise ValueError(f"unknown rule kind {kind!r}")


def normalise(sentence: str) -> str:
    """Lower case, letters, digits, '.' and '-' only, padded with a space: the text every rule
    and term is matched against."""
    return " " + re.sub(r"[^a-z0-9.\- ]", " ", sentence.lower()) + " "


def abnormal_phrase(sentence: str) -> str:
    """What is left of a sentence after the normal/negation rules ('' if it is normal)."""
    text = normalise(sentence)
    for rule in vocabulary()["rules"]:
        text = _apply_rule(text, rule)
    text = re.sub(r"\s+", " ", text).strip(" .")
    return f" {text} " if text else ""


def _matches(text: str, entry: dict) -> bool:
    hit = any(term in text for term in entry.get("any", []))
    hit = hit or any(a in text and b in text for a, b in entry.get("pairs", []))
    hit = hit or any(re.search(pattern, text) for pattern in entry.get("regex", []))
    vetoed = any(term in text for term in entry.get("exclude", []))
    return hit and (not vetoed or any(term in text for term in entry.get("despite", [])))


@dataclass(frozen=True)
class Mention:
    """One abnormality found in one abnormal phrase: the organs it was placed in, whether the
    phrase named a location of the vocabulary, whether it named a place outside the five
    organs (``elsewhere``: thyroid, liver, axilla, ...), and whether it stated a lung's side
    (``sided``: "right", "left", "both lungs", a lobe)."""

    abnormality: str
    organs: frozenset[str]
    placed: bool
    elsewhere: bool
    sided: bool = False


@dataclass
class ReportLabels:
    """The labeler's output for one report."""

    matrix: dict[str, set[str]] = field(default_factory=dict)  # abnormality -> organs
    sentences: list[tuple[str, str]] = field(default_factory=list)  # (sentence, kept phrase)
    mentions: list[Mention] = field(default_factory=list)

    def labels(self) -> list[str]:
        """Output labels present, in the paper's model order."""
        return list(self.locations())

    def locations(self) -> dict[str, list[str]]:
        """``{label: organs}`` for every output label found, in model and ORGANS order."""
        out: dict[str, set[str]] = {}
        vocabulary_labels = set(output_labels())
        for abnormality, organs in self.matrix.items():
            for organ in organs:
                label = ORGAN_PREFIX[organ] + abnormality
                if label in vocabulary_labels:
                    out.setdefault(label, set()).add(organ)
        return {
            label: sorted(out[label], key=ORGANS.index) for label in output_labels() if label in out
        }


def _stated_sides(phrase: str) -> set[str]:
    """Lungs named by side words anywhere in the phrase ("right"; "left" or "lingula")."""
    sides = set()
    if " right " in phrase:
        sides.add("right_lung")
    if " left " in phrase or "lingula" in phrase:
        sides.add("left_lung")
    return sides


def _sentence_locations(phrase: str, vocab: dict) -> set[str]:
    found = {name for name, entry in vocab["locations"].items() if _matches(phrase, entry)}
    if "both_lungs" in found:
        found |= LUNGS
    if "lung" in found and not found & LUNGS:
        found |= _stated_sides(phrase)
    if found & LUNGS:
        found.discard("lung")  # a stated side is more specific than "lung"
    return found - {"both_lungs"}


def _organs_for(abnormality: str, locations: set[str], phrase: str, vocab: dict) -> set[str]:
    """Location inference and sanity checks for one abnormality found in one phrase."""
    if abnormality in vocab["lung_only"] or abnormality in vocab["lung_only_extra"]:
        sides = locations & LUNGS or _stated_sides(phrase)
        return sides or set(LUNGS)  # side unknown: both lungs allowed
    if abnormality in vocab["heart_only"]:
        return {"heart"}
    organs = set()
    allows = vocab["organ_allows"]
    for organ in locations:
        if organ in LUNGS and abnormality in allows["lung"]:
            organs.add(organ)
        elif organ == "lung" and abnormality in allows["lung"]:
            organs |= LUNGS  # "pulmonary nodules": either lung
        elif organ in ("heart", "great_vessel", "mediastinum") and abnormality in allows[organ]:
            organs.add(organ)
    return organs


def _sizes_cm(phrase: str, axis: str) -> list[float]:
    """Each size in the phrase in cm: ``15 x 11 mm`` is 1.1 on its short axis, 1.5 on its
    long axis (nodes are enlarged by their short axis, nodules large by their long one)."""
    pick = min if axis == "short" else max
    return [
        pick(float(a), float(b or a)) / (10.0 if unit == "mm" else 1.0)
        for a, b, unit in _SIZE.findall(phrase)
    ]


def label_sentences(report: str, phrase_of: Callable[[str], str] | None = None) -> ReportLabels:
    """Run the whole labeler on one report and keep the per-sentence trace. ``phrase_of``
    (sentence -> abnormal phrase) replaces step 2, the rules of :func:`abnormal_phrase`: a
    labeler that reads negation another way (NegEx) keeps steps 1, 3 and 4."""
    vocab = vocabulary()
    result = ReportLabels()
    phrase_of = phrase_of or abnormal_phrase
    for sentence in split_sentences(report):
        phrase = phrase_of(sentence)
        result.sentences.append((sentence, phrase.strip()))
        if not phrase:
            continue
        found = {n for n, entry in vocab["abnormalities"].items() if _matches(phrase, entry)}
        rule = vocab["measurements"]
        large, nodes = rule["nodulegr1cm"], rule["lymphadenopathy"]
        if large["needs"] in found and any(
            s > large["over_cm"] for s in _sizes_cm(phrase, large["axis"])
        ):
            found.add("nodulegr1cm")
        if any(t in phrase for t in nodes["needs_any"]) and any(
            s > nodes["over_cm"] for s in _sizes_cm(phrase, nodes["axis"])
        ):
            found.add("lymphadenopathy")
        locations = _sentence_locations(phrase, vocab)
        elsewhere = any(term in phrase for term in vocab["elsewhere"])
        sided = bool(locations & LUNGS or _stated_sides(phrase))
        for abnormality in sorted(found):
            organs = _organs_for(abnormality, locations, phrase, vocab)
            if not organs and not locations and not elsewhere:
                organs = _unplaced_organs(abnormality, vocab)
            result.mentions.append(
                Mention(abnormality, frozenset(organs), bool(locations), elsewhere, sided)
            )
    result.mentions = _sides_from_the_report(result.mentions)
    for mention in result.mentions:
        if mention.organs:
            result.matrix.setdefault(mention.abnormality, set()).update(mention.organs)
    return result


def _sides_from_the_report(mentions: list[Mention]) -> list[Mention]:
    """A finding placed in both lungs only for want of a side ("atelectasis in the lower
    lobes") lies on the sides that another sentence of the report states for it ("atelectasis
    in the right lower lobe"): the report says where, once."""
    stated = {m.abnormality for m in mentions if m.sided and m.organs & LUNGS}
    return [
        replace(m, organs=m.organs - LUNGS)
        if not m.sided and m.abnormality in stated and m.organs & LUNGS
        else m
        for m in mentions
    ]


def _unplaced_organs(abnormality: str, vocab: dict) -> set[str]:
    """Where an abnormality goes when its sentence names no place (``unplaced``)."""
    for organs, names in vocab["unplaced"].items():
        if not organs.startswith("_") and abnormality in names:
            return set(organs.split("|"))
    return set()


def place_labels(
    report: str, table: dict[str, dict], phrase_of: Callable[[str], str] | None = None
) -> dict[str, list[str]]:
    """``{label: organs}`` for another label set described by labeler terms, such as
    CT-RATE's 18 (``ctbench.vocabulary.ct_rate_labels``): a label is present when one of its
    ``abnormalities`` is found in an abnormal phrase, and lies where those phrases place it.
    Its ``gate`` says which phrases count: ``none``, every one; ``place``, those that place
    the finding in one of the label's organs or name no place at all (a thyroid nodule is no
    lung nodule); ``strict``, only those that place it in the label's organs (a calcification
    is arterial only in a vessel). A label found but not placed lies in all its organs.
    ``phrase_of``: as for :func:`label_sentences`."""
    mentions = label_sentences(report, phrase_of).mentions
    out: dict[str, set[str]] = {}
    for label, entry in table.items():
        organs = set(entry["organs"])
        for mention in mentions:
            if mention.abnormality not in entry["abnormalities"]:
                continue
            inside = mention.organs & organs
            unplaced = not mention.organs and not mention.placed and not mention.elsewhere
            gate = entry.get("gate", "place")
            if gate == "none" or inside or (gate == "place" and unplaced):
                out.setdefault(label, set()).update(inside)
    return {
        label: sorted(out[label] or table[label]["organs"], key=ORGANS.index)
        for label in table
        if label in out
    }


def label_report(text: str) -> dict[str, object]:
    """``{"labels": [...], "locations": {label: [organs]}}`` for one free-text report."""
    result = label_sentences(text)
    return {"labels": result.labels(), "locations": result.locations()}
