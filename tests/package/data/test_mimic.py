"""MIMIC-CXR(-JPG) layouts: sectioning, views, labels with the uncertain policy, splits (notebook 12)."""

import gzip
import json

import numpy as np
import pytest
from dicom_files import RAMP, make_ds, save
from PIL import Image
from test_openi import tree_digest

from joimternet_lite.cli import main as cli_main
from joimternet_lite.data import mimic
from joimternet_lite.data.errors import SourceError
from joimternet_lite.data.mimic import paper_split, parse_report, prepare_mimic
from joimternet_lite.data.mimic_sections import normalise_section_name
from joimternet_lite.data.schema import load_manifest
from joimternet_lite.data.skips import SkipLog, TooManySkipsError

REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough.

 FINDINGS:
 Mild cardiomegaly.  No ___ effusion.

 IMPRESSION:
 Cardiomegaly.
"""
LABEL_HEADER = "subject_id,study_id," + ",".join(mimic.CHEXPERT_LABELS) + ",Extra Column\n"


def study_dir(root, subject, study):
    d = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def mimic_tree(tmp_path):
    """Six studies: JPG (PA+LAT), DICOM (AP, view from the header), no headers, empty, non-UTF-8, no images."""
    root = tmp_path / "physionet"
    img = np.full((40, 30), 128, np.uint8)
    d = study_dir(root, "10000001", "50000001")
    Image.fromarray(img).save(d / "aaa.jpg")
    Image.fromarray(img).save(d / "bbb.jpg")
    (d.parent / "s50000001.txt").write_text(REPORT)
    d = study_dir(root, "10000002", "50000002")
    save(make_ds(RAMP, bits_stored=10, ViewPosition="AP"), d / "ccc.dcm")
    (d.parent / "s50000002.txt").write_text("WET READ: ___ no change.\n\nStable chest, no ___ acute process.\n")
    d = study_dir(root, "10000003", "50000003")
    Image.fromarray(img).save(d / "ddd.jpg")
    (d.parent / "s50000003.txt").write_text("   \n")
    d = study_dir(root, "10000004", "50000004")
    Image.fromarray(img).save(d / "eee.jpg")
    (d.parent / "s50000004.txt").write_bytes("FINDINGS: caf\u00e9 ".encode("latin-1"))
    study_dir(root, "10000005", "50000005").parent.joinpath("s50000005.txt").write_text(REPORT)
    d = study_dir(root, "10000006", "50000006")
    Image.fromarray(img).save(d / "fff.jpg")
    (d.parent / "s50000006.txt").write_text("FINDINGS: " + "word " * 10000)
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text(
        "dicom_id,subject_id,study_id,ViewPosition\naaa,10000001,50000001,PA\nbbb,10000001,50000001,LATERAL\n")
    with gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "wt") as f:
        f.write("dicom_id,study_id,subject_id,split\n" + "".join(
            f"x{i},5000000{i},1000000{i},{'test' if i == 2 else 'train'}\n" for i in range(1, 7)))
    blank = "," * (len(mimic.CHEXPERT_LABELS) - 1)
    cells = ["-1.0" if n == "Edema" else "1.0" if n == "Cardiomegaly" else "" for n in mimic.CHEXPERT_LABELS]
    (root / "mimic-cxr-2.0.0-chexpert.csv").write_text(
        LABEL_HEADER + "10000001,50000001," + ",".join(cells) + ",zzz\n"
        + "10000002,50000002," + blank + ",\n" + "10000003,50000003,yes" + blank + ",\n")
    return root


def test_sectioning_and_deid():
    parsed = parse_report(REPORT)
    assert parsed == {"findings": "Mild cardiomegaly. No effusion.", "impression": "Cardiomegaly.",
                      "text": "Mild cardiomegaly. No effusion. Cardiomegaly."}
    assert parse_report(REPORT, "keep")["findings"] == "Mild cardiomegaly. No ___ effusion."
    fallback = parse_report("Line one.\n\nThe last paragraph ___ here.\n")
    assert fallback["findings"] == "" and fallback["text"] == "The last paragraph here."
    assert parse_report("just one line")["text"] == "just one line"


def test_views_from_positions():
    assert [mimic.view_from_position(p) for p in ("PA", "ap", "LATERAL", "", None)] == \
        ["frontal", "frontal", "lateral", "unknown", "unknown"]


def test_label_csv_blanks_uncertain_unknown_columns_and_bad_values(mimic_tree):
    path = mimic_tree / "mimic-cxr-2.0.0-chexpert.csv"
    for policy, edema in (("keep", -1), ("zeros", 0), ("ones", 1)):
        skips = SkipLog()
        labels, ignored = mimic.read_chexpert_csv(path, policy, skips)
        assert labels["s50000001"]["Edema"] == edema and labels["s50000001"]["Cardiomegaly"] == 1
        assert labels["s50000001"]["Pneumonia"] is None and set(labels["s50000002"].values()) == {None}
        assert ignored == ["Extra Column"] and skips.counts() == {"bad_label_row": 1}
    (mimic_tree / "bad.csv").write_text("study_id,Atelectasis\n1,1\n")
    with pytest.raises(SourceError, match=r"bad.csv: column\(s\) \['Cardiomegaly', .*missing"):
        mimic.read_chexpert_csv(mimic_tree / "bad.csv", "keep", SkipLog())


def test_prepare_official_split(mimic_tree, tmp_path):
    before = tree_digest(mimic_tree)
    summary = prepare_mimic(mimic_tree, tmp_path / "out", uncertain="keep", max_skip_fraction=0.7)
    assert tree_digest(mimic_tree) == before
    assert summary["skips_by_kind"] == {"bad_label_row": 1, "empty_report": 1, "non_utf8_report": 1,
                                        "overlong_report": 1}
    assert summary["reports_without_images"] == 1 and summary["studies"] == 2
    rows = {r["study_id"]: r for r in load_manifest(tmp_path / "out")}
    assert rows["s50000001"]["views"] == ["frontal", "lateral"] and rows["s50000001"]["labels"]["Edema"] == -1
    assert rows["s50000002"]["views"] == ["frontal"]  # DICOM header ViewPosition AP
    assert rows["s50000002"]["text"] == "Stable chest, no acute process."
    assert (rows["s50000001"]["split"], rows["s50000002"]["split"]) == ("train", "test")


def test_skip_threshold_fails(mimic_tree, tmp_path):
    with pytest.raises(TooManySkipsError, match="skipped 4 of 6 studies"):
        prepare_mimic(mimic_tree, tmp_path / "out", max_skip_fraction=0.1)


def test_paper_split_carves_from_train_and_validate_only():
    ids = [f"s{i}" for i in range(6000)]
    official = {s: ("test" if i < 500 else "validate" if i < 700 else "train") for i, s in enumerate(ids)}
    split = paper_split(ids, official, seed=42)
    assert len(split) == 5500 and not any(official[s] == "test" for s in split)
    assert sum(v == "validate" for v in split.values()) == 2000 and sum(v == "test" for v in split.values()) == 3000
    assert split == paper_split(list(reversed(ids)), official, seed=42)
    assert split != paper_split(ids, official, seed=0)


def test_paper_split_is_published_with_checksum(mimic_tree, tmp_path):
    summary = prepare_mimic(mimic_tree, tmp_path / "out", split="paper", max_skip_fraction=0.7)
    assert summary["left_out_by_split"] == 1  # the official test study
    info = summary["paper_split_file"]
    import hashlib
    assert hashlib.sha256(open(info["path"], "rb").read()).hexdigest() == info["sha256"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["split"] == "paper"


def test_missing_source_prints_physionet_steps(tmp_path):
    with pytest.raises(mimic.MimicError, match="(?s)not found.*PhysioNet account"):
        prepare_mimic(tmp_path / "nowhere", tmp_path / "out")


def test_synthcxr_in_mimic_layout_prepares(tmp_path):
    layouts = pytest.importorskip("joimternet_lite.data.synthcxr")
    from joimternet_lite.data.synthcxr import generate_synthcxr

    generate_synthcxr(tmp_path / "syn", num_studies=8, image_size=128, workers=1, progress=False)
    written = layouts.write_mimic_layout(tmp_path / "syn", tmp_path / "raw")
    summary = prepare_mimic(tmp_path / "raw", tmp_path / "out")
    assert (summary["studies"], summary["images"], summary["skipped"]) == (8, written["images"], 0)
    assert summary["frontal"] == 8


def test_truncated_csv_gz_names_file_and_fix(mimic_tree, tmp_path):
    split = mimic_tree / "mimic-cxr-2.0.0-split.csv.gz"
    with gzip.open(split, "wt") as f:
        f.write("dicom_id,study_id,subject_id,split\n" + "x,50000001,10000001,train\n" * 2000)
    split.write_bytes(split.read_bytes()[:-20])
    with pytest.raises(SourceError, match=r"split\.csv\.gz: .*truncated or damaged.*Download it again"):
        prepare_mimic(mimic_tree, tmp_path / "out", max_skip_fraction=0.7)


@pytest.mark.parametrize("name, header, column", [
    ("split", "dicom_id,study_id,subject_id,fold", "split"),
    ("metadata", "dicom_id,subject_id,study_id,Rows", "ViewPosition"),
])
def test_csv_without_needed_column_names_file_and_fix(mimic_tree, tmp_path, name, header, column):
    for old in mimic_tree.glob(f"*-{name}.csv*"):
        old.unlink()
    (mimic_tree / f"mimic-cxr-2.0.0-{name}.csv").write_text(header + "\naaa,50000001,10000001,train\n")
    with pytest.raises(SourceError, match=rf"{name}\.csv: column\(s\) \['{column}'\] missing.*Download"):
        prepare_mimic(mimic_tree, tmp_path / "out", max_skip_fraction=0.7)


@pytest.mark.parametrize("name, flag, option", [
    ("chexpert", "allow_missing_labels", "--allow-missing-labels"),
    ("metadata", "allow_missing_metadata", "--allow-missing-metadata"),
])
def test_missing_label_or_metadata_csv_is_an_error_unless_allowed(mimic_tree, tmp_path, caplog, name, flag, option):
    (mimic_tree / f"mimic-cxr-2.0.0-{name}.csv").unlink()
    with pytest.raises(mimic.MimicError, match=rf"mimic-cxr-2.0.0-{name}\.csv.* not found.*{option}"):
        prepare_mimic(mimic_tree, tmp_path / "out", max_skip_fraction=0.7)
    assert cli_main(["prepare", "mimic-cxr", "--source", str(mimic_tree), "--out", str(tmp_path / "cli"),
                         "--max-skip-fraction", "0.7"]) != 0
    summary = prepare_mimic(mimic_tree, tmp_path / "out", max_skip_fraction=0.7, **{flag: True})
    rows = {r["study_id"]: r for r in load_manifest(tmp_path / "out")}
    if name == "chexpert":  # every label blank: counted and warned about
        assert summary["labels_from"] is None and summary["studies_without_labels"] == 2
        assert set(rows["s50000001"]["labels"].values()) == {None}
    else:  # the JPGs lose their views; the DICOM keeps the one in its header
        assert rows["s50000001"]["views"] == ["unknown", "unknown"] and rows["s50000002"]["views"] == ["frontal"]
        assert summary["views_from"] == "dicom_headers_only" and summary["unknown_view"] == 2
    assert option in caplog.text


def test_studies_missing_from_the_label_csv_are_counted(mimic_tree, tmp_path):
    path = mimic_tree / "mimic-cxr-2.0.0-chexpert.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")  # header + study 50000001 only
    summary = prepare_mimic(mimic_tree, tmp_path / "out", max_skip_fraction=0.7)
    assert summary["studies_without_labels"] == 1  # s50000002


# Every entry of the frequent-section table of the official MIMIC-CXR section parser (MIT-LCP
# mimic-cxr, txt/section_parser.py), written out here as the independent truth: header -> section.
OFFICIAL_SECTION_TABLE = {
    "preamble": "preamble", "impression": "impression", "comparison": "comparison", "indication": "indication",
    "findings": "findings", "examination": "examination", "technique": "technique", "history": "history",
    "comparisons": "comparison", "clinical history": "history", "reason for examination": "indication",
    "notification": "notification", "reason for exam": "indication", "clinical information": "history",
    "exam": "examination", "clinical indication": "indication", "conclusion": "impression",
    "chest, two views": "findings", "recommendation(s)": "recommendations", "type of examination": "examination",
    "reference exam": "comparison", "patient history": "history", "addendum": "addendum",
    "comparison exam": "comparison", "date": "date", "comment": "comment", "findings and impression": "impression",
    "wet read": "wet read", "comparison film": "comparison", "recommendations": "recommendations",
    "findings/impression": "impression", "pfi": "history", "recommendation": "recommendations",
    "wetread": "wet read", "ndication": "impression", "impresson": "impression", "imprression": "impression",
    "imoression": "impression", "impressoin": "impression", "imprssion": "impression", "impresion": "impression",
    "imperssion": "impression", "mpression": "impression", "impession": "impression",
    "findings/ impression": "impression", "finding": "findings", "findins": "findings", "findindgs": "findings",
    "findgings": "findings", "findngs": "findings", "findnings": "findings", "finidngs": "findings",
    "idication": "indication", "reference findings": "findings", "comparision": "comparison",
    "comparsion": "comparison", "comparrison": "comparison", "comparisions": "comparison",
}


@pytest.mark.parametrize("header, section", sorted(OFFICIAL_SECTION_TABLE.items()))
def test_every_official_section_name_is_normalised_and_its_body_kept(header, section):
    assert normalise_section_name(header.upper()) == section
    report = f"                                 FINAL REPORT\n INDICATION:  Cough.\n\n {header.upper()}:  Zeta eta theta.\n"
    parsed = parse_report(report)
    for field in ("findings", "impression"):
        assert ("Zeta eta theta." in parsed[field]) == (section == field)
    if section in ("findings", "impression"):
        assert "Zeta eta theta." in parsed["text"]


@pytest.mark.parametrize("header, section", [
    ("FINDINGS (PA AND LATERAL)", "findings"), ("HISTORY OF PRESENT ILLNESS", "history"),
    ("PA AND LATERAL VIEWS OF THE CHEST", "findings"), ("PORTABLE SEMI-UPRIGHT", "findings"),
    ("FINAL ADDENDUM", "addendum"), ("SIGNED BY", "signed by"),
])
def test_section_names_outside_the_table_follow_the_official_fallbacks(header, section):
    assert normalise_section_name(header) == section


def test_sections_with_the_same_name_are_joined_in_order():
    report = " FINDINGS:  No effusion.\n\n CHEST, TWO VIEWS:  Heart size normal.\n\n IMPRESSION:  Normal.\n"
    assert parse_report(report)["findings"] == "No effusion. Heart size normal."
