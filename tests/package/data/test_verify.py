"""Image checks at prepare time (data/verify.py): corrupt PNG / JPEG / DICOM files become counted
skips for the OpenI (with projections CSV) and MIMIC-CXR layouts (notebook 12)."""

import csv
import io
import json
import struct
import zlib

import numpy as np
import pytest
from dicom_files import make_ds, save
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from joimternet_lite.cli import main as cli_main
from joimternet_lite.data.mimic import prepare_mimic
from joimternet_lite.data.openi import prepare_openi
from joimternet_lite.data.schema import load_manifest
from joimternet_lite.data.skips import SkipLog
from joimternet_lite.data.verify import check_image, check_images, drop_bad_images

RNG = np.random.default_rng(0)
GREY8 = (RNG.random((96, 80)) * 255).astype(np.uint8)
GREY16 = (RNG.random((96, 80)) * 65535).astype(np.uint16)
REPORT = "FINDINGS: Clear lungs.\n\nIMPRESSION: Normal chest.\n"


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def flip_idat_byte(data: bytes) -> bytes:
    """One byte inside the first IDAT's data inverted: the chunk CRC no longer matches."""
    at = data.index(b"IDAT") + 4 + 10
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def garbage_idat_with_good_crc(data: bytes) -> bytes:
    """The IDAT payload replaced by bytes that are not a zlib stream, with a correct CRC: only a
    decode finds it."""
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    junk = bytes(range(256)) * (length // 256 + 1)
    junk = junk[:length]
    chunk = struct.pack(">I", length) + b"IDAT" + junk + struct.pack(">I", zlib.crc32(b"IDAT" + junk))
    return data[:start] + chunk + data[start + 12 + length:]


def dicom_file(path, cut: int = 0):
    save(make_ds(GREY16, bits_stored=16), path)
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])
    return path


