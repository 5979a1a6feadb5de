"""``negex`` and ``sarle-negex``: negation read by NegEx (negspacy), the field's standard.

Both keep the SARLE labeler's sentence split, term search and location inference
(``ctbench.regions.labeler``) and change its step 2, which decides what of a sentence is
abnormal:

- ``negex``: NegEx alone. Every finding term of the vocabulary found in the sentence is a
  spaCy entity; negspacy's ``en_clinical`` termset marks the negated ones, which are blanked
  before the term search. None of SARLE's rules runs.
- ``sarle-negex``: SARLE's rules first, then NegEx on what they leave (a finding is kept when
  both keep it).

negspacy is an optional extra (``pip install 'ctbench[negex]'``): medspaCy, the other ConText
implementation, pins spaCy below 3.8 and so numpy below 2, which the rest of ctbench needs.
docs/labeler.md compares the three on the same folds.
"""

from __future__ import annotations

import re
from functools import partial

import ctbench
from ctbench.regions import labeler as rules
from ctbench.regions.labeler import (
    abnormal_phrase,
    label_sentences,
    normalise,
    place_labels,
    vocabulary,
)


class NegexLabeler:
    """The SARLE labeler with NegEx as its step 2 (``after_rules``: SARLE's rules first)."""

    def __init__(self, after_rules: bool = False) -> None:
        try:
            import spacy
            from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)
            from negspacy.termsets import termset
        except ImportError as error:
            raise ImportError(
                f"the negex labelers need negspacy ({error}): pip install 'ctbench[negex]'"
            ) from error
        self.after_rules = after_rules
        nlp = spacy.blank("en")
        patterns = termset("en_clinical").get_patterns()
        nlp.add_pipe("negex", config={"ent_types": ["FINDING"], "neg_termset": patterns})
        self._nlp, self._negex = nlp, nlp.get_pipe("negex")
        entries = vocabulary()["abnormalities"].values()
        terms = {t.strip() for e in entries for t in e.get("any", [])}
        terms |= {t.strip() for e in entries for pair in e.get("pairs", []) for t in pair}
        self._terms = sorted(terms - {""}, key=len, reverse=True)

    def _unnegated(self, text: str) -> str:
        """``text`` with every finding term that NegEx reads as negated blanked out."""
        from spacy.util import filter_spans

        doc = self._nlp.make_doc(text)
        if not len(doc):
            return text
        for i, token in enumerate(doc):
            token.is_sent_start = i == 0  # one sentence: SARLE's split already made it
        spans = []
        for term in self._terms:
            for match in re.finditer(re.escape(term), text):
                span = doc.char_span(
                    match.start(), match.end(), label="FINDING", alignment_mode="expand"
                )
                if span is not None:
                    spans.append(span)
        doc.ents = filter_spans(spans)
        doc = self._negex(doc)
        kept = list(text)
        for entity in doc.ents:
            if entity._.negex:
                kept[entity.start_char : entity.end_char] = " " * len(entity.text)
        return "".join(kept)

    @property
    def fingerprint(self) -> str:
        from importlib.metadata import version

        name = "sarle-negex" if self.after_rules else "negex"
        return f"{name} {rules.fingerprint()} negspacy {version('negspacy')}"

    def phrase(self, sentence: str) -> str:
        """Step 2: what of ``sentence`` is abnormal ('' if nothing)."""
        text = abnormal_phrase(sentence) if self.after_rules else normalise(sentence)
        if not text:
            return ""
        text = re.sub(r"\s+", " ", self._unnegated(text)).strip(" .")
        return f" {text} " if text else ""

    def __call__(self, report: str) -> dict[str, list[str]]:
        return label_sentences(report, self.phrase).locations()

    def place(self, report: str, table: dict[str, dict]) -> dict[str, list[str]]:
        return place_labels(report, table, phrase_of=self.phrase)


@ctbench.hookimpl
def register_labelers(register):
    register(
        "negex",
        partial(NegexLabeler, after_rules=False),
        description="NegEx (negspacy) instead of SARLE's negation rules; SARLE's terms and "
        "locations",
        extra="negex",
    )
    register(
        "sarle-negex",
        partial(NegexLabeler, after_rules=True),
        description="SARLE's rules, then NegEx on what they leave",
        extra="negex",
    )
