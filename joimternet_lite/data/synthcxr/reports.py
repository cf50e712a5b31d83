"""SynthCXR reports: FINDINGS and IMPRESSION text written from a study's findings, and its labels.

Taught in notebook 01. Wording varies (synonyms, sentence order, articles), absent findings are
negated at random ("No pleural effusion."), about one finding in eight is hedged ("Possible ..."),
normal studies reuse a few fixed reports as real ones do. Every finding phrase of the ground truth
is in the FINDINGS part (the impression may repeat it); reports stay under 100 words.

The text is built from :class:`Sentence` pieces that know where their finding's phrase and head
word lie, so the character spans of the ground truth are recorded while the text is joined
(:func:`join_sentences`), never searched for afterwards.

Labels follow the CheXpert labeler's conventions (:func:`labels_for`): 1 named as present, -1
hedged, 0 negated, None not mentioned; "No Finding" is 1 when no pathology is 1 or -1 (support
devices do not count) and blank otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..schema import CHEXPERT_LABELS, empty_labels
from .findings import SUPPORT_DEVICES, Finding, Phrase

PATHOLOGY_LABELS = tuple(n for n in CHEXPERT_LABELS if n not in ("No Finding", SUPPORT_DEVICES))

# Normal reports repeat: a few fixed texts, each with the labels it negates.
NORMAL_FINDINGS = (
    ("The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
     ("Cardiomegaly", "Pleural Effusion", "Pneumothorax")),
    ("The lungs are clear. The cardiomediastinal silhouette is within normal limits. "
     "No pleural effusion or pneumothorax.", ("Enlarged Cardiomediastinum", "Pleural Effusion", "Pneumothorax")),
    ("Heart size and mediastinal contours are normal. The lungs are clear without focal consolidation. "
     "No pleural effusion or pneumothorax.",
     ("Cardiomegaly", "Enlarged Cardiomediastinum", "Consolidation", "Pleural Effusion", "Pneumothorax")),
    ("Lungs are clear. Heart size is normal. No pneumothorax or effusion.",
     ("Cardiomegaly", "Pneumothorax", "Pleural Effusion")),
    ("No focal consolidation, pleural effusion, or pneumothorax. The heart is normal in size.",
     ("Consolidation", "Pleural Effusion", "Pneumothorax", "Cardiomegaly")),
)
NORMAL_WEIGHTS = (0.4, 0.2, 0.15, 0.15, 0.1)
NORMAL_IMPRESSIONS = ("No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                      "Normal chest radiograph.", "No acute disease.")

# Negations that abnormal reports add for absent findings: (text, labels negated, labels that forbid it).
_LUNG = ("Consolidation", "Pneumonia", "Lung Opacity", "Atelectasis", "Edema", "Lung Lesion")
NEGATIONS = (
    ("No pleural effusion or pneumothorax.", ("Pleural Effusion", "Pneumothorax"), ()),
    ("There is no pleural effusion.", ("Pleural Effusion",), ()),
    ("No pneumothorax is seen.", ("Pneumothorax",), ()),
    ("No focal consolidation.", ("Consolidation",), ("Pneumonia", "Lung Opacity")),
    ("No evidence of pneumonia.", ("Pneumonia",), ("Consolidation", "Lung Opacity")),
    ("No pulmonary edema.", ("Edema",), ()),
    ("The heart size is normal.", ("Cardiomegaly",), ("Enlarged Cardiomediastinum",)),
    ("The cardiac silhouette is within normal limits.", ("Cardiomegaly",), ("Enlarged Cardiomediastinum",)),
    ("The mediastinal contours are normal.", ("Enlarged Cardiomediastinum",), ("Cardiomegaly",)),
    ("No suspicious pulmonary nodules.", ("Lung Lesion",), ()),
    ("No focal airspace opacity.", ("Lung Opacity",), _LUNG),
    ("No displaced rib fracture.", ("Fracture",), ()),
)
NEGATION_PROBABILITY = 0.35
POSITIVE_TEMPLATES = ("{P}.", "There is {a}{P}.", "{P} is noted.", "{P} is present.", "{P} is seen.")
HEDGED_TEMPLATES = ("Possible {P}.", "Questionable {P}.", "{P} cannot be excluded.", "There may be {a}{P}.")
DEVICE_TEMPLATES = ("{P} in standard position.", "{P} is in satisfactory position.", "{P} is in place.")
FILLERS = ("The lungs are otherwise clear.", "Osseous structures are intact.")
_COUNTABLE = {"effusion", "pneumothorax", "nodule", "mass", "silhouette", "mediastinum"}


class Span(NamedTuple):
    """Character span ``[start, end)`` in a text."""

    start: int
    end: int

    def shifted(self, offset: int) -> Span:
        return Span(self.start + offset, self.end + offset)


@dataclass(frozen=True)
class Sentence:
    """One or more sentences of the FINDINGS; a positive one names finding ``finding`` at these spans."""

    text: str
    finding: int | None = None
    phrase: Span | None = None
    head: Span | None = None


@dataclass(frozen=True)
class Report:
    """A written report: ``spans[k]`` = (phrase span, head-word span) of finding k in ``findings``."""

    findings: str
    impression: str
    negated: set[str]
    spans: dict[int, tuple[Span, Span]]


def _article(phrase: Phrase) -> str:
    text = phrase.text
    if phrase.head not in _COUNTABLE or text.startswith("widened") or "widening" in text:
        return ""
    return "an " if text[0] in "aeiou8" else "a "


def _capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _sentence(f: Finding, k: int, rng: np.random.Generator) -> Sentence:
    """A sentence naming finding ``k``: a template drawn for its certainty, around its phrase."""
    templates = DEVICE_TEMPLATES if f.label == SUPPORT_DEVICES else (
        POSITIVE_TEMPLATES if f.certainty == 1 else HEDGED_TEMPLATES)
    template = templates[rng.integers(len(templates))]
    prefix, suffix = template.split("{P}")
    prefix = prefix.format(a=_article(f.phrase))
    start, head_start = len(prefix), len(prefix) + len(f.phrase.before)
    return Sentence(_capitalise(prefix + f.phrase.text + suffix), k, Span(start, start + len(f.phrase.text)),
                    Span(head_start, head_start + len(f.phrase.head)))


def join_sentences(sentences: list[Sentence]) -> tuple[str, dict[int, tuple[Span, Span]]]:
    """Join with single spaces; return the text and {finding: (phrase span, head span)} in it."""
    spans, offset = {}, 0
    for s in sentences:
        if s.finding is not None:
            spans[s.finding] = (s.phrase.shifted(offset), s.head.shifted(offset))
        offset += len(s.text) + 1
    return " ".join(s.text for s in sentences), spans


def _impression(findings: list[Finding], rng: np.random.Generator) -> str:
    items = [("Possible " if f.certainty == -1 else "") + f.phrase.text
             for f in findings if f.label != SUPPORT_DEVICES]
    if not items:
        return NORMAL_IMPRESSIONS[rng.integers(len(NORMAL_IMPRESSIONS))]
    if len(items) == 1:
        return _capitalise(items[0]) + "."
    return " ".join(f"{i}. {_capitalise(item)}." for i, item in enumerate(items, 1))


def labels_for(findings: list[Finding], negated: set[str]) -> dict[str, int | None]:
    """CheXpert labels of a report that names ``findings`` and negates the labels in ``negated``."""
    labels = empty_labels()
    for f in findings:  # a label named twice keeps its surest mention (1 beats -1)
        labels[f.label] = max(labels[f.label] or -1, f.certainty)
    for name in negated:
        if labels[name] is None:
            labels[name] = 0
    if not any(labels[n] in (1, -1) for n in PATHOLOGY_LABELS):
        labels["No Finding"] = 1
    return labels


def write_report(findings: list[Finding], rng: np.random.Generator) -> Report:
    """Write the report of a study with ``findings`` (none: a normal study)."""
    if not findings:
        i = int(rng.choice(len(NORMAL_FINDINGS), p=NORMAL_WEIGHTS))
        text, negated = NORMAL_FINDINGS[i]
        return Report(text, NORMAL_IMPRESSIONS[rng.integers(len(NORMAL_IMPRESSIONS))], set(negated), {})
    mentioned = {f.label for f in findings}
    positives = [_sentence(f, k, rng) for k, f in enumerate(findings)]
    negations, negated = [], set()
    for i in rng.permutation(len(NEGATIONS)):
        text, labels, forbidden = NEGATIONS[i]
        blocked = mentioned | negated
        if not (set(labels) & blocked or set(forbidden) & mentioned) and rng.random() < NEGATION_PROBABILITY:
            negations.append(Sentence(text))
            negated.update(labels)
    if rng.random() < 0.3:
        negations.append(Sentence(FILLERS[rng.integers(len(FILLERS))]))
    order = list(rng.permutation(len(positives)))
    sentences = [positives[i] for i in order]
    sentences = sentences + negations if rng.random() < 0.6 else negations + sentences
    text, spans = join_sentences(sentences)
    return Report(text, _impression(findings, rng), negated, spans)
