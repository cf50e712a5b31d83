"""The ``--out`` folder of ``prepare``: checked before anything is written into it. Taught in notebook 12.

``prepare`` writes ``manifest/``, ``manifest.json``, ``summary.json`` and ``skips.jsonl`` (and, for the
NLM image archive, ``images/``). It writes only into a new or empty folder, or one that already holds
its own output for the same dataset (a ``manifest.json`` or ``summary.json`` naming that source, left by
an earlier run, finished or failed). Any other folder is the user's: refused unless ``overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import SourceError

OUTPUT_MARKERS = ("manifest.json", "summary.json")  # both name the source they were prepared from


class OutFolderError(SourceError):
    """An output folder that ``prepare`` will not write into; the message names it and the fix."""


def check_out_folder(out: Path, source: str, overwrite: bool = False) -> None:
    """Raise ``OutFolderError`` unless ``out`` is new, empty, or holds ``prepare``'s output for ``source``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutFolderError(f"{out}: is a file, not a folder; give --out a new or empty folder")
    if overwrite or not out.exists() or not any(out.iterdir()) or prepared_from(out) == source:
        return
    raise OutFolderError(
        f"{out}: the folder is not empty and holds no `prepare` output for {source} (no manifest.json or "
        f"summary.json naming it); give --out a new or empty folder, or add --overwrite to write into it "
        "anyway (prepare replaces manifest/, manifest.json, summary.json and skips.jsonl and deletes nothing else)")


def prepared_from(out: Path) -> str | None:
    """The source named by the ``prepare`` output in ``out``, or None when there is none."""
    for name in OUTPUT_MARKERS:
        try:
            source = json.loads((out / name).read_text(encoding="utf-8")).get("source")
        except (OSError, ValueError, AttributeError):  # absent, unreadable, or not a JSON object
            continue
        if source:
            return source
    return None