def bad_files(folder, names: dict[str, str]) -> None:
    """Write the named kinds of file: ok_png, cut_png, flipped_png, ok_jpg, cut_jpg, ok_dcm, short_dcm."""
    png, jpg = png_bytes(GREY16), jpeg_bytes(GREY8)
    data = {"ok_png": png, "cut_png": png[:len(png) // 2], "flipped_png": flip_idat_byte(png),
            "ok_jpg": jpg, "cut_jpg": jpg[:-200]}
    for name, kind in names.items():
        if kind.endswith("dcm"):
            dicom_file(folder / name, cut=1000 if kind == "short_dcm" else 0)
        else:
            (folder / name).write_bytes(data[kind])


# ---------------------------------------------------------------- single files


@pytest.mark.parametrize("kind, expect", [
    ("ok_png", None), ("cut_png", "PNG structure broken"), ("flipped_png", "checksum"),
    ("ok_jpg", None), ("cut_jpg", "end-of-image marker"),
    ("ok_dcm", None), ("short_dcm", "pixel data holds 14360 bytes but 96 x 80 pixels need 15360"),
])
def test_structure_check(tmp_path, kind, expect):
    name = "f.dcm" if kind.endswith("dcm") else "f.img"  # PNG / JPEG are told by their magic bytes
    bad_files(tmp_path, {name: kind})
    problem = check_image(tmp_path / name).problem
    assert problem is None if expect is None else expect in problem


def test_progressive_and_padded_jpegs_pass_and_cut_ones_fail(tmp_path):
    progressive = jpeg_bytes(GREY8, progressive=True)
    (tmp_path / "p.jpg").write_bytes(progressive)
    (tmp_path / "pcut.jpg").write_bytes(progressive[:len(progressive) * 2 // 3])
    (tmp_path / "trailing.jpg").write_bytes(jpeg_bytes(GREY8) + b"\x00" * 16)  # padding after EOI is fine
    assert check_image(tmp_path / "p.jpg").problem is None
    assert check_image(tmp_path / "trailing.jpg").problem is None
    assert "end-of-image" in check_image(tmp_path / "pcut.jpg").problem


def test_cut_encapsulated_dicom_fails(tmp_path):
    ds = make_ds(GREY8)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([jpeg_bytes(GREY8)])
    ds["PixelData"].VR = "OB"
    whole = save(ds, tmp_path / "jpeg.dcm")
    assert check_image(whole).problem is None
    (tmp_path / "cut.dcm").write_bytes(whole.read_bytes()[:-300])
    problem = check_image(tmp_path / "cut.dcm").problem
    assert "End of file reached before delimiter" in problem  # pydicom's warning, now in the reason


def test_decode_finds_what_the_structure_check_cannot(tmp_path):
    path = tmp_path / "zlib.png"
    path.write_bytes(garbage_idat_with_good_crc(png_bytes(GREY16)))
    assert check_image(path).problem is None
    assert check_image(path, decode=True).problem.startswith("decode failed")


def test_empty_and_unknown_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("<html>login required</html>")
    assert "zero-byte" in check_image(tmp_path / "empty.png").problem
    assert "not a PNG, JPEG or DICOM" in check_image(tmp_path / "text.jpg").problem


def test_pool_and_inline_agree_and_keep_order(tmp_path):
    kinds = ["ok_png", "cut_png", "ok_jpg", "cut_jpg", "flipped_png"] * 3
    names = {f"{i}_{k}": k for i, k in enumerate(kinds)}
    bad_files(tmp_path, names)
    paths = [tmp_path / n for n in names]
    pooled = check_images(paths, workers=2, progress=False)
    assert pooled == check_images(paths, workers=1, progress=False)
    assert [r.problem is None for r in pooled] == [k.startswith("ok") for k in kinds]


def test_drop_bad_images_removes_paths_with_their_views_and_logs_each(tmp_path):
    bad_files(tmp_path, {"a.png": "ok_png", "b.png": "cut_png", "c.jpg": "cut_jpg"})
    records = [{"study_id": "1", "image_paths": [str(tmp_path / "a.png"), str(tmp_path / "b.png")],
                "views": ["frontal", "lateral"]},
               {"study_id": "2", "image_paths": [str(tmp_path / "c.jpg")], "views": ["frontal"]}]
    skips = SkipLog()
    kept = drop_bad_images(records, skips, workers=1, progress=False)
    assert kept == [{"study_id": "1", "image_paths": [str(tmp_path / "a.png")], "views": ["frontal"]}]
    assert skips.counts() == {"bad_image": 2}
    assert {e["file"] for e in skips.entries if e["kind"] == "bad_image"} == {str(tmp_path / "b.png"),
                                                                               str(tmp_path / "c.jpg")}


# ---------------------------------------------------------------- through prepare


def openi_kaggle_tree(root, kinds: dict[str, str]):
    """Kaggle OpenI layout with indiana_projections.csv: report uid i has the one image of kinds[i]."""
    (root / "images").mkdir(parents=True)
    with open(root / "indiana_reports.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"])
        for uid in kinds:
            w.writerow([uid, "normal", "normal", "x", "", "", "Clear lungs.", "Normal."])
    names = {uid: f"{uid}_IM-000{uid}-1001.dcm.{'jpg' if 'jpg' in kind else 'png'}" for uid, kind in kinds.items()}
    with open(root / "indiana_projections.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "filename", "projection"])
        w.writerows([uid, name, "Frontal"] for uid, name in names.items())
    bad_files(root / "images", {names[uid]: kind for uid, kind in kinds.items()})
    return names


def test_openi_with_projections_csv_counts_corrupt_images(tmp_path):
    kinds = {"1": "ok_png", "2": "cut_png", "3": "flipped_png", "4": "ok_jpg", "5": "cut_jpg"}
    names = openi_kaggle_tree(tmp_path / "src", kinds)
    summary = prepare_openi(tmp_path / "src", tmp_path / "out", max_skip_fraction=0.8)
    assert summary["views_from"] == "projections_csv"
    assert summary["skips_by_kind"] == {"bad_image": 3}
    assert (summary["studies"], summary["images"]) == (2, 2)
    bad = {json.loads(line)["file"].rsplit("/", 1)[1] for line in (tmp_path / "out" / "skips.jsonl").open()
           if '"bad_image"' in line}
    assert bad == {names["2"], names["3"], names["5"]}
    assert sorted(r["study_id"] for r in load_manifest(tmp_path / "out")) == ["1", "4"]


def mimic_tree(root, kinds: dict[str, str]):
    """MIMIC-CXR layout: study s5000000i of subject 1000000i holds the one image of kinds[i]."""
    rows = ["dicom_id,subject_id,study_id,ViewPosition"]
    for i, kind in kinds.items():
        d = root / "files" / "p10" / f"p1000000{i}" / f"s5000000{i}"
        d.mkdir(parents=True)
        (d.parent / f"s5000000{i}.txt").write_text(REPORT)
        bad_files(d, {f"img{i}.{kind.split('_')[1]}": kind})
        rows.append(f"img{i},1000000{i},5000000{i},PA")
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text("\n".join(rows) + "\n")


def test_mimic_counts_corrupt_png_jpeg_and_dicom(tmp_path):
    kinds = {"1": "ok_jpg", "2": "cut_jpg", "3": "ok_dcm", "4": "short_dcm", "5": "cut_png", "6": "flipped_png",
             "7": "ok_png"}
    mimic_tree(tmp_path / "physionet", kinds)
    summary = prepare_mimic(tmp_path / "physionet", tmp_path / "out", max_skip_fraction=0.8,
                            allow_missing_labels=True)
    assert summary["skips_by_kind"] == {"bad_image": 4}
    assert summary["studies"] == 3
    assert sorted(r["study_id"] for r in load_manifest(tmp_path / "out")) == ["s50000001", "s50000003", "s50000007"]


def test_verify_decode_flag_reaches_the_check(tmp_path, capsys):
    mimic_tree(tmp_path / "physionet", {"1": "ok_png", "2": "ok_png"})
    target = next((tmp_path / "physionet").rglob("img2.png"))
    target.write_bytes(garbage_idat_with_good_crc(target.read_bytes()))
    args = ["mimic-cxr", "--source", str(tmp_path / "physionet"), "--allow-missing-labels",
            "--max-skip-fraction", "1"]
    assert cli_main(["prepare", *args, "--out", str(tmp_path / "fast")]) == 0
    assert json.loads((tmp_path / "fast" / "summary.json").read_text())["skipped"] == 0
    assert cli_main(["prepare", *args, "--out", str(tmp_path / "full"), "--verify-decode"]) == 0
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["skips_by_kind"] == {"bad_image": 1}


def test_openi_without_projections_csv_classifies_views_in_the_check(tmp_path, capsys):
    from joimternet_lite.data.synthcxr import generate_synthcxr, write_openi_layout

    generate_synthcxr(tmp_path / "syn", num_studies=10, image_size=128, workers=1, progress=False)
    write_openi_layout(tmp_path / "syn", tmp_path / "src")
    with_csv = prepare_openi(tmp_path / "src", tmp_path / "csv")
    (tmp_path / "src" / "indiana_projections.csv").unlink()
    without = prepare_openi(tmp_path / "src", tmp_path / "guess")
    assert without["views_from"] == "image_heuristic" and without["skipped"] == 0
    views = {r["study_id"]: r["views"] for r in load_manifest(tmp_path / "csv")}
    assert {r["study_id"]: r["views"] for r in load_manifest(tmp_path / "guess")} == views
    assert with_csv["lateral"] > 0  # the layout gave some studies a lateral film
    assert f"decided by the image classifier: {with_csv['frontal']} frontal, {with_csv['lateral']} lateral" \
        in capsys.readouterr().out
