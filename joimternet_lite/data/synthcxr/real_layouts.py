"""Write SynthCXR in the real on-disk layouts of OpenI and MIMIC-CXR: fixtures for the real-data parsers.

Taught in notebook 12. The real-data parsers (``openi.py``, ``mimic.py``) are tested on these
trees, so the files follow the published formats exactly:

- OpenI (NLMCXR): ``ecgen-radiology/<uid>.xml`` in the NLM ``eCitation`` schema (MeSH major and
  automatic terms derived from the labels, one ``parentImage id="CXR<uid>_IM-xxxx-yyyy"`` per
  film), the Kaggle "images_normalized" PNGs ``images_normalized/<uid>_IM-xxxx-yyyy.dcm.png``,
  optionally the NLM PNG names ``NLMCXR_png/CXR<uid>_IM-xxxx-yyyy.png``, and the Kaggle
  ``indiana_reports.csv`` and ``indiana_projections.csv``;
- MIMIC-CXR(-JPG): ``files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg`` (or ``.dcm``: 16-bit words,
  12 bits stored, MONOCHROME2, with ``ViewPosition``), the free-text report
  ``files/pXX/pXXXXXXXX/sXXXXXXXX.txt``, and ``mimic-cxr-2.0.0-metadata.csv``,
  ``mimic-cxr-2.0.0-split.csv`` and ``mimic-cxr-2.0.0-chexpert.csv``.

About 30 % of studies (:func:`.lateral.has_lateral`) get an extra lateral film so view filtering
is exercised. Identifiers are derived from the study's index, so the trees are deterministic.
Decision: one MIMIC subject per study (real subjects have several studies; the parsers must not
assume either).
"""

from __future__ import annotations

import csv
import hashlib
import io
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from ...atomic import atomic_path, atomic_write_bytes, atomic_write_text
from ..schema import CHEXPERT_LABELS, load_manifest, resolve_image_path
from .lateral import has_lateral, render_lateral

MIMIC_METADATA_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
    "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
MIMIC_SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
MIMIC_CHEXPERT_COLUMNS = ("subject_id", "study_id", *CHEXPERT_LABELS)
OPENI_REPORT_COLUMNS = ("uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression")
OPENI_PROJECTION_COLUMNS = ("uid", "filename", "projection")

# MeSH major headings as the NLM indexers write them (Term/qualifier/...), per finding type.
_MESH = {
    "effusion": "Pleural Effusion/{side}/{size}", "pneumothorax": "Pneumothorax/{side}/{size}",
    "consolidation": "{term}/lung/{zone}", "nodule": "Nodule/lung/{side}", "mass": "Mass/lung/{side}",
    "atelectasis": "Pulmonary Atelectasis/base/{side}", "edema": "Pulmonary Edema/bilateral",
    "cardiomegaly": "Cardiomegaly/{size}", "enlarged_cardiomediastinum": "Mediastinum/enlarged",
    "endotracheal_tube": "Tube, Inserted", "enteric_tube": "Tube, Inserted",
    "central_line": "Catheters, Indwelling/right", "pacemaker": "Implanted Medical Device/left",
}
_CONSOLIDATION_TERM = {"Consolidation": "Consolidation", "Pneumonia": "Pneumonia", "Lung Opacity": "Opacity"}
_OPENI_CAPTIONS = ("PA and lateral chest radiograph (2 views) (2 images) ", "Xray Chest PA and Lateral",
                   "Chest, 2 views, frontal and lateral", "PA and lateral chest x-XXXX XXXX. ")
_OPENI_INDICATIONS = ("XXXX-year-old male with chest pain.", "Dyspnea.", "Cough and fever.",
                      "XXXX year old female, shortness of breath", "Preop evaluation.")
_MIMIC_INDICATIONS = ("___M with shortness of breath, evaluate for pneumonia.", "___F with cough and fever.",
                      "History: ___F with chest pain", "___M s/p line placement, assess position.")


def _study_index(study_id: str) -> int:
    return int(study_id.rsplit("-", 1)[1])


