"""OpenI parsing, linking, views, labels, splits and prepare, on generated NLM/Kaggle layouts (notebook 12)."""

import csv
import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from PIL import Image

from joimternet_lite.cli import main as cli_main
from joimternet_lite.data import openi
from joimternet_lite.data.errors import SourceError
from joimternet_lite.data.openi import (
    chexpert_labels_from_mesh,
    link_image,
    parse_report_xml,
    prepare_openi,
)
from joimternet_lite.data.report_text import remove_deid
from joimternet_lite.data.schema import ManifestError, load_manifest
from joimternet_lite.data.skips import TooManySkipsError
from joimternet_lite.data.splits import split_for
from joimternet_lite.data.views import guess_view

SPLITS_DIR = Path(__file__).resolve().parents[3] / "data_scripts" / "splits"


def openi_xml(uid, findings="", impression="", comparison="None.", indication="Cough.", major=("normal",),
              auto=(), images=()):
    texts = "".join(f'<AbstractText Label="{k}">{escape(v)}</AbstractText>' for k, v in
                    [("COMPARISON", comparison), ("INDICATION", indication), ("FINDINGS", findings),
                     ("IMPRESSION", impression)])
    mesh = "".join(f"<major>{m}</major>" for m in major) + "".join(f"<automatic>{a}</automatic>" for a in auto)
    imgs = "".join(f'<parentImage id="{i}"><figureId>F1</figureId></parentImage>' for i in images)
    return (f'<?xml version="1.0" encoding="utf-8"?><eCitation><meta type="rr"/><uId id="CXR{uid}"/>'
            f"<MedlineCitation><Article><Abstract>{texts}</Abstract></Article></MedlineCitation>"
            f"<MeSH>{mesh}</MeSH>{imgs}</eCitation>").encode()


def film(view: str, shape=(80, 64)) -> np.ndarray:
    """A crude film: frontal = dark lungs either side of a bright mediastinum; lateral = one dark field."""
    img = np.full(shape, 200, np.uint8)
    w = shape[1]
    if view == "frontal":
        img[10:60, int(w * 0.15):int(w * 0.42)] = 60
        img[10:60, int(w * 0.58):int(w * 0.85)] = 60
    else:
        img[10:60, int(w * 0.15):int(w * 0.70)] = 70
    return img


@pytest.fixture
def nlm_tree(tmp_path):
    """NLM layout: reports archive + extracted PNGs; one image name drops a segment, one image is missing,
    one image has no report, one report has no images, one report has empty findings and impression."""
    src = tmp_path / "src"
    (src / "png").mkdir(parents=True)
    reports = {
        "1": openi_xml(1, "Heart is XXXX enlarged.", "Cardiomegaly.", major=("Cardiomegaly/mild",),
                       auto=("cardiomegaly",), images=["CXR1_IM-0001-3001", "CXR1_IM-0001-4001"]),
        "2": openi_xml(2, "", "No acute disease.", major=("normal",), images=["CXR2_IM-0002-1001"]),
        "3": openi_xml(3, "Small right effusion.", "", major=("Pleural Effusion/right/small", "Nodule/lung"),
                       images=["CXR3_IM-0003-1001", "CXR3_IM-0003-9001"]),
        "4": openi_xml(4, "Clear lungs.", "Normal.", images=[]),
        "5": openi_xml(5, "", "", major=("No Indexing",), images=["CXR5_IM-0005-1001"]),
    }
    with tarfile.open(src / "NLMCXR_reports.tgz", "w:gz") as tar:
        for rid, data in reports.items():
            (tmp_path / f"{rid}.xml").write_bytes(data)
            tar.add(tmp_path / f"{rid}.xml", arcname=f"ecgen-radiology/{rid}.xml")
    views = {"CXR1_IM-0001-3001.png": "frontal", "CXR1_IM-0001-4001-0001.png": "lateral",  # drops-a-segment case
             "CXR2_IM-0002-1001.png": "frontal", "CXR3_IM-0003-1001.png": "frontal",
             "CXR5_IM-0005-1001.png": "lateral", "CXR9_IM-0009-1001.png": "frontal"}  # 9: no report
    for name, view in views.items():
        Image.fromarray(film(view)).save(src / "png" / name)
    return src


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def test_parse_sections_mesh_and_images():
    r = parse_report_xml(openi_xml(7, "F text.", "I text.", "C.", "I.", ("Opacity/lung/base",), ("opacity",),
                                   ["CXR7_IM-0001-1001"]), "7.xml")
    assert (r.report_id, r.sections["FINDINGS"], r.sections["IMPRESSION"]) == ("7", "F text.", "I text.")
    assert r.mesh_major == ["Opacity/lung/base"] and r.mesh_automatic == ["opacity"]
    assert r.image_ids == ["CXR7_IM-0001-1001"]


