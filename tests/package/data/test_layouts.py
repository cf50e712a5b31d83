"""Real-layout writers: OpenI XML/PNG/CSV and the MIMIC-CXR tree (JPG and DICOM), on a tiny SynthCXR."""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET

import numpy as np
import pydicom
import pytest
from PIL import Image

from joimternet_lite.data.schema import CHEXPERT_LABELS, load_manifest
from joimternet_lite.data.synthcxr import (
    generate_synthcxr,
    has_lateral,
    write_mimic_layout,
    write_openi_layout,
)

N = 10
# Element paths of the real NLM ecgen-radiology reports (derived by hand from eight real files):
# every report has all of REQUIRED; MeSH/automatic appears in some (not in "normal" reports).
OPENI_REQUIRED = {
    "eCitation", "eCitation/meta", "eCitation/uId", "eCitation/pmcId", "eCitation/docSource", "eCitation/IUXRId",
    "eCitation/licenseType", "eCitation/licenseURL", "eCitation/ccLicense", "eCitation/articleURL",
    "eCitation/articleDate", "eCitation/articleType", "eCitation/publisher", "eCitation/title", "eCitation/note",
    "eCitation/specialty", "eCitation/subset", "eCitation/MedlineCitation", "eCitation/MedlineCitation/Article",
    *(f"eCitation/MedlineCitation/Article/Journal{p}" for p in
      ("", "/JournalIssue", "/JournalIssue/PubDate", "/JournalIssue/PubDate/Year", "/JournalIssue/PubDate/Month",
       "/JournalIssue/PubDate/Day")),
    *(f"eCitation/MedlineCitation/Article/{p}" for p in
      ("ArticleTitle", "Abstract", "Abstract/AbstractText", "Affiliation", "AuthorList", "AuthorList/Author",
       "AuthorList/Author/LastName", "AuthorList/Author/ForeName", "AuthorList/Author/Initials", "Language",
       "PublicationTypeList", "PublicationTypeList/PublicationType", "ArticleDate", "ArticleDate/Year",
       "ArticleDate/Month", "ArticleDate/Day")),
    "eCitation/MedlineCitation/EssieArticleTitle", "eCitation/MedlineCitation/IMedAuthor",
    "eCitation/MeSH", "eCitation/MeSH/major", "eCitation/parentImage", "eCitation/parentImage/figureId",
    "eCitation/parentImage/caption", "eCitation/parentImage/panel", "eCitation/parentImage/panel/url",
    "eCitation/parentImage/panel/imgModality", "eCitation/parentImage/panel/region",
    "eCitation/parentImage/panel/region/globalImageFeatures",
    *(f"eCitation/parentImage/panel/region/globalImageFeatures/{t}" for t in
      ("CEDD", "ColorLayout", "EdgeHistogram", "FCTH", "SemanticContext60")),
}
OPENI_OPTIONAL = {"eCitation/MeSH/automatic"}
MIMIC_STUDY_DIR = re.compile(r"files/p(\d{2})/p(\d{8})/s(\d{8})$")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_synthcxr(root, num_studies=N, image_size=128, seed=2, workers=1, progress=False)
    return root


def _paths(element, prefix=""):
    path = f"{prefix}/{element.tag}" if prefix else element.tag
    yield path
    for child in element:
        yield from _paths(child, path)


def _read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_openi_xml_has_the_real_structure_and_links_its_images(synth, tmp_path):
    counts = write_openi_layout(synth, tmp_path, nlm_png=True)
    records = {int(r["study_id"].split("-")[1]) + 1: r for r in load_manifest(synth)}
    xmls = sorted((tmp_path / "ecgen-radiology").glob("*.xml"))
    assert len(xmls) == counts["reports"] == N
    n_images = 0
    for path in xmls:
        assert path.read_text().startswith('<?xml version="1.0" encoding="utf-8"?>')
        root = ET.parse(path).getroot()
        paths = set(_paths(root))
        assert OPENI_REQUIRED <= paths <= OPENI_REQUIRED | OPENI_OPTIONAL
        uid = int(path.stem)
        record = records[uid]
        assert root.find("uId").get("id") == f"CXR{uid}"
        sections = {e.get("Label"): e.text for e in root.iter("AbstractText")}
        assert list(sections) == ["COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION"]
        assert sections["FINDINGS"] == record["findings"] and sections["IMPRESSION"] == record["impression"]
        major = [e.text for e in root.iter("major")]
        assert (major == ["normal"]) == (record["labels"]["No Finding"] == 1 and not record["findings_gt"])
        ids = [e.get("id") for e in root.iter("parentImage")]
        assert len(ids) == 1 + has_lateral(record["study_id"])
        for image_id in ids:
            assert re.fullmatch(rf"CXR{uid}_IM-\d{{4}}-\d{{4}}", image_id)
            kaggle = tmp_path / "images_normalized" / f"{image_id[3:]}.dcm.png"
            nlm = tmp_path / "NLMCXR_png" / f"{image_id}.png"
            assert Image.open(kaggle).mode == "L" and kaggle.read_bytes() == nlm.read_bytes()
            n_images += 1
    frontal = np.asarray(Image.open(tmp_path / "images_normalized" / f"{ids[0][3:]}.dcm.png"))
    assert np.array_equal(frontal, np.asarray(Image.open(synth / records[int(xmls[-1].stem)]["image_paths"][0])))
    header, rows = _read_csv(tmp_path / "indiana_projections.csv")
    assert header == ["uid", "filename", "projection"] and len(rows) == n_images
    assert {r["projection"] for r in rows} == {"Frontal", "Lateral"}
    header, rows = _read_csv(tmp_path / "indiana_reports.csv")
    assert header == ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"]
    assert len(rows) == N


