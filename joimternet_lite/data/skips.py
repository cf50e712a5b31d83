"""Counted, logged skips for data scripts: nothing bad is dropped silently.

Taught in notebook 12. Every data script (``prepare``, ``build_cache``) records each input it
cannot use with a kind, the file and the reason. At the end it prints how many, of which kinds, and
where the full list is (a JSON-lines file), and fails when the skipped fraction passes a threshold.

The fraction counts one unit on both sides: an entry may name the ``unit`` it belongs to (the study
or report of a bad image), and the numerator counts distinct units, never files per unit. Kinds in
:data:`EXPECTED_KINDS` (files that are absent, studies without a frontal image) are listed and
reported but never counted toward the threshold, which is for files that fail.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import UserError

log = logging.getLogger(__name__)

# Expected exclusions: listed and reported, never counted toward max_skip_fraction.
EXPECTED_KINDS = frozenset({"missing_image", "no_frontal_image"})


class TooManySkipsError(UserError, RuntimeError):
    """More inputs were skipped than the ``max_skip_fraction`` option allows."""


class SkipLog:
    """Collects skips; ``counts()`` counts them by kind, ``write()`` saves the list as JSON lines."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def add(self, kind: str, file: str | Path, reason: str, unit: str | None = None) -> None:
        """Record one skipped file; ``unit`` is the study or report it belongs to (see the module docstring)."""
        entry = {"kind": kind, "file": str(file), "reason": reason}
        if unit is not None:
            entry["unit"] = str(unit)
        self.entries.append(entry)
        if kind not in EXPECTED_KINDS:  # expected ones are summed up at the end, not one line each
            log.warning("skipped (%s) %s: %s", kind, file, reason)

    def __len__(self) -> int:
        return len(self.entries)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e["kind"] for e in self.entries).items()))

    def failed_units(self) -> int:
        """Distinct units with at least one failing (not expected) entry; an entry without a unit is its own."""
        return len(self._units(e for e in self.entries if e["kind"] not in EXPECTED_KINDS))

    @staticmethod
    def _units(entries) -> set:
        return {("unit", e["unit"]) if "unit" in e else ("entry", i) for i, e in enumerate(entries)}

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in self.entries))
        return path

    def report(self, total: int, list_path: Path, what: str = "inputs") -> str:
        """A one-paragraph end-of-run summary: how many ``what`` failed, which kinds, the expected
        exclusions apart, and where the list is. ``total`` and the count are both in ``what``."""
        if not self.entries:
            return f"skipped 0 of {total} {what}"
        counts = self.counts()
        failing = {k: n for k, n in counts.items() if k not in EXPECTED_KINDS}
        text = f"skipped {self.failed_units()} of {total} {what}"
        if failing:
            text += " (" + ", ".join(f"{k}: {n}" for k, n in failing.items()) + ")"
        for kind in sorted(set(counts) - set(failing)):
            units = len(self._units(e for e in self.entries if e["kind"] == kind))
            text += f"; not counted (expected): {kind}: {counts[kind]} in {units} {what}"
        return f"{text}; full list in {list_path}"

    def check(self, total: int, max_fraction: float, list_path: Path, what: str = "inputs",
              option: str = "--max-skip-fraction") -> None:
        """Raise ``TooManySkipsError`` when more than ``max_fraction`` of ``total`` were skipped.

        ``option`` names the setting that raises the threshold where this check runs.
        """
        if total and self.failed_units() / total > max_fraction:
            raise TooManySkipsError(
                f"{self.report(total, list_path, what)}: more than the allowed fraction {max_fraction:g}. "
                f"Fix the files listed there, or raise {option} if these skips are expected."
            )


class StudySkipLog(SkipLog):
    """The training run's skips: studies the loader could not read, each counted once however many
    epochs meet it. Taught in notebook 08.

    Each entry is ``{"kind": "unreadable", "study_id", "reason"}``, the reason as the dataset gave it
    (the file and the problem). The list is rewritten to ``skipped_samples.jsonl`` in ``out_dir``
    whenever it grows (by rank 0), so it is on disk however the run stops; more than
    ``max_fraction`` of the dataset fails the run (``data.max_skip_fraction``). The studies the
    dataset left out (``excluded``: no frontal image) are listed there too, as ``no_frontal_image``,
    and never counted. ``entries`` restores the unreadable ones a checkpoint recorded.
    """

    KIND = "unreadable"
    WHAT = "training studies"

    def __init__(self, out_dir: Path, dataset_size: int, max_fraction: float, is_main: bool,
                 entries: list[dict] | None = None, excluded: list[tuple[str, str]] = ()):
        super().__init__()
        self.path = Path(out_dir) / "skipped_samples.jsonl"
        self.total, self.max_fraction, self.is_main = dataset_size, max_fraction, is_main
        self.entries = [e for e in entries or [] if e["kind"] == self.KIND]
        self.seen = {e["study_id"] for e in self.entries}
        self.entries += [{"kind": "no_frontal_image", "study_id": sid, "reason": reason} for sid, reason in excluded]
        if excluded and is_main:
            self.write(self.path)

    def add_studies(self, skipped: list[tuple[str, str]]) -> None:
        """Record ``(study_id, reason)`` pairs not seen before; fail past the allowed fraction."""
        new = [(sid, reason) for sid, reason in skipped if sid not in self.seen]
        for sid, reason in new:
            self.seen.add(sid)
            self.entries.append({"kind": self.KIND, "study_id": sid, "reason": reason})
            log.warning("skipped study %s: %s", sid, reason)
        if new and self.is_main:
            self.write(self.path)
        self.check(self.total, self.max_fraction, self.path, self.WHAT, option="data.max_skip_fraction")

    def unreadable(self) -> list[dict]:
        """The entries a checkpoint stores (the excluded studies are the dataset's, not the run's)."""
        return [e for e in self.entries if e["kind"] == self.KIND]

    def summary(self) -> str:
        return self.report(self.total, self.path, self.WHAT)


MAX_REPORT_WORDS = 2000  # longer "reports" are concatenation accidents: skipped, not truncated


def usable_report_text(text: str, source: str, skips: SkipLog, unit: str | None = None) -> bool:
    """False (and a logged skip, for ``unit``) for an empty or overlong report text."""
    if not text.strip():
        skips.add("empty_report", source, "no FINDINGS or IMPRESSION text", unit)
        return False
    words = len(text.split())
    if words > MAX_REPORT_WORDS:
        skips.add("overlong_report", source, f"{words} words > {MAX_REPORT_WORDS}; check the file is one report", unit)
        return False
    return True