def test_malformed_xml_names_the_file():
    with pytest.raises(openi.OpenIError, match="bad.xml: malformed XML"):
        parse_report_xml(b"<eCitation><uId", "bad.xml")


def test_link_exact_and_dropped_segment_and_kaggle_names(tmp_path):
    images = {("1", "IM-0001-3001"): tmp_path / "a.png", ("1", "IM-0001-4001-0001"): tmp_path / "b.png"}
    assert link_image("CXR1_IM-0001-3001", images) == tmp_path / "a.png"
    assert link_image("CXR1_IM-0001-4001", images) == tmp_path / "b.png"
    assert link_image("CXR1_IM-0001-5001", images) is None
    assert openi.image_key("1_IM-0001-3001.dcm.png") == openi.image_key("CXR1_IM-0001-3001.png")


def test_labels_from_mesh_follow_the_table():
    labels = chexpert_labels_from_mesh(["Pleural Effusion/right/small", "Catheters, Indwelling"])
    assert labels["Pleural Effusion"] == 1 and labels["Support Devices"] == 1
    assert labels["Cardiomegaly"] == 0 and labels["No Finding"] == 0
    assert chexpert_labels_from_mesh(["normal"])["No Finding"] == 1
    assert set(chexpert_labels_from_mesh(["No Indexing"]).values()) == {None}
    assert openi.mesh_labels(["Mass/lung", "Massive"], openi.OPENI8_RULES)["Mass"] == 1
    assert openi.mesh_labels(["Massive"], openi.OPENI8_RULES)["Mass"] == 0


def test_text_choice_and_deid():
    assert remove_deid("Heart XXXX enlarged .", "remove") == "Heart enlarged."
    assert remove_deid("XXXX-year-old", "token") == "deid-year-old"
    assert remove_deid("No ___ effusion.", "token") == "No deid effusion."  # the MIMIC-CXR blank
    assert openi.study_text("", "imp", "findings_or_impression") == "imp"
    assert openi.study_text("f", "imp", "findings_impression") == "f imp"


def test_split_is_deterministic_and_proportional():
    splits = [split_for(str(i)) for i in range(4000)]
    assert splits == [split_for(str(i)) for i in range(4000)]
    assert abs(splits.count("train") / 4000 - 0.7) < 0.03 and abs(splits.count("test") / 4000 - 0.2) < 0.03
    assert splits != [split_for(str(i), seed=1) for i in range(4000)]


def test_guess_view_on_drawn_films():
    assert guess_view(film("frontal") / 255.0) == "frontal"
    assert guess_view(film("lateral") / 255.0) == "lateral"


def test_prepare_nlm_layout_counts_links_and_leaves_raw_untouched(nlm_tree, tmp_path):
    before = tree_digest(nlm_tree)
    summary = prepare_openi(nlm_tree, tmp_path / "out", max_skip_fraction=0.5)
    assert tree_digest(nlm_tree) == before
    assert summary["reports"] == 5 and summary["studies"] == 3  # 4: no images, 5: empty text
    assert summary["reports_without_images"] == 1
    assert summary["images_without_reports"] == 1  # CXR9
    assert summary["skips_by_kind"] == {"empty_report": 1, "missing_image": 1}  # 5 text, CXR3_IM-0003-9001
    assert summary["empty_sections"] == {"comparison": 0, "indication": 0, "findings": 2, "impression": 2}
    assert (summary["images"], summary["frontal"], summary["lateral"]) == (4, 3, 1)
    ds = load_manifest(tmp_path / "out")
    rows = {r["study_id"]: r for r in ds}
    assert rows["1"]["views"] == ["frontal", "lateral"] and rows["1"]["findings"] == "Heart is enlarged."
    assert rows["1"]["image_paths"][1].endswith("CXR1_IM-0001-4001-0001.png")
    assert rows["2"]["text"] == "No acute disease."  # findings empty -> impression
    assert rows["3"]["labels"]["Pleural Effusion"] == 1 and rows["3"]["openi_labels"]["Nodule"] == 1
    assert rows["3"]["mesh_major"] == ["Pleural Effusion/right/small", "Nodule/lung"]
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skips.jsonl").read_text().splitlines()]
    assert {s["file"] for s in skipped if s["kind"] == "missing_image"} == {"CXR3_IM-0003-9001"}