@pytest.mark.parametrize("image_format", ["jpg", "dcm"])
def test_mimic_tree_csvs_and_images_follow_the_real_format(synth, tmp_path, image_format):
    write_mimic_layout(synth, tmp_path, image_format=image_format)
    study_dirs = sorted(p for p in (tmp_path / "files").glob("p*/p*/s*") if p.is_dir())
    assert len(study_dirs) == N
    for d in study_dirs:
        m = MIMIC_STUDY_DIR.search(d.relative_to(tmp_path).as_posix())
        assert m and m.group(2).startswith(m.group(1))
        report = d.with_suffix(".txt").read_text()
        assert report.lstrip().startswith("FINAL REPORT")
        for section in ("EXAMINATION:", "INDICATION:", "FINDINGS:", "IMPRESSION:"):
            assert f" {section}" in report
        assert "___" in report
    header, meta = _read_csv(tmp_path / "mimic-cxr-2.0.0-metadata.csv")
    assert header == ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                      "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                      "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]
    assert {r["ViewPosition"] for r in meta} == {"PA", "LATERAL"}
    header, splits = _read_csv(tmp_path / "mimic-cxr-2.0.0-split.csv")
    assert header == ["dicom_id", "study_id", "subject_id", "split"]
    assert {r["split"] for r in splits} <= {"train", "validate", "test"} and len(splits) == len(meta)
    header, chexpert = _read_csv(tmp_path / "mimic-cxr-2.0.0-chexpert.csv")
    assert header == ["subject_id", "study_id", *CHEXPERT_LABELS] and len(chexpert) == N
    assert {v for r in chexpert for k, v in r.items() if k in CHEXPERT_LABELS} <= {"", "1.0", "0.0", "-1.0"}
    for row in meta:
        path = tmp_path / "files" / f"p{row['subject_id'][:2]}" / f"p{row['subject_id']}" / f"s{row['study_id']}" / f"{row['dicom_id']}.{image_format}"
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}", row["dicom_id"])
        if image_format == "dcm":
            ds = pydicom.dcmread(path)
            assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 16
            assert ds.ViewPosition == row["ViewPosition"]
            assert ds.pixel_array.shape == (int(row["Rows"]), int(row["Columns"])) and ds.pixel_array.max() <= 4095
        else:
            assert Image.open(path).size == (int(row["Columns"]), int(row["Rows"]))


def test_mimic_labels_match_the_manifest(synth, tmp_path):
    write_mimic_layout(synth, tmp_path, image_format="jpg")
    _, chexpert = _read_csv(tmp_path / "mimic-cxr-2.0.0-chexpert.csv")
    manifest = list(load_manifest(synth))
    for row, record in zip(chexpert, manifest, strict=True):
        expected = {k: "" if v is None else f"{float(v):.1f}" for k, v in record["labels"].items()}
        assert {k: row[k] for k in CHEXPERT_LABELS} == expected
        report = (tmp_path / "files" / f"p{row['subject_id'][:2]}" / f"p{row['subject_id']}" / f"s{row['study_id']}.txt").read_text()
        assert " ".join(record["findings"].split()) in " ".join(report.split())


def test_mimic_rejects_unknown_format(synth, tmp_path):
    with pytest.raises(ValueError, match="jpg"):
        write_mimic_layout(synth, tmp_path, image_format="png")
