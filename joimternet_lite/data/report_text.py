"""Clean report text the same way for every source: whitespace and de-identification blanks.

Taught in notebook 12. OpenI writes a removed name or date as ``XXXX``, MIMIC-CXR as ``___``; one
pattern finds both, so one function serves both parsers.
"""

from __future__ import annotations

import re

DEDEID_CHOICES = ("remove", "keep", "token")
DEID_BLANK = re.compile(r"\bX{2,}\b|_{2,}")  # OpenI "XXXX", MIMIC-CXR "___"
DEID_TOKEN = "deid"


def clean_whitespace(text: str) -> str:
    """One space between words, none before punctuation (removed blanks leave "sternotomy .")."""
    return re.sub(r" ([.,;:])", r"\1", " ".join(text.split()))


def remove_deid(text: str, dedeid: str) -> str:
    """Apply the ``--dedeid`` choice: drop the blanks (``remove``), keep the text as it is
    (``keep``), or replace each blank by the word ``deid`` (``token``); whitespace is then cleaned."""
    if dedeid not in DEDEID_CHOICES:
        raise ValueError(f"dedeid {dedeid!r}: use one of {DEDEID_CHOICES}")
    if dedeid == "keep":
        return text
    return clean_whitespace(DEID_BLANK.sub("" if dedeid == "remove" else DEID_TOKEN, text))