def test_kaggle_layout_with_projections_csv(tmp_path):
    src = tmp_path / "kaggle"
    (src / "images" / "images_normalized").mkdir(parents=True)
    with open(src / "indiana_reports.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"])
        w.writerow([1, "Cardiomegaly;Opacity/lung", "Cardiomegaly", "x", "dyspnea", "", "Big heart.", "Cardiomegaly."])
        w.writerow([2, "normal", "normal", "x", "", "", "", ""])
    with open(src / "indiana_projections.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "filename", "projection"])
        w.writerow([1, "1_IM-0001-4001.dcm.png", "Frontal"])
        w.writerow([1, "1_IM-0001-3001.dcm.png", "Lateral"])
    for name in ("1_IM-0001-4001.dcm.png", "1_IM-0001-3001.dcm.png", "2_IM-0002-1001.dcm.png"):
        Image.fromarray(film("frontal")).save(src / "images" / "images_normalized" / name)
    summary = prepare_openi(src, tmp_path / "out", max_skip_fraction=0.5)
    assert summary["views_from"] == "projections_csv" and summary["skips_by_kind"] == {"empty_report": 1}
    row = load_manifest(tmp_path / "out")[0]
    assert sorted(zip(row["image_paths"], row["views"], strict=True))[0][1] == "lateral"  # ...3001 is the lateral
    assert row["labels"]["Cardiomegaly"] == 1 and row["labels"]["Lung Opacity"] == 1


def test_overlong_and_bad_reports_are_counted_skips_and_threshold_fails(nlm_tree, tmp_path):
    (nlm_tree / "extra").mkdir()
    (nlm_tree / "extra" / "8.xml").write_bytes(openi_xml(8, "word " * 10000, images=["CXR8_IM-0008-1001"]))
    Image.fromarray(film("frontal")).save(nlm_tree / "png" / "CXR8_IM-0008-1001.png")
    (nlm_tree / "extra" / "9.xml").write_bytes(b"<eCitation>\xff\xfe broken")
    with pytest.raises(TooManySkipsError, match=r"skipped 3 of 7 reports .*overlong_report: 1\).*skips.jsonl"):
        prepare_openi(nlm_tree, tmp_path / "out", max_skip_fraction=0.2)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skips_by_kind"] == {"bad_report_xml": 1, "empty_report": 1, "missing_image": 1,
                                        "overlong_report": 1}


def test_cli_prepare_prints_summary_and_fails_on_threshold(nlm_tree, tmp_path, capsys):
    assert cli_main(["prepare", "openi", "--source", str(nlm_tree), "--out", str(tmp_path / "o"),
                         "--max-skip-fraction", "0.5", "--dedeid", "keep"]) == 0
    out = capsys.readouterr().out
    assert '"studies": 3' in out
    assert "skipped 1 of 5 reports (empty_report: 1); not counted (expected): missing_image: 1 in 1 reports" in out
    assert load_manifest(tmp_path / "o")[0]["findings"] == "Heart is XXXX enlarged."
    assert cli_main(["prepare", "openi", "--source", str(nlm_tree), "--out", str(tmp_path / "o2"),
                         "--max-skip-fraction", "0.1"]) == 1


def _torchxrayvision_reports() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")  # found, not imported: its heavy deps are not needed
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchxrayvision (ships the NLM report archive) not installed")
    path = Path(spec.submodule_search_locations[0]) / "data" / "NLMCXR_reports.tgz"
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


def test_all_3955_real_reports_and_published_files_reproduce(tmp_path):
    archive = _torchxrayvision_reports()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "NLMCXR_reports.tgz").symlink_to(archive)
    summary = prepare_openi(tmp_path / "src", tmp_path / "out", publish_dir=tmp_path / "pub")
    assert summary["reports"] == 3955 and summary["skipped"] == 0  # no XML lost or unparseable
    assert summary["reports_without_images"] == 3955  # no images in this source
    assert summary["empty_sections"] == {"comparison": 622, "indication": 90, "findings": 530, "impression": 34}
    reports = list(openi.iter_report_xml(tmp_path / "src", openi.SkipLog()))
    assert sum(not (r.sections["FINDINGS"] or r.sections["IMPRESSION"]) for r in reports) == 28
    assert sum(not r.image_ids for r in reports) == 104
    published = json.loads((SPLITS_DIR / "openi_splits.json").read_text())
    for name, digest in published["sha256"].items():
        assert hashlib.sha256((tmp_path / "pub" / name).read_bytes()).hexdigest() == digest
        assert hashlib.sha256((SPLITS_DIR / name).read_bytes()).hexdigest() == digest


