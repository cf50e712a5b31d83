"""OpenI / Indiana University chest X-ray collection (NLMCXR): parse reports, link images, prepare.

Taught in notebook 12. Accepted source layouts (any subset, in any sub-folders of ``source``):

- reports: ``NLMCXR_reports.tgz`` (read in memory, never extracted) or its ``ecgen-radiology/*.xml``;
  the Kaggle ``indiana_reports.csv`` (or R2Gen's copy ``iu_reports.csv``) only when there is no XML;
- images (``.png``, ``.jpg``, ``.jpeg``): the NLM PNG folder (``CXR<uid>_IM-xxxx-yyyy.png``, study 1
  as ``CXR1_1_IM-0001-3001.png``), the Kaggle ``images_normalized`` folder
  (``<uid>_IM-xxxx-yyyy.dcm.png``), R2Gen's ``iu_xray/images/CXR<uid>_IM-xxxx/<k>.png``, or
  ``NLMCXR_png.tgz`` (extracted safely into ``out/images``);
- views: ``indiana_projections.csv`` (or ``iu_projections.csv``) when it names the images, else the
  image classifier of :mod:`.views`.

Every linked image is checked (:mod:`.verify`, in parallel); a corrupt one is a counted skip. An image
a report lists but the source lacks (a partial download) is ``missing_image``: listed and reported in
studies and in images, never counted toward ``max_skip_fraction``; the studies with images prepare.

Decisions (written here because the paper is silent):

- text = FINDINGS, or IMPRESSION when findings is empty (``text_choice="findings_or_impression"``,
  the paper's); ``"findings_impression"`` joins both, ``"impression"`` takes impression only;
- de-identification tokens ``XXXX`` are removed by default (``dedeid="remove"``), kept (``"keep"``),
  or replaced by the word ``deid`` (``"token"``);
- labels come from the MeSH *major* terms through :data:`CHEXPERT_RULES` and :data:`OPENI8_RULES`.
  MeSH lists what is present, so a label whose rules do not match is 0 (negative), never -1;
  "No Finding" is 1 only when the only major term is ``normal``; a report indexed ``No Indexing``
  gets every label None. The 8 OpenI classes are the ChestX-ray8 classes (the usual OpenI transfer
  set): the authors' exact list is not public, change :data:`OPENI8_RULES` if yours differs;
- split: a hash of (seed, study id) picks train / validate / test = 70 / 10 / 20 %, so a study's
  split does not depend on which other studies are present; the published files under
  ``data_scripts/splits/`` list it for the whole collection.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..atomic import atomic_write_text
from .errors import SourceError
from .out_folder import check_out_folder
from .prepare_options import OPENI_TEXT_CHOICES
from .report_text import DEDEID_CHOICES, clean_whitespace, remove_deid
from .schema import CHEXPERT_LABELS, empty_labels, save_manifest
from .skips import SkipLog, usable_report_text
from .source_files import files_under, iter_tar_files, read_csv_table
from .splits import DEFAULT_SEED, SPLIT_FRACTIONS, split_for
from .verify import drop_bad_images
from .views import views_line

SECTIONS = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
REPORT_CSV_NAMES = ("indiana_reports.csv", "iu_reports.csv")  # Kaggle's name, R2Gen copies'
PROJECTION_CSV_NAMES = ("indiana_projections.csv", "iu_projections.csv")

# MeSH major term (lower case, "Term/qualifier/...") -> label, matched at the start of the term.
CHEXPERT_RULES: dict[str, tuple[str, ...]] = {
    "Atelectasis": (r"pulmonary atelectasis",),
    "Cardiomegaly": (r"cardiomegaly", r"cardiac shadow/enlarged"),
    "Consolidation": (r"consolidation",),
    "Edema": (r"pulmonary edema", r"pulmonary congestion", r"heart failure"),
    "Enlarged Cardiomediastinum": (r"mediastinum/(prominent|wide|enlarged)",),
    "Fracture": (r"fractures, bone",),
    "Lung Lesion": (r"nodule", r"mass\b", r"cavitation"),
    "Lung Opacity": (r"opacity", r"density/(lung|retrocardiac|costophrenic|right|left|bilateral)",
                     r"airspace disease", r"infiltrate", r"lung diseases, interstitial", r"lung/interstitial"),
    "Pleural Effusion": (r"pleural effusion", r"hydropneumothorax", r"hemothorax",
                         r"costophrenic angle/blunted", r"pleura/blunted"),
    "Pleural Other": (r"thickening/pleura",),
    "Pneumonia": (r"pneumonia",),
    "Pneumothorax": (r"pneumothorax", r"hydropneumothorax", r"hemopneumothorax"),
    "Support Devices": (r"catheters, indwelling", r"surgical instruments", r"implanted medical device",
                        r"medical device", r"tube, inserted", r"stents"),
}
OPENI8_RULES: dict[str, tuple[str, ...]] = {
    "Atelectasis": (r"pulmonary atelectasis",),
    "Cardiomegaly": (r"cardiomegaly",),
    "Effusion": (r"pleural effusion",),
    "Infiltration": (r"infiltrate",),
    "Mass": (r"mass\b",),
    "Nodule": (r"nodule",),
    "Pneumonia": (r"pneumonia",),
    "Pneumothorax": (r"pneumothorax",),
}
OPENI8_LABELS = tuple(OPENI8_RULES)

# CXR1000_IM-0003-1001, CXR1_1_IM-0001-3001 (NLM: an image-set number may follow the uid), 1000_IM-0003-1001.dcm
_IMAGE_NAME = re.compile(r"^(?:CXR)?(?P<uid>\d+)(?:_\d+)?_(?P<im>IM-\d+(?:-\d+)*)", re.IGNORECASE)
_R2GEN_FILE = re.compile(r"^\d+$")  # R2Gen: iu_xray/images/CXR1000_IM-0003/0.png


class OpenIError(SourceError):
    """An OpenI source that cannot be prepared; the message names the path and the fix."""


@dataclass
class OpenIReport:
    """One report XML. ``sections`` maps COMPARISON/INDICATION/FINDINGS/IMPRESSION to text ('' if empty)."""

    report_id: str
    source: str
    sections: dict[str, str]
    mesh_major: list[str] = field(default_factory=list)
    mesh_automatic: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)


def find_openi_source(root: str | Path) -> Path | None:
    """The first folder directly under ``root`` (sorted) that holds OpenI reports at its top level
    (a reports archive, ``ecgen-radiology/`` or a reports CSV), or None. Notebook 12 uses it to find a
    real download in the data folder; deeper folders (the notebook's own layouts) are not searched."""
    markers = ("NLMCXR_reports.tgz", "ecgen-radiology", *REPORT_CSV_NAMES)
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return next((f for f in folders if any((f / m).exists() for m in markers)), None)


def parse_report_xml(data: bytes, source: str) -> OpenIReport:
    """Parse one ``ecgen-radiology/<id>.xml``. Raises ``OpenIError`` naming ``source`` if malformed."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise OpenIError(f"{source}: malformed XML ({err}); the file is truncated or not an OpenI report: "
                         "copy or download it again, or move it out of the source folder") from err
    uid = root.find("uId")
    if uid is None or not uid.get("id"):
        raise OpenIError(f"{source}: no <uId id=...> element; not an OpenI report XML: "
                         "move it out of the source folder")
    sections = {name: "" for name in SECTIONS}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").upper()
        if label in sections:
            sections[label] = clean_whitespace("".join(node.itertext()))
    mesh = root.find("MeSH")
    major = [clean_whitespace(e.text or "") for e in (mesh.findall("major") if mesh is not None else [])]
    auto = [clean_whitespace(e.text or "") for e in (mesh.findall("automatic") if mesh is not None else [])]
    images = [e.get("id") for e in root.findall("parentImage") if e.get("id")]
    return OpenIReport(uid.get("id").removeprefix("CXR"), source, sections, major, auto, images)


def iter_report_xml(source: Path, skips: SkipLog) -> Iterator[OpenIReport]:
    """Every report under ``source``: XML files, and ``.xml`` members of ``*reports*.tgz`` read in memory."""
    for path in files_under(source, "*.xml"):
        yield from _parse_or_skip(path.read_bytes(), str(path), skips)
    for archive in files_under(source, "*reports*.tgz") + files_under(source, "*reports*.tar.gz"):
        for name, data in iter_tar_files(archive, ".xml"):
            yield from _parse_or_skip(data, f"{archive}:{name}", skips)


def _parse_or_skip(data: bytes, source: str, skips: SkipLog) -> Iterator[OpenIReport]:
    try:
        yield parse_report_xml(data, source)
    except OpenIError as err:
        skips.add("bad_report_xml", source, str(err))


def iter_report_csv(path: Path) -> Iterator[OpenIReport]:
    """Reports from the Kaggle ``indiana_reports.csv`` or a copy (uid, MeSH, Problems, image, indication, ...)."""
    for row in read_csv_table(path, ("uid",), path.name).to_dict("records"):
        sections = {name: clean_whitespace(row.get(name.lower(), "")) for name in SECTIONS}
        major = [t.strip() for t in row.get("MeSH", "").split(";") if t.strip()]
        yield OpenIReport(row["uid"].strip(), f"{path}:uid={row['uid']}", sections, major, [], [])


def image_key(name: str) -> tuple[str, str] | None:
    """(uid, IM part) of an image id, file name or path, None when it is no OpenI name.

    ``CXR1000_IM-0003-1001(.png)``, ``1000_IM-0003-1001.dcm.png`` -> ('1000', 'IM-0003-1001');
    ``CXR1_1_IM-0001-3001`` -> ('1', 'IM-0001-3001'); R2Gen ``CXR1000_IM-0003/0.png`` -> ('1000', 'IM-0003/0').
    """
    path = Path(name)
    stem = path.name.split(".")[0]
    if _R2GEN_FILE.match(stem):
        m = _IMAGE_NAME.match(path.parent.name)
        return (m["uid"], f"{m['im'].upper()}/{stem}") if m else None
    m = _IMAGE_NAME.match(path.name)
    return (m["uid"], m["im"].upper()) if m else None


def index_images(folder: Path) -> dict[tuple[str, str], Path]:
    """Map (uid, IM part) -> file for every OpenI-named image under ``folder``."""
    found: dict[tuple[str, str], Path] = {}
    for path in files_under(folder, "*"):
        if path.suffix.lower() in IMAGE_SUFFIXES and (key := image_key(str(path))):
            found.setdefault(key, path)
    return found


def link_image(image_id: str, images: dict[tuple[str, str], Path]) -> Path | None:
    """The file for a parentImage id: exact (uid, IM part), else the one same-uid file whose IM part
    extends it or is extended by it (some names drop or add a segment). None if absent or ambiguous."""
    key = image_key(image_id)
    if key is None:
        return None
    if key in images:
        return images[key]
    uid, im = key
    near = [p for (u, i), p in images.items() if u == uid and (i.startswith(im + "-") or im.startswith(i + "-"))]
    return near[0] if len(near) == 1 else None


def read_projections(path: Path) -> dict[tuple[str, str], str]:
    """Kaggle ``indiana_projections.csv`` or a copy (uid, filename, projection) -> {(uid, IM part): view}."""
    views = {}
    table = read_csv_table(path, ("filename", "projection"), path.name)
    for filename, projection in zip(table["filename"], table["projection"], strict=True):
        if key := image_key(filename):
            projection = projection.strip().lower()
            views[key] = projection if projection in ("frontal", "lateral") else "unknown"
    return views


def mesh_labels(major: list[str], rules: dict[str, tuple[str, ...]]) -> dict[str, int | None]:
    """Labels from MeSH major terms (see the module docstring for the 0 / None convention)."""
    terms = [t.lower().strip() for t in major]
    if not terms or terms == ["no indexing"]:
        return {name: None for name in rules}
    return {name: int(any(re.match(p, t) for p in pats for t in terms)) for name, pats in rules.items()}


def chexpert_labels_from_mesh(major: list[str]) -> dict[str, int | None]:
    labels = empty_labels()
    labels.update(mesh_labels(major, CHEXPERT_RULES))
    terms = [t.lower().strip() for t in major]
    labels["No Finding"] = None if labels["Atelectasis"] is None else int(terms == ["normal"])
    return labels


def study_text(findings: str, impression: str, choice: str) -> str:
    if choice == "findings_or_impression":
        return findings or impression
    if choice == "findings_impression":
        return " ".join(s for s in (findings, impression) if s)
    if choice == "impression":
        return impression
    raise OpenIError(f"unknown text choice {choice!r}; use one of {OPENI_TEXT_CHOICES}")


def prepare_openi(source: str | Path, out: str | Path, text_choice: str = "findings_or_impression",
                  dedeid: str = "remove", seed: int = DEFAULT_SEED, max_skip_fraction: float = 0.1,
                  publish_dir: str | Path | None = None, verify_decode: bool = False,
                  overwrite: bool = False) -> dict:
    """Parse ``source`` into a manifest under ``out``; return (and save as ``out/summary.json``) the counts.

    Raw files are only read. ``out`` is checked first (:mod:`.out_folder`; ``overwrite`` skips the
    check). ``publish_dir`` also writes the label and split files published under
    ``data_scripts/splits/`` (for every parsed report, with or without images).
    """
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise OpenIError(f"{source}: source folder not found. Download with data_scripts/download_openi.py")
    if text_choice not in OPENI_TEXT_CHOICES or dedeid not in DEDEID_CHOICES:
        raise OpenIError(f"text_choice must be in {OPENI_TEXT_CHOICES} and dedeid in {DEDEID_CHOICES}")
    check_out_folder(out, "openi", overwrite)
    skips = SkipLog()
    reports = _load_reports(source, skips)
    images = _load_images(source, out)
    projections, projections_csv = _load_projections(source, images)
    records, counts = _build_records(reports, images, projections, text_choice, dedeid, seed, skips)
    _require_linked_images(source, records, reports, images, skips)
    records = drop_bad_images(records, skips, decode=verify_decode, classify_views=projections is None)
    print(views_line([v for r in records for v in r["views"]], projections_csv or "the image classifier"))
    if publish_dir is not None:
        publish_splits(reports, Path(publish_dir), seed)
    summary = _summarise(counts, reports, images, records, projections is not None, skips, out)
    if records:  # every linked image may still fail the check
        save_manifest(records, out, source="openi", extra_features=_extra_features(), summary=summary)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    if summary["missing_images"]:
        print(missing_line(summary))
    total = len(reports) + sum(skips.counts().get(k, 0) for k in ("bad_report_xml", "conflicting_report"))
    print(skips.report(total, out / "skips.jsonl", "reports"))
    skips.check(total, max_skip_fraction, out / "skips.jsonl", "reports")
    return summary


def _load_projections(source: Path, images: dict) -> tuple[dict | None, str | None]:
    """Views from the first projections CSV that names at least one found image (R2Gen's image
    names are not in it), and the CSV's name; (None, None) when there is none."""
    for path in (p for name in PROJECTION_CSV_NAMES for p in files_under(source, name)):
        views = read_projections(path)
        if not images or views.keys() & images.keys():
            return views, path.name
    return None, None


def _require_linked_images(source: Path, records: list, reports: list, images: dict, skips: SkipLog) -> None:
    """An error when image files were found but no report could be linked to one: nothing to prepare."""
    if records or not images:
        return
    raise OpenIError(
        f"{source}: none of the {len(reports)} reports could be linked to an image file ({len(images)} "
        f"OpenI-named images found, {skips.counts().get('missing_image', 0)} listed images missing). Put the "
        "images beside the reports: .png/.jpg/.jpeg named CXR<uid>_IM-xxxx-yyyy (NLM), "
        "<uid>_IM-xxxx-yyyy.dcm.png (Kaggle) or CXR<uid>_IM-xxxx/<k>.png (R2Gen), or NLMCXR_png.tgz")


def missing_line(summary: dict) -> str:
    """The ``prepare`` line on images the reports list but the source lacks (a partial download)."""
    return (f"missing: {summary['missing_images']} images listed by the reports are not in the source, in "
            f"{summary['studies_missing_images']} reports ({summary['reports_without_images']} reports have no image "
            f"file at all and are left out; {summary['studies']} studies prepared). Listed in skips.jsonl as "
            "missing_image; not counted toward --max-skip-fraction")


def _load_reports(source: Path, skips: SkipLog) -> list[OpenIReport]:
    reports: dict[str, OpenIReport] = {}
    for report in iter_report_xml(source, skips):
        _add_once(reports, report, skips)
    if not reports:
        for csv_path in (p for name in REPORT_CSV_NAMES for p in files_under(source, name)):
            for report in iter_report_csv(csv_path):
                _add_once(reports, report, skips)
    if not reports:
        raise OpenIError(
            f"{source}: no OpenI reports found (expected NLMCXR_reports.tgz, ecgen-radiology/*.xml, "
            f"{' or '.join(REPORT_CSV_NAMES)}). Download them with data_scripts/download_openi.py."
        )
    return sorted(reports.values(), key=lambda r: int(r.report_id) if r.report_id.isdigit() else r.report_id)


def _add_once(reports: dict[str, OpenIReport], report: OpenIReport, skips: SkipLog) -> None:
    """Keep the first report of each uId. An identical copy (an archive beside its extracted folder)
    is dropped quietly; one with other content is a counted skip that names both files."""
    first = reports.setdefault(report.report_id, report)
    if first is not report and replace(report, source=first.source) != first:
        skips.add("conflicting_report", report.source,
                  f"uId {report.report_id} again, with other content than {first.source} (kept); "
                  "check which file is right and remove the other")


def _load_images(source: Path, out: Path) -> dict[tuple[str, str], Path]:
    archives = files_under(source, "*png*.tgz")
    if archives:
        from .download import safe_extract  # only needed for the NLM image archive

        for archive in archives:
            safe_extract(archive, out / "images")
    images = index_images(source)
    if archives:
        images.update({k: v for k, v in index_images(out / "images").items() if k not in images})
    return images


def _build_records(reports, images, projections, text_choice, dedeid, seed, skips):
    """Manifest rows (absolute image paths: the raw source and ``out`` are different folders)."""
    counts = {"reports_without_images": 0, "empty_sections": {s.lower(): 0 for s in SECTIONS}, "linked_images": set()}
    records = []
    for report in reports:
        for name in SECTIONS:
            counts["empty_sections"][name.lower()] += not report.sections[name]
        paths, views = _report_images(report, images, projections, skips)
        counts["linked_images"].update(paths)
        if not paths:
            counts["reports_without_images"] += 1
            continue
        findings = remove_deid(report.sections["FINDINGS"], dedeid)
        impression = remove_deid(report.sections["IMPRESSION"], dedeid)
        text = study_text(findings, impression, text_choice)
        if not usable_report_text(text, report.source, skips, unit=report.report_id):
            continue
        records.append({
            "study_id": report.report_id, "image_paths": [str(p.resolve()) for p in paths], "views": views,
            "findings": findings, "impression": impression, "text": text,
            "labels": chexpert_labels_from_mesh(report.mesh_major), "split": split_for(report.report_id, seed),
            "comparison": remove_deid(report.sections["COMPARISON"], dedeid),
            "indication": remove_deid(report.sections["INDICATION"], dedeid),
            "mesh_major": report.mesh_major, "mesh_automatic": report.mesh_automatic,
            "openi_labels": mesh_labels(report.mesh_major, OPENI8_RULES),
        })
    return records, counts


def _report_images(report, images, projections, skips) -> tuple[list[Path], list[str]]:
    paths, views = [], []
    ids = report.image_ids or [f"{report.report_id}_{im}" for (u, im) in images if u == report.report_id]
    for image_id in ids:
        path = link_image(image_id, images)
        if path is None:
            if images:  # a reports-only source (publishing the splits) lacks every image, by design
                skips.add("missing_image", image_id, f"report {report.source} lists it; no file matches",
                          unit=report.report_id)
            continue
        if path.stat().st_size == 0:
            skips.add("empty_image", path, "zero-byte file; copy or download it again", unit=report.report_id)
            continue
        paths.append(path)
        # Without the CSV the view stays "unknown" until drop_bad_images classifies the image.
        views.append("unknown" if projections is None else projections.get(image_key(path.name), "unknown"))
    return paths, views


def _summarise(counts, reports, images, records, had_projections, skips, out) -> dict:
    all_views = [v for r in records for v in r["views"]]
    return {
        "source": "openi", "reports": len(reports), "studies": len(records),
        "images": sum(len(r["image_paths"]) for r in records), "image_files_found": len(images),
        "frontal": all_views.count("frontal"), "lateral": all_views.count("lateral"),
        "unknown_view": all_views.count("unknown"),
        "views_from": "projections_csv" if had_projections else "image_heuristic",
        "reports_without_images": counts["reports_without_images"],
        "missing_images": skips.counts().get("missing_image", 0),
        "studies_missing_images": len({e["unit"] for e in skips.entries if e["kind"] == "missing_image"}),
        "images_without_reports": len(set(images.values()) - counts["linked_images"]),
        "empty_sections": counts["empty_sections"],
        "skipped": skips.failed_units(), "skips_by_kind": skips.counts(),
        "skip_list": str(skips.write(out / "skips.jsonl")),
    }


def _extra_features() -> dict:
    import datasets

    return {
        "comparison": datasets.Value("string"), "indication": datasets.Value("string"),
        "mesh_major": datasets.Sequence(datasets.Value("string")),
        "mesh_automatic": datasets.Sequence(datasets.Value("string")),
        "openi_labels": datasets.Features({n: datasets.Value("int8") for n in OPENI8_LABELS}),
    }


def publish_splits(reports: list[OpenIReport], folder: Path, seed: int = DEFAULT_SEED) -> dict:
    """Write ``openi_labels.csv``, ``openi_split.csv`` and ``openi_splits.json`` (seed, counts, sha256)."""
    label_rows = [["report_id", *(f"openi8:{n}" for n in OPENI8_LABELS), *(f"chexpert:{n}" for n in CHEXPERT_LABELS)]]
    split_rows = [["report_id", "split"]]
    for r in reports:
        openi8, chexpert = mesh_labels(r.mesh_major, OPENI8_RULES), chexpert_labels_from_mesh(r.mesh_major)
        cells = [*(openi8[n] for n in OPENI8_LABELS), *(chexpert[n] for n in CHEXPERT_LABELS)]
        label_rows.append([r.report_id, *("" if v is None else v for v in cells)])
        split_rows.append([r.report_id, split_for(r.report_id, seed)])
    files = {"openi_labels.csv": _csv_text(label_rows), "openi_split.csv": _csv_text(split_rows)}
    for name, text in files.items():
        atomic_write_text(folder / name, text)
    splits = [row[1] for row in split_rows[1:]]
    meta = {
        "seed": seed, "fractions": SPLIT_FRACTIONS, "reports": len(reports),
        "split_counts": {s: splits.count(s) for s in SPLIT_FRACTIONS},
        "label_rules": "joimternet_lite.data.openi.CHEXPERT_RULES / OPENI8_RULES",
        "sha256": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()},
    }
    atomic_write_text(folder / "openi_splits.json", json.dumps(meta, indent=2) + "\n")
    return meta


def _csv_text(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()
