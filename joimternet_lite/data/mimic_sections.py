"""MIMIC-CXR report sections: split a report at its ``NAME:`` headers and normalise the names.

Taught in notebook 12. The names follow the official MIMIC-CXR section parser (the ``section_parser``
module of the MIT-LCP mimic-cxr repository), so that our findings and impression match the text other MIMIC-CXR work
uses. Its rules, restated as data:

1. :data:`SECTION_ALIASES`: the frequent header names and their typos -> a section name;
2. else a header that contains a main section name (:data:`MAIN_SECTIONS`) is that section,
   e.g. ``FINDINGS (PA AND LATERAL)`` -> findings;
3. else a header that describes the views taken (:data:`FINDINGS_CUES`, e.g. ``PA AND LATERAL``)
   is findings; any other header keeps its own (lower-case) name.

The official table sends ``ndication`` to impression (a typo of indication, one report in the whole
collection); it is kept so that our sections stay those of the official parser.
"""

from __future__ import annotations

import re

# Lower-case header -> section, the official parser's table of frequent names and typos.
SECTION_ALIASES: dict[str, str] = {
    **{name: name for name in ("preamble", "impression", "comparison", "indication", "findings", "examination",
                               "technique", "history", "notification", "addendum", "date", "comment", "wet read",
                               "recommendations")},
    "conclusion": "impression", "findings and impression": "impression",
    "findings/impression": "impression", "findings/ impression": "impression", "ndication": "impression",
    **{typo: "impression" for typo in ("impresson", "imprression", "imoression", "impressoin", "imprssion",
                                       "impresion", "imperssion", "mpression", "impession")},
    "chest, two views": "findings", "reference findings": "findings",
    **{typo: "findings" for typo in ("finding", "findins", "findindgs", "findgings", "findngs", "findnings",
                                     "finidngs")},
    "comparisons": "comparison", "reference exam": "comparison", "comparison exam": "comparison",
    "comparison film": "comparison",
    **{typo: "comparison" for typo in ("comparision", "comparsion", "comparrison", "comparisions")},
    "reason for examination": "indication", "reason for exam": "indication", "clinical indication": "indication",
    "idication": "indication",
    "clinical history": "history", "clinical information": "history", "patient history": "history",
    "pfi": "history",
    "exam": "examination", "type of examination": "examination",
    "recommendation(s)": "recommendations", "recommendation": "recommendations",
    "wetread": "wet read",
}
MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")  # matched in this order
FINDINGS_CUES = ("chest", "portable", "pa and lateral", "lateral and pa", "ap and lateral", "lateral and ap",
                 "frontal and", "two views", "frontal view", "pa view", "ap view", "one view", "lateral view",
                 "bone window", "frontal upright", "frontal semi-upright", "ribs", "pa and lat")

# An upper-case name at the start of a line, then a colon; the characters the official parser allows.
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z ()/,&-]{1,60}):", re.MULTILINE)


def normalise_section_name(header: str) -> str:
    """A report header (any case, without the colon) -> its section name, by the rules above."""
    name = " ".join(header.lower().split())
    if name in SECTION_ALIASES:
        return SECTION_ALIASES[name]
    main = next((m for m in MAIN_SECTIONS if m in name), None)
    if main:
        return main
    return "findings" if any(cue in name for cue in FINDINGS_CUES) else name


def split_sections(report: str) -> dict[str, str]:
    """Section name -> its text, whitespace collapsed. Sections with the same name (``FINDINGS`` and
    ``CHEST, TWO VIEWS``) are joined in report order, so no body is lost; text before the first
    header is ``preamble``."""
    headers = list(_HEADER.finditer(report))
    starts = [0] + [h.end() for h in headers]
    ends = [h.start() for h in headers] + [len(report)]
    names = ["preamble"] + [normalise_section_name(h.group(1)) for h in headers]
    sections: dict[str, list[str]] = {}
    for name, start, end in zip(names, starts, ends, strict=True):
        if body := " ".join(report[start:end].split()):
            sections.setdefault(name, []).append(body)
    return {name: " ".join(bodies) for name, bodies in sections.items()}