def test_synthcxr_in_openi_layouts_prepares_and_heuristic_finds_views(tmp_path):
    layouts = pytest.importorskip("joimternet_lite.data.synthcxr")
    from joimternet_lite.data.synthcxr import generate_synthcxr

    generate_synthcxr(tmp_path / "syn", num_studies=8, image_size=128, workers=1, progress=False)
    written = layouts.write_openi_layout(tmp_path / "syn", tmp_path / "raw", nlm_png=True)
    with_csv = prepare_openi(tmp_path / "raw", tmp_path / "out")
    assert (with_csv["studies"], with_csv["images"], with_csv["skipped"]) == (8, written["images"], 0)
    truth = (with_csv["frontal"], with_csv["lateral"])
    nlm_only = tmp_path / "nlm"  # the NLM archives carry no view labels: the heuristic decides
    nlm_only.mkdir()
    for name in ("NLMCXR_png", "ecgen-radiology"):
        (nlm_only / name).symlink_to(tmp_path / "raw" / name)
    guessed = prepare_openi(nlm_only, tmp_path / "out2")
    assert guessed["views_from"] == "image_heuristic" and (guessed["frontal"], guessed["lateral"]) == truth


def test_non_utf8_projections_csv_names_file_and_fix(nlm_tree, tmp_path):
    (nlm_tree / "indiana_projections.csv").write_bytes("uid,filename,projection\n1,CXR1_IM-0001-3001.png,Fr\u00f6ntal\n"
                                                      .encode("latin-1"))
    with pytest.raises(SourceError, match=r"indiana_projections\.csv: not UTF-8.*convert it to UTF-8"):
        prepare_openi(nlm_tree, tmp_path / "out")


def test_truncated_reports_archive_names_file_and_fix(nlm_tree, tmp_path):
    archive = nlm_tree / "NLMCXR_reports.tgz"
    archive.write_bytes(archive.read_bytes()[:-60])
    with pytest.raises(SourceError, match=r"NLMCXR_reports\.tgz: .*truncated or damaged.*Download it again"):
        prepare_openi(nlm_tree, tmp_path / "out")


def test_reports_csv_without_uid_column_names_file_and_fix(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "indiana_reports.csv").write_text("MeSH,findings,impression\nnormal,Clear.,Normal.\n")
    with pytest.raises(SourceError, match=r"indiana_reports\.csv: column\(s\) \['uid'\] missing.*Download"):
        prepare_openi(tmp_path / "src", tmp_path / "out")


@pytest.mark.parametrize("damage", ["garbage_json", "cut_arrow"])
def test_damaged_manifest_names_file_and_fix(nlm_tree, tmp_path, damage):
    prepare_openi(nlm_tree, tmp_path / "out", max_skip_fraction=0.5)
    if damage == "garbage_json":
        (tmp_path / "out" / "manifest.json").write_text("{not json")
        where = r"manifest\.json"
    else:
        arrow = next((tmp_path / "out" / "manifest").glob("*.arrow"))
        arrow.write_bytes(arrow.read_bytes()[:100])
        where = r"manifest"
    with pytest.raises(ManifestError, match=rf"{where}: .*damaged.*Re-run the prepare command"):
        load_manifest(tmp_path / "out")


def test_second_xml_with_same_uid_and_other_text_is_a_counted_skip(nlm_tree, tmp_path):
    (nlm_tree / "ecgen-radiology").mkdir()
    with tarfile.open(nlm_tree / "NLMCXR_reports.tgz") as tar:  # an extracted copy beside its archive: no skip
        (nlm_tree / "ecgen-radiology" / "2.xml").write_bytes(tar.extractfile("ecgen-radiology/2.xml").read())
    (nlm_tree / "ecgen-radiology" / "3.xml").write_bytes(openi_xml(3, "A different finding.", images=["CXR3_IM-0003-1001", "CXR3_IM-0003-9001"]))
    summary = prepare_openi(nlm_tree, tmp_path / "out", max_skip_fraction=0.5)
    assert summary["reports"] == 5
    assert summary["skips_by_kind"] == {"conflicting_report": 1, "empty_report": 1, "missing_image": 1}
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skips.jsonl").read_text().splitlines()]
    (conflict,) = [s for s in skipped if s["kind"] == "conflicting_report"]
    assert conflict["file"].endswith("NLMCXR_reports.tgz:ecgen-radiology/3.xml")
    assert "ecgen-radiology/3.xml" in conflict["reason"] and "uId 3" in conflict["reason"]