def _stable_int(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % modulo


def _films(record: dict, root: Path) -> list[tuple[str, np.ndarray]]:
    """(view, uint8 image) for the study's frontal film, plus a lateral one for some studies."""
    frontal = np.asarray(Image.open(resolve_image_path(root, record["image_paths"][0])).convert("L"))
    films = [("frontal", frontal)]
    if has_lateral(record["study_id"]):
        films.append(("lateral", render_lateral(_study_index(record["study_id"]), 0, frontal.shape[0])))
    return films


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _write_csv(path: Path, columns, rows) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------
# OpenI


def mesh_terms(record: dict) -> tuple[list[str], list[str]]:
    """(major, automatic) MeSH terms for a record: ``normal`` for normal studies, else one major
    heading per positive finding and its head word as an automatic term, as the NLM indexers do."""
    major, automatic = [], []
    for gt in record.get("findings_gt") or []:
        if gt["certainty"] != 1:
            continue
        size = _size_word(record["text"], gt)
        term = _MESH[gt["type"]].format(side=gt["side"], size=size, zone=_zone_words(gt),
                                        term=_CONSOLIDATION_TERM.get(gt["label"], "Opacity"))
        major.append(term.replace("//", "/").rstrip("/"))
        head = record["text"][gt["head_span"][0]:gt["head_span"][1]].lower()
        if head not in automatic:
            automatic.append(head)
    if not major:
        major = ["normal"] if record["labels"].get("No Finding") == 1 else ["No Indexing"]
    return major, automatic


def _size_word(text: str, gt: dict) -> str:
    phrase = text[gt["phrase_span"][0]:gt["phrase_span"][1]].lower().split()
    return next((w for w in phrase if w in ("small", "moderate", "large", "mild", "severe")), "")


def _zone_words(gt: dict) -> str:
    zone = gt["zone"] or ""
    if zone == "lingula":
        return "lingula"
    side, _, lobe = zone.partition(" ")
    return f"{lobe}/{side}"


def _openi_image_ids(record: dict, n_films: int) -> list[str]:
    """``IM-<series>-<number>`` per film, the image id pattern of the real OpenI files."""
    series = _stable_int(record["study_id"], 9000) + 1000
    return [f"IM-{series:04d}-{(k + 1) * 1000 + 1}" for k in range(n_films)]


def openi_report_xml(record: dict, uid: int, image_ids: list[str]) -> bytes:
    """The NLM ecgen-radiology XML of one report (element structure of the real files)."""
    root = ET.Element("eCitation")
    ET.SubElement(root, "meta", type="rr")
    ET.SubElement(root, "uId", id=f"CXR{uid}")
    ET.SubElement(root, "pmcId", id=str(uid))
    for tag, text in (("docSource", "CXR"),):
        ET.SubElement(root, tag).text = text
    ET.SubElement(root, "IUXRId", id=str(uid))
    for tag, text in (("licenseType", "open-access"), ("licenseURL", "http://creativecommons.org/licenses/by-nc-nd/4.0/"),
                      ("ccLicense", "byncnd"), ("articleURL", None), ("articleDate", "2013-08-01"),
                      ("articleType", "XR"), ("publisher", "Indiana University"),
                      ("title", "Indiana University Chest X-ray Collection"),
                      ("note", "The data are drawn from multiple hospital systems."),
                      ("specialty", "pulmonary diseases"), ("subset", "CXR")):
        ET.SubElement(root, tag).text = text
    citation = ET.SubElement(root, "MedlineCitation", Owner="Indiana University", Status="supplied by publisher")
    article = ET.SubElement(citation, "Article", PubModel="Electronic")
    _date(ET.SubElement(ET.SubElement(ET.SubElement(article, "Journal"), "JournalIssue"), "PubDate"))
    ET.SubElement(article, "ArticleTitle").text = "Indiana University Chest X-ray Collection"
    abstract = ET.SubElement(article, "Abstract")
    sections = (("COMPARISON", "None."), ("INDICATION", _pick(_OPENI_INDICATIONS, record)),
                ("FINDINGS", record["findings"]), ("IMPRESSION", record["impression"]))
    for label, text in sections:
        ET.SubElement(abstract, "AbstractText", Label=label).text = text or None
    ET.SubElement(article, "Affiliation").text = "Indiana University"
    authors = ET.SubElement(article, "AuthorList", CompleteYN="Y")
    author = ET.SubElement(authors, "Author", ValidYN="Y")
    for tag, text in (("LastName", "Synth"), ("ForeName", "Cxr"), ("Initials", "S")):
        ET.SubElement(author, tag).text = text
    ET.SubElement(article, "Language").text = "eng"
    ET.SubElement(ET.SubElement(article, "PublicationTypeList"), "PublicationType").text = "Radiology Report"
    _date(ET.SubElement(article, "ArticleDate"))
    ET.SubElement(citation, "EssieArticleTitle").text = "Indiana University Chest X-ray Collection"
    ET.SubElement(citation, "IMedAuthor").text = "Cxr Synth S"
    mesh = ET.SubElement(root, "MeSH")
    major, automatic = mesh_terms(record)
    for term in major:
        ET.SubElement(mesh, "major").text = term
    for term in automatic:
        ET.SubElement(mesh, "automatic").text = term
    caption = _pick(_OPENI_CAPTIONS, record)
    for k, image_id in enumerate(image_ids, 1):
        parent = ET.SubElement(root, "parentImage", id=f"CXR{uid}_{image_id}")
        ET.SubElement(parent, "figureId").text = f"F{k}"
        ET.SubElement(parent, "caption").text = caption
        panel = ET.SubElement(parent, "panel", type="single")
        ET.SubElement(panel, "url").text = f"/hadoop/storage/radiology/extract/CXR{uid}_{image_id}.jpg"
        ET.SubElement(panel, "imgModality").text = "7"
        features = ET.SubElement(ET.SubElement(panel, "region", type="panel"), "globalImageFeatures")
        for tag, prefix in (("CEDD", "f2p0k"), ("ColorLayout", "f1p0k"), ("EdgeHistogram", "f0p0k"),
                            ("FCTH", "f4p0k"), ("SemanticContext60", "f3p0k")):
            ET.SubElement(features, tag).text = f"{prefix}{_stable_int(image_id + tag, 2000)}"
    ET.indent(root, space="   ")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _date(parent: ET.Element) -> None:
    for tag, text in (("Year", "2013"), ("Month", "08"), ("Day", "01")):
        ET.SubElement(parent, tag).text = text


def _pick(options: tuple[str, ...], record: dict) -> str:
    return options[_stable_int(record["study_id"] + "|" + options[0], len(options))]


def write_openi_layout(manifest_root: str | Path, out_dir: str | Path, nlm_png: bool = False) -> dict:
    """Write the manifest under ``manifest_root`` as an OpenI tree in ``out_dir``; returns counts.

    ``uid`` = study index + 1. Reports: ``ecgen-radiology/<uid>.xml`` and ``indiana_reports.csv``;
    images: ``images_normalized/<uid>_IM-xxxx-yyyy.dcm.png`` (+ ``NLMCXR_png/CXR<uid>_IM-xxxx-yyyy.png``
    when ``nlm_png``) and ``indiana_projections.csv`` (projection ``Frontal`` / ``Lateral``).
    """
    root, out = Path(manifest_root), Path(out_dir)
    reports, projections, n_images = [], [], 0
    for record in load_manifest(root):
        uid = _study_index(record["study_id"]) + 1
        films = _films(record, root)
        image_ids = _openi_image_ids(record, len(films))
        atomic_write_bytes(out / "ecgen-radiology" / f"{uid}.xml", openi_report_xml(record, uid, image_ids))
        for (view, image), image_id in zip(films, image_ids, strict=True):
            data = _png_bytes(image)
            atomic_write_bytes(out / "images_normalized" / f"{uid}_{image_id}.dcm.png", data)
            if nlm_png:
                atomic_write_bytes(out / "NLMCXR_png" / f"CXR{uid}_{image_id}.png", data)
            projections.append({"uid": uid, "filename": f"{uid}_{image_id}.dcm.png", "projection": view.capitalize()})
            n_images += 1
        major, _ = mesh_terms(record)
        reports.append({"uid": uid, "MeSH": ";".join(major),
                        "Problems": ";".join(dict.fromkeys(t.split("/")[0] for t in major)),
                        "image": _pick(_OPENI_CAPTIONS, record), "indication": _pick(_OPENI_INDICATIONS, record),
                        "comparison": "None.", "findings": record["findings"], "impression": record["impression"]})
    _write_csv(out / "indiana_reports.csv", OPENI_REPORT_COLUMNS, reports)
    _write_csv(out / "indiana_projections.csv", OPENI_PROJECTION_COLUMNS, projections)
    return {"reports": len(reports), "images": n_images}


# ----------------------------------------------------------------------------------------------
# MIMIC-CXR


def mimic_ids(record: dict) -> tuple[int, int]:
    """(subject_id, study_id) for a SynthCXR record: 8-digit numbers in the MIMIC ranges."""
    index = _study_index(record["study_id"])
    # Multiplication by a number coprime to the modulus is a bijection: no two studies collide.
    return 10_000_000 + index * 37 % 9_000_000, 50_000_000 + index * 7919 % 9_999_991


def _dicom_id(study_id: int, k: int) -> str:
    h = hashlib.sha256(f"{study_id}/{k}".encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


def mimic_report(record: dict) -> str:
    """A report in the MIMIC-CXR free-text style (de-identified fields as ``___``)."""
    wrap = lambda text: "\n".join(textwrap.wrap(text, 76, initial_indent=" ", subsequent_indent=" "))  # noqa: E731
    return (
        "                                 FINAL REPORT\n"
        " EXAMINATION:  CHEST (PA AND LAT)\n \n"
        f" INDICATION:  {_pick(_MIMIC_INDICATIONS, record)}\n \n"
        " TECHNIQUE:  Chest PA and lateral\n \n"
        " COMPARISON:  ___\n \n"
        f" FINDINGS: \n \n{wrap(record['findings'])}\n \n"
        f" IMPRESSION: \n \n{wrap(record['impression'])}\n"
    )


def _dicom_bytes(image: np.ndarray, view: str, subject_id: int, study_id: int, dicom_id: str) -> bytes:
    """A DX DICOM file: 16-bit words, 12 bits stored, MONOCHROME2, explicit VR little endian."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[dicom_id])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[str(study_id)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[dicom_id, "series"])
    ds.Modality, ds.PatientID, ds.StudyID = "DX", str(subject_id), str(study_id)[:16]
    ds.ViewPosition = "PA" if view == "frontal" else "LATERAL"
    ds.PatientOrientation = ["L", "F"] if view == "frontal" else ["A", "F"]
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (image.astype(np.uint16) * 4095 // 255).astype("<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _jpg_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_mimic_layout(manifest_root: str | Path, out_dir: str | Path, image_format: str = "jpg") -> dict:
    """Write the manifest under ``manifest_root`` as a MIMIC-CXR tree in ``out_dir``; returns counts."""
    if image_format not in ("jpg", "dcm"):
        raise ValueError(f"image_format={image_format!r}: use 'jpg' (MIMIC-CXR-JPG) or 'dcm' (MIMIC-CXR DICOM)")
    root, out = Path(manifest_root), Path(out_dir)
    metadata, split_rows, chexpert, n_images = [], [], [], 0
    for record in load_manifest(root):
        subject_id, study_id = mimic_ids(record)
        study_dir = out / "files" / f"p{str(subject_id)[:2]}" / f"p{subject_id}" / f"s{study_id}"
        atomic_write_text(study_dir.with_suffix(".txt"), mimic_report(record))
        for k, (view, image) in enumerate(_films(record, root)):
            dicom_id = _dicom_id(study_id, k)
            data = (_jpg_bytes(image) if image_format == "jpg"
                    else _dicom_bytes(image, view, subject_id, study_id, dicom_id))
            with atomic_path(study_dir / f"{dicom_id}.{image_format}") as tmp:
                tmp.write_bytes(data)
            frontal = view == "frontal"
            metadata.append({
                "dicom_id": dicom_id, "subject_id": subject_id, "study_id": study_id,
                "PerformedProcedureStepDescription": "CHEST (PA AND LAT)", "ViewPosition": "PA" if frontal else "LATERAL",
                "Rows": image.shape[0], "Columns": image.shape[1],
                "StudyDate": 21800101 + _stable_int(record["study_id"], 28), "StudyTime": f"{100000 + k}.000",
                "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
                "ViewCodeSequence_CodeMeaning": "postero-anterior" if frontal else "lateral",
                "PatientOrientationCodeSequence_CodeMeaning": "Erect",
            })
            split_rows.append({"dicom_id": dicom_id, "study_id": study_id, "subject_id": subject_id,
                               "split": record["split"]})
            n_images += 1
        chexpert.append({"subject_id": subject_id, "study_id": study_id,
                         **{name: "" if v is None else f"{float(v):.1f}" for name, v in record["labels"].items()}})
    _write_csv(out / "mimic-cxr-2.0.0-metadata.csv", MIMIC_METADATA_COLUMNS, metadata)
    _write_csv(out / "mimic-cxr-2.0.0-split.csv", MIMIC_SPLIT_COLUMNS, split_rows)
    _write_csv(out / "mimic-cxr-2.0.0-chexpert.csv", MIMIC_CHEXPERT_COLUMNS, chexpert)
    return {"studies": len(chexpert), "images": n_images}
