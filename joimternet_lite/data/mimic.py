"""MIMIC-CXR from the user's own credentialed PhysioNet download: parse, label, split, prepare.

Taught in notebook 12. This module never downloads anything (:func:`physionet_steps` prints how
to). Accepted layouts under ``source`` (the folder PhysioNet's ``wget`` created, or any parent):

- MIMIC-CXR-JPG: ``files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg`` with
  ``mimic-cxr-2.0.0-metadata.csv(.gz)``, ``-split.csv(.gz)`` and ``-chexpert.csv(.gz)``;
- MIMIC-CXR (DICOM): ``files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.dcm``;
- reports ``files/pXX/pXXXXXXXX/sXXXXXXXX.txt`` (``mimic-cxr-reports.zip`` extracted) in either.

Decisions: the text is FINDINGS + IMPRESSION (the paper's), with section names normalised as the
official MIMIC-CXR parser does (``mimic_sections``); a report with neither falls back to its
last paragraph, then to the whole report. De-identification blanks ``___`` are removed by default
(options as in OpenI). Views: ViewPosition PA/AP = frontal, LATERAL/LL = lateral (from the metadata
CSV, else the DICOM header). Splits: ``official`` (the split CSV) or ``paper`` (2,000 validation and
3,000 test studies drawn with a seeded permutation from official train+validate; official test
studies are then left out and counted). Labels: the CheXpert CSV; ``uncertain="keep"`` keeps -1,
``"zeros"`` / ``"ones"`` map it; blanks stay None. Without the CheXpert CSV (every label blank) or,
for JPG sources, the metadata CSV (every view unknown) ``prepare`` stops unless told to go on
(``allow_missing_labels`` / ``allow_missing_metadata``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from .errors import SourceError
from .mimic_sections import split_sections
from .out_folder import check_out_folder
from .prepare_options import MIMIC_SPLIT_CHOICES, MIMIC_UNCERTAIN_POLICIES, physionet_steps
from .report_text import remove_deid
from .schema import CHEXPERT_LABELS, empty_labels, save_manifest
from .skips import SkipLog, usable_report_text
from .source_files import files_under, read_csv_table
from .splits import DEFAULT_SEED, split_for
from .verify import drop_bad_images

log = logging.getLogger(__name__)

PAPER_VALIDATE, PAPER_TEST = 2000, 3000
FRONTAL_POSITIONS = {"PA", "AP", "AP AXIAL", "PA LLD", "AP LLD", "AP RLD", "PA RLD"}
LATERAL_POSITIONS = {"LATERAL", "LL", "RL", "LAO", "RAO", "LPO"}

_STUDY_DIR = re.compile(r"^s\d+$")


class MimicError(SourceError):
    """A MIMIC-CXR source that cannot be prepared; the message names the path and the fix."""


def parse_report(report: str, dedeid: str = "remove") -> dict[str, str]:
    """-> {findings, impression, text}. Text = findings + impression, else last paragraph, else all.

    Section names are normalised as the official MIMIC-CXR parser does (``mimic_sections``), so a
    body under ``CONCLUSION:`` or ``FINDNGS:`` is impression or findings, not lost."""
    sections = split_sections(report)
    findings = remove_deid(sections.get("findings", ""), dedeid)
    impression = remove_deid(sections.get("impression", ""), dedeid)
    text = " ".join(s for s in (findings, impression) if s)
    if not text:
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", report) if p.strip()]
        last = paragraphs[-1] if paragraphs else ""
        text = remove_deid(last, dedeid) or remove_deid(" ".join(report.split()), dedeid)
    return {"findings": findings, "impression": impression, "text": text}


def read_report(path: Path, skips: SkipLog) -> str | None:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        skips.add("non_utf8_report", path, f"{err}; MIMIC reports are ASCII: the file is damaged, copy it again")
        return None


def view_from_position(position: str | None) -> str:
    position = (position or "").strip().upper()
    if position in FRONTAL_POSITIONS:
        return "frontal"
    return "lateral" if position in LATERAL_POSITIONS else "unknown"


def read_chexpert_csv(path: Path, uncertain: str, skips: SkipLog) -> tuple[dict[str, dict], list[str]]:
    """study_id -> labels (1/0/-1/None after the uncertain policy); also the ignored unknown columns."""
    if uncertain not in MIMIC_UNCERTAIN_POLICIES:
        raise MimicError(f"uncertain policy {uncertain!r}: use one of {MIMIC_UNCERTAIN_POLICIES}")
    table = read_csv_table(path, ("study_id", *CHEXPERT_LABELS), "mimic-cxr-2.0.0-chexpert.csv")
    unknown = [c for c in table.columns if c not in ("subject_id", "study_id", *CHEXPERT_LABELS)]
    if unknown:
        log.warning("%s: ignoring unknown columns %s", path, unknown)
    labels = {}
    for row in table.to_dict("records"):
        try:
            labels[f"s{row['study_id'].lstrip('s')}"] = {n: _label_value(row[n], uncertain) for n in CHEXPERT_LABELS}
        except ValueError as err:
            skips.add("bad_label_row", f"{path}:study {row['study_id']}", str(err))
    return labels, unknown


def _label_value(cell: str, uncertain: str) -> int | None:
    cell = cell.strip()
    if cell == "":
        return None
    value = {"1": 1, "1.0": 1, "0": 0, "0.0": 0, "-1": -1, "-1.0": -1}.get(cell)
    if value is None:
        raise ValueError(f"label value {cell!r} is not 1, 0, -1 or blank; download the label CSV again")
    if value == -1 and uncertain != "keep":
        return 0 if uncertain == "zeros" else 1
    return value


def paper_split(study_ids: list[str], official: dict[str, str], seed: int = DEFAULT_SEED) -> dict[str, str]:
    """The paper's split: 2,000 validate + 3,000 test drawn (seeded) from official train+validate."""
    pool = sorted(s for s in study_ids if official.get(s) in ("train", "validate"))
    order = np.random.default_rng(seed).permutation(len(pool))
    n_val = min(PAPER_VALIDATE, len(pool) // 10)  # small sources keep the same proportions
    n_test = min(PAPER_TEST, len(pool) * 3 // 20)
    if len(pool) >= PAPER_VALIDATE + PAPER_TEST:
        n_val, n_test = PAPER_VALIDATE, PAPER_TEST
    split = {}
    for rank, i in enumerate(order):
        split[pool[i]] = "validate" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return split


def find_csv(source: Path, suffix: str) -> Path | None:
    hits = files_under(source, f"*{suffix}.csv") + files_under(source, f"*{suffix}.csv.gz")
    return hits[0] if hits else None


def prepare_mimic(source: str | Path, out: str | Path, split: str = "official", uncertain: str = "zeros",
                  dedeid: str = "remove", seed: int = DEFAULT_SEED, max_skip_fraction: float = 0.1,
                  allow_missing_labels: bool = False, allow_missing_metadata: bool = False,
                  verify_decode: bool = False, overwrite: bool = False) -> dict:
    """Build the manifest under ``out`` from a local MIMIC-CXR(-JPG) tree; return the summary counts.

    Every image is checked (:mod:`.verify`; ``verify_decode`` decodes each one too); a corrupt one
    is a counted skip.

    A missing CheXpert label CSV (every label blank) or metadata CSV (every JPG view unknown, so
    laterals would train as frontal films) is an error unless the matching ``allow_missing_*`` is set.
    ``out`` is checked before anything is written (:mod:`.out_folder`; ``overwrite`` skips the check).
    """
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise MimicError(f"{source}: source folder not found.\n{physionet_steps()}")
    if split not in MIMIC_SPLIT_CHOICES:
        raise MimicError(f"split {split!r}: use one of {MIMIC_SPLIT_CHOICES}")
    check_out_folder(out, "mimic-cxr", overwrite)
    skips = SkipLog()
    studies = _find_studies(source)
    if not studies:
        raise MimicError(f"{source}: no files/pXX/pXXXXXXXX/sXXXXXXXX folders or report .txt files found.\n{physionet_steps()}")
    meta = _read_metadata(source, studies, allow_missing_metadata)
    official = _read_official_split(source)
    label_csv = _find_label_csv(source, allow_missing_labels)
    labels, ignored = read_chexpert_csv(label_csv, uncertain, skips) if label_csv else ({}, [])
    records, counts = _build_records(studies, meta or {}, labels, dedeid, skips)
    records = drop_bad_images(records, skips, decode=verify_decode)
    counts["views_from"] = "metadata_csv" if meta is not None else "dicom_headers_only"
    if not official:
        log.warning("%s: no mimic-cxr-2.0.0-split.csv(.gz); studies get a seeded hash split instead", source)
        official = {r["study_id"]: split_for(r["study_id"], seed) for r in records}
    chosen = paper_split([r["study_id"] for r in records], official, seed) if split == "paper" else official
    kept = [{**r, "split": chosen[r["study_id"]]} for r in records if r["study_id"] in chosen]
    counts["left_out_by_split"] = len(records) - len(kept)  # paper: the official test studies
    summary = _summarise(counts, kept, studies, skips, out, split, uncertain, ignored, label_csv)
    _warn_about_gaps(summary, out)
    if split == "paper":
        summary["paper_split_file"] = _write_split_file(out, kept, seed)
    if kept:
        save_manifest(kept, out, source="mimic-cxr", summary=summary)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    print(skips.report(len(studies), out / "skips.jsonl", "studies"))
    skips.check(len(studies), max_skip_fraction, out / "skips.jsonl", "studies")
    return summary


def _find_studies(source: Path) -> dict[str, dict]:
    """study id -> {report: Path | None, images: [Path]} from the files/ tree."""
    studies: dict[str, dict] = {}
    for report in files_under(source, "s*.txt"):
        if _STUDY_DIR.match(report.stem):
            studies.setdefault(report.stem, {"report": None, "images": []})["report"] = report
    for path in files_under(source, "*"):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".dcm") and _STUDY_DIR.match(path.parent.name):
            studies.setdefault(path.parent.name, {"report": None, "images": []})["images"].append(path)
    return studies


def _find_label_csv(source: Path, allow_missing: bool) -> Path | None:
    path = find_csv(source, "chexpert")
    if path is None:
        _missing_csv(source, "chexpert", "every label would be blank (classification has nothing to score)",
                      "--allow-missing-labels", allow_missing)
    return path


def _read_metadata(source: Path, studies: dict[str, dict], allow_missing: bool) -> dict[str, str] | None:
    """dicom_id -> ViewPosition, or None without the metadata CSV (then only DICOM headers give views)."""
    path = find_csv(source, "metadata")
    if path is None:
        n_jpg = sum(p.suffix.lower() != ".dcm" for s in studies.values() for p in s["images"])
        if n_jpg:
            _missing_csv(source, "metadata", f"the views of {n_jpg} JPG/PNG images would be unknown and laterals "
                         "would train as frontal films", "--allow-missing-metadata", allow_missing)
        return None
    table = read_csv_table(path, ("dicom_id", "ViewPosition"), "mimic-cxr-2.0.0-metadata.csv")
    return dict(zip(table["dicom_id"], table["ViewPosition"], strict=True))


def _missing_csv(source: Path, name: str, consequence: str, option: str, allowed: bool) -> None:
    """Raise (or, when ``allowed``, log) that ``mimic-cxr-2.0.0-<name>.csv`` is not under ``source``."""
    problem = f"{source}: mimic-cxr-2.0.0-{name}.csv(.gz) not found, so {consequence}"
    if not allowed:
        raise MimicError(f"{problem}. Download it from https://physionet.org/content/mimic-cxr-jpg/ into "
                         f"{source}, or pass {option} to prepare without it.")
    log.warning("%s; going on because of %s", problem, option)


def _read_official_split(source: Path) -> dict[str, str]:
    path = find_csv(source, "split")
    if path is None:
        return {}
    table = read_csv_table(path, ("study_id", "split"), "mimic-cxr-2.0.0-split.csv")
    return {f"s{s.lstrip('s')}": v for s, v in zip(table["study_id"], table["split"], strict=True)}


def _view_of(image: Path, meta: dict[str, str]) -> str:
    if image.stem in meta:
        return view_from_position(meta[image.stem])
    if image.suffix.lower() == ".dcm":
        import pydicom

        try:
            return view_from_position(pydicom.dcmread(image, stop_before_pixels=True, force=True).get("ViewPosition"))
        except Exception:  # a bad header is reported when the image is read; the view is just unknown
            return "unknown"
    return "unknown"


def _build_records(studies, meta, labels, dedeid, skips):
    counts = {"reports_without_images": 0, "images_without_reports": 0, "studies_without_labels": 0,
              "empty_sections": {"findings": 0, "impression": 0}}
    records = []
    for study_id, entry in sorted(studies.items()):
        images = [p for p in entry["images"] if _nonempty_image(p, study_id, skips)]
        if entry["report"] is None:
            counts["images_without_reports"] += len(entry["images"])
            continue
        if not images:
            counts["reports_without_images"] += 1
            continue
        raw = read_report(entry["report"], skips)
        if raw is None:
            continue
        parsed = parse_report(raw, dedeid)
        counts["empty_sections"]["findings"] += not parsed["findings"]
        counts["empty_sections"]["impression"] += not parsed["impression"]
        if not usable_report_text(parsed["text"], str(entry["report"]), skips, unit=study_id):
            continue
        counts["studies_without_labels"] += study_id not in labels
        records.append({
            "study_id": study_id, "image_paths": [str(p.resolve()) for p in images],
            "views": [_view_of(p, meta) for p in images], **parsed,
            "labels": labels.get(study_id, empty_labels()), "split": "",
        })
    return records, counts


def _nonempty_image(path: Path, study_id: str, skips: SkipLog) -> bool:
    if path.stat().st_size == 0:
        skips.add("empty_image", path, "zero-byte file; download it again (wget -c resumes)", unit=study_id)
        return False
    return True


def _write_split_file(out: Path, records: list[dict], seed: int) -> dict:
    text = "study_id,split\n" + "".join(f"{r['study_id']},{r['split']}\n" for r in sorted(records, key=lambda r: r["study_id"]))
    atomic_write_text(out / "paper_split.csv", text)
    return {"path": str(out / "paper_split.csv"), "seed": seed, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _warn_about_gaps(summary: dict, out: Path) -> None:
    """Log the kept studies that train with less than they should: blank labels, unknown views."""
    gaps = {"studies_without_labels": "kept studies have no row in the label CSV (all labels blank)",
            "unknown_view": "kept images have an unknown view (training uses them when a study has no frontal)"}
    for key, what in gaps.items():
        if summary[key]:
            log.warning("%d %s; counts in %s", summary[key], what, out / "summary.json")


def _summarise(counts, records, studies, skips, out, split, uncertain, ignored, label_csv) -> dict:
    views = [v for r in records for v in r["views"]]
    return {
        "source": "mimic-cxr", "study_folders": len(studies), "studies": len(records),
        "images": len(views), "frontal": views.count("frontal"), "lateral": views.count("lateral"),
        "unknown_view": views.count("unknown"), "split": split, "uncertain": uncertain,
        "splits": {s: sum(r["split"] == s for r in records) for s in ("train", "validate", "test")},
        "labels_from": str(label_csv) if label_csv else None, "ignored_label_columns": ignored,
        **counts, "skipped": skips.failed_units(), "skips_by_kind": skips.counts(),
        "skip_list": str(skips.write(out / "skips.jsonl")),
    }