@pytest.mark.parametrize("name, key", [
    ("CXR1_1_IM-0001-3001", ("1", "IM-0001-3001")),  # NLM parentImage id of study 1
    ("CXR1_1_IM-0001-3001.png", ("1", "IM-0001-3001")),  # NLM PNG
    ("CXR1000_IM-0003-1001.png", ("1000", "IM-0003-1001")),
    ("CXR1021_IM-0017-1001-0001.png", ("1021", "IM-0017-1001-0001")),
    ("CXR128_IM-0186-82592001.png", ("128", "IM-0186-82592001")),
    ("1_IM-0001-3001.dcm.png", ("1", "IM-0001-3001")),  # Kaggle images_normalized
    ("images_normalized/1000_IM-0003-1001.dcm.png", ("1000", "IM-0003-1001")),
    ("iu_xray/images/CXR1_1_IM-0001/0.png", ("1", "IM-0001/0")),  # R2Gen: folder per study, <k>.png
    ("iu_xray/images/CXR2384_IM-0942/1.png", ("2384", "IM-0942/1")),
    ("images/0.png", None), ("notes.png", None), ("CXR12.png", None),
])
def test_image_key_reads_every_layouts_names(name, key):
    assert openi.image_key(name) == key


def _nlm_source(root: Path, uids, present) -> Path:
    """Reports for ``uids`` (two images each, study 1 with NLM's CXR1_1_ names) and the images of ``present``."""
    (root / "png").mkdir(parents=True)
    ids = {u: [f"CXR{u}{'_1' if u == 1 else ''}_IM-{u:04d}-{k}001" for k in (1, 2)] for u in uids}
    with tarfile.open(root / "NLMCXR_reports.tgz", "w:gz") as tar:
        for u in uids:
            data = openi_xml(u, f"Finding {u}.", "Normal.", images=ids[u])
            info = tarfile.TarInfo(f"ecgen-radiology/{u}.xml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    for u in present:
        for image_id, view in zip(ids[u], ("frontal", "lateral"), strict=True):
            Image.fromarray(film(view)).save(root / "png" / f"{image_id}.png")
    return root


def test_study_1_links_its_cxr1_1_images(tmp_path):
    summary = prepare_openi(_nlm_source(tmp_path / "src", [1, 2], [1, 2]), tmp_path / "out")
    assert (summary["studies"], summary["images"], summary["images_without_reports"]) == (2, 4, 0)
    assert summary["skips_by_kind"] == {}


def test_partial_download_prepares_the_studies_it_has(tmp_path, capsys):
    src = _nlm_source(tmp_path / "src", range(1, 11), [1, 4, 7])
    summary = prepare_openi(src, tmp_path / "out")  # default --max-skip-fraction 0.1
    assert (summary["reports"], summary["studies"], summary["skipped"]) == (10, 3, 0)
    assert (summary["missing_images"], summary["studies_missing_images"], summary["reports_without_images"]) == (14, 7, 7)
    out = capsys.readouterr().out
    assert "missing: 14 images listed by the reports are not in the source, in 7 reports" in out
    assert "skipped 0 of 10 reports; not counted (expected): missing_image: 14 in 7 reports" in out
    assert sorted(load_manifest(tmp_path / "out")["study_id"]) == ["1", "4", "7"]


def test_r2gen_layout_with_its_csv_names(tmp_path):
    src = tmp_path / "r2gen"
    (src / "iu_xray" / "images").mkdir(parents=True)
    with open(src / "iu_reports.csv", "w", newline="") as f:
        csv.writer(f).writerows([["uid", "MeSH", "findings", "impression"], [1, "normal", "Clear.", "Normal."],
                                 [2, "Cardiomegaly", "Big heart.", ""]])
    (src / "iu_projections.csv").write_text("uid,filename,projection\n1,1_IM-0001-4001.dcm.png,Frontal\n")
    for folder in ("CXR1_1_IM-0001", "CXR2_IM-0652"):
        (src / "iu_xray" / "images" / folder).mkdir()
        for k, view in enumerate(("frontal", "lateral")):
            Image.fromarray(film(view)).save(src / "iu_xray" / "images" / folder / f"{k}.png")
    summary = prepare_openi(src, tmp_path / "out")
    assert (summary["studies"], summary["images"], summary["views_from"]) == (2, 4, "image_heuristic")
    assert (summary["frontal"], summary["lateral"]) == (2, 2)  # the CSV names no R2Gen image: the classifier decides


def test_prepare_refuses_a_foreign_out_folder_before_writing(nlm_tree, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("my work")
    for dataset, source in (("openi", nlm_tree), ("mimic-cxr", nlm_tree)):
        assert cli_main(["prepare", dataset, "--source", str(source), "--out", str(mine)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"error: {mine}: the folder is not empty") and "--overwrite" in err[-1]
        assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]  # nothing written
    assert cli_main(["prepare", "openi", "--source", str(nlm_tree), "--out", str(mine), "--overwrite",
                         "--max-skip-fraction", "0.5"]) == 0
    assert (mine / "thesis.txt").read_text() == "my work" and (mine / "manifest.json").exists()


def test_prepare_reruns_into_its_own_folder_even_after_a_failure(nlm_tree, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TooManySkipsError):
        prepare_openi(nlm_tree, out, max_skip_fraction=0.0)  # leaves summary.json and skips.jsonl only
    assert not (out / "manifest.json").exists() or json.loads((out / "manifest.json").read_text())["source"] == "openi"
    prepare_openi(nlm_tree, out, max_skip_fraction=0.5)  # its own folder: no --overwrite needed
    prepare_openi(nlm_tree, out, max_skip_fraction=0.5)
    assert len(load_manifest(out)) == 3


@pytest.mark.parametrize("preset", ["openi_cpu", "openi_gpu"])
def test_openi_presets_train_with_lateral_only_studies_out_of_the_box(tmp_path, preset):
    from joimternet_lite.config import load_config
    from joimternet_lite.training.train import train

    src = _nlm_source(tmp_path / "src", range(1, 41), range(1, 41))
    for u in range(2, 41, 5):  # 8 of 40 studies keep only their lateral film: 20 %, far above 0.01
        next((src / "png").glob(f"CXR{u}_IM-*-1001.png")).unlink()
    prepare_openi(src, tmp_path / "openi")
    tiny = ["train.steps=2", "train.batch_size=4", "data.image_size=32", "data.cache_dir=null",
            "data.num_workers=0", "model.image.backbone=authors_cnn", "model.image.widths=[4, 4, 4, 4, 8, 8, 8]",
            "model.image.grid=4", "model.embed_dim=16", "model.text.hidden=16", "model.text.intermediate=32",
            "model.text.layers=1", "train.precision=fp32", "train.channels_last=false"]
    cfg = load_config(preset, [f"data.root={tmp_path / 'openi'}", f"train.out_dir={tmp_path / 'run'}", *tiny])
    assert cfg.data.max_skip_fraction == 0.01
    result = train(cfg)
    assert result.steps == 2 and result.skipped_samples == 0
    listed = [json.loads(x) for x in (tmp_path / "run" / "skipped_samples.jsonl").read_text().splitlines()]
    excluded = {e["study_id"] for e in listed if e["kind"] == "no_frontal_image"}
    assert excluded and excluded <= {str(u) for u in range(2, 41, 5)} and len(excluded) == len(listed)


def test_find_openi_source_finds_a_download_one_level_down_only(tmp_path):
    assert openi.find_openi_source(tmp_path / "absent") is None
    (tmp_path / "synthcxr").mkdir()
    (tmp_path / "layouts" / "openi_raw").mkdir(parents=True)  # a notebook's own layout: two levels down
    (tmp_path / "layouts" / "openi_raw" / "indiana_reports.csv").write_text("uid\n")
    assert openi.find_openi_source(tmp_path) is None
    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle" / "iu_reports.csv").write_text("uid\n")
    (tmp_path / "nlm" / "ecgen-radiology").mkdir(parents=True)
    assert openi.find_openi_source(tmp_path) == tmp_path / "kaggle"  # sorted: kaggle before nlm
