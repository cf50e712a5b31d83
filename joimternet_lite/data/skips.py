"""Counted, logged skips for data scripts: nothing bad is dropped silently.

Taught in notebook 12. Every data script (``prepare``, ``build_cache``) records each input it
cannot use with a kind, the file and the reason. At the end it prints how many, of which kinds, and
where the full list is (a JSON-lines file), and fails when the skipped fraction passes a threshold.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import UserError

log = logging.getLogger(__name__)


class TooManySkipsError(UserError, RuntimeError):
    """More inputs were skipped than the ``max_skip_fraction`` option allows."""


class SkipLog:
    """Collects skips; ``summary()`` counts them by kind, ``write()`` saves the list as JSON lines."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def add(self, kind: str, file: str | Path, reason: str) -> None:
        self.entries.append({"kind": kind, "file": str(file), "reason": reason})
        log.warning("skipped (%s) %s: %s", kind, file, reason)

    def __len__(self) -> int:
        return len(self.entries)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e["kind"] for e in self.entries).items()))

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in self.entries))
        return path

    def report(self, total: int, list_path: Path, what: str = "inputs") -> str:
        """A one-paragraph end-of-run summary: how many, which kinds, where the list is."""
        if not self.entries:
            return f"skipped 0 of {total} {what}"
        kinds = ", ".join(f"{k}: {n}" for k, n in self.counts().items())
        return f"skipped {len(self)} of {total} {what} ({kinds}); full list in {list_path}"

    def check(self, total: int, max_fraction: float, list_path: Path, what: str = "inputs",
              option: str = "--max-skip-fraction") -> None:
        """Raise ``TooManySkipsError`` when more than ``max_fraction`` of ``total`` were skipped.

        ``option`` names the setting that raises the threshold where this check runs.
        """
        if total and len(self) / total > max_fraction:
            raise TooManySkipsError(
                f"{self.report(total, list_path, what)}: more than the allowed fraction {max_fraction:g}. "
                f"Fix the files listed there, or raise {option} if these skips are expected."
            )


MAX_REPORT_WORDS = 2000  # longer "reports" are concatenation accidents: skipped, not truncated


def usable_report_text(text: str, source: str, skips: SkipLog) -> bool:
    """False (and a logged skip) for an empty or overlong report text."""
    if not text.strip():
        skips.add("empty_report", source, "no FINDINGS or IMPRESSION text")
        return False
    words = len(text.split())
    if words > MAX_REPORT_WORDS:
        skips.add("overlong_report", source, f"{words} words > {MAX_REPORT_WORDS}; check the file is one report")
        return False
    return True
