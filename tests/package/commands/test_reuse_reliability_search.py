"""`search` and `ground` never replace a user's file, keep one index per folder, never print a
traceback for bad input (damaged index, bytes that are not UTF-8, odd file names), count every
skipped entry, and say what they cut. Each case runs the real command line in-process."""

import io
import json
import os
import shutil
import struct
import warnings

import numpy as np
import pytest
from dicom_files import make_ds, save
from PIL import Image
from safetensors.torch import save_file
from test_search_cli import QUERY

from joimternet_lite import atomic
from joimternet_lite.cli import main
from joimternet_lite.commands.search import INDEX_NAME
from joimternet_lite.inference import ImageTextInference


@pytest.fixture
def folder(tiny_run, tmp_path):
    """Four SynthCXR images."""
    images = tmp_path / "images"
    images.mkdir()
    for k, png in enumerate(sorted((tiny_run[1] / "images").rglob("*.png"))[:4]):
        shutil.copy(png, images / f"img{k}.png")
    return images


def _run(tiny_run, capsys, *argv):
    code = main([argv[0], "--model", str(tiny_run[0]), "--device", "cpu", *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def _search(tiny_run, capsys, folder, *extra):
    return _run(tiny_run, capsys, "search", "--images", str(folder), "--query", QUERY, *extra)


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- nothing a user owns is replaced


@pytest.mark.parametrize("kind", ["notes", "weights"])
def test_search_index_refuses_a_file_that_is_not_an_index(tiny_run, folder, tmp_path, capsys, kind):
    target = tmp_path / ("notes.txt" if kind == "notes" else "model.safetensors")
    if kind == "notes":
        target.write_text("my notes\n")
    else:  # a weights file as transformers writes it: safetensors, but no index metadata
        import torch
        save_file({"w": torch.ones(3)}, str(target), metadata={"format": "pt"})
    before = target.read_bytes()
    code, out, err = _search(tiny_run, capsys, folder, "--index", str(target))
    assert code == 1 and out == ""
    line = _error_line(err)
    assert str(target) in line and "--overwrite" in line
    assert target.read_bytes() == before
    code, _, err = _search(tiny_run, capsys, folder, "--index", str(target), "--overwrite")
    assert code == 0 and target.read_bytes() != before
    code, _, err = _search(tiny_run, capsys, folder, "--index", str(target))  # now an index: reused, no flag
    assert code == 0 and "(4 reused, 0 embedded, 0 gone)" in err


def test_ground_out_replaces_only_a_figure_it_wrote(tiny_run, folder, tmp_path, capsys):
    image = folder / "img0.png"
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    foreign = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(foreign)
    for target in (notes, foreign):
        before = target.read_bytes()
        code, out, err = _run(tiny_run, capsys, "ground", "--image", str(image), "--text", QUERY, "--out", str(target))
        assert code == 1 and out == "" and target.read_bytes() == before
        line = _error_line(err)
        assert str(target) in line and "--overwrite" in line
    figure = tmp_path / "maps.png"
    for _ in range(2):  # a new path, then the figure it wrote itself
        assert _run(tiny_run, capsys, "ground", "--image", str(image), "--text", QUERY, "--out", str(figure))[0] == 0
    assert _run(tiny_run, capsys, "ground", "--image", str(image), "--text", QUERY, "--out", str(foreign),
                "--overwrite")[0] == 0
    assert Image.open(foreign).size != (8, 8)


# ----------------------------------------------------------------------------- where the index lives


def test_one_folder_has_one_index_however_it_is_spelled(tiny_run, folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    spellings = [".", f"../{folder.name}", str(folder), f"{folder}/"]
    errs = [_search(tiny_run, capsys, spelling)[2] for spelling in spellings]
    assert "(0 reused, 4 embedded, 0 gone)" in errs[0]
    assert all("(4 reused, 0 embedded, 0 gone)" in err for err in errs[1:]), errs
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # nothing beside the folder
    assert (folder / INDEX_NAME).is_file()


def test_an_index_that_cannot_be_written_still_gives_the_results(tiny_run, folder, capsys, monkeypatch):
    def refuse(prefix, suffix, dir):  # what mkstemp raises in a read-only folder
        raise PermissionError(13, "Permission denied", os.path.join(dir, f"{prefix}x{suffix}"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    code, out, err = _search(tiny_run, capsys, folder, "--top", "2")
    assert code == 0
    engine = ImageTextInference.from_pretrained(tiny_run[0], device="cpu")
    scores = engine.similarity(sorted(folder.glob("*.png")), [QUERY])[:, 0]
    want = [str(sorted(folder.glob("*.png"))[i]) for i in scores.argsort(descending=True)[:2].tolist()]
    assert [line.split("\t")[0] for line in out.splitlines()] == want
    kept = [line for line in err.splitlines() if "index not kept" in line]
    assert len(kept) == 1 and str(folder / INDEX_NAME) in kept[0] and "Permission denied" in kept[0]
    assert "--index" in kept[0] and ".tmp" not in err


def _damage(path, how):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    entries = json.loads(header["__metadata__"]["entries"])
    if how == "cut in the tensors":
        path.write_bytes(data[:-100])
        return
    if how == "cut in the header":
        path.write_bytes(data[:100])
        return
    if how == "empty":
        path.write_bytes(b"")
        return
    header["__metadata__"]["entries"] = json.dumps({"entries not rows": [["a"]], "one row short": entries[:-1],
                                                    "one row too many": entries + [["x.png", 1, 2]]}[how])
    body = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + data[8 + n:])


@pytest.mark.parametrize("how", ["cut in the tensors", "cut in the header", "empty", "entries not rows",
                                 "one row short", "one row too many"])
def test_a_damaged_index_is_one_warning_and_a_rebuild(tiny_run, folder, capsys, how):
    _, fresh, _ = _search(tiny_run, capsys, folder)
    _damage(folder / INDEX_NAME, how)
    code, out, err = _search(tiny_run, capsys, folder)
    assert code == 0 and out == fresh and "Traceback" not in err
    damaged = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(damaged) == 1 and ("damaged" in damaged[0] or "not a search index" in damaged[0]), err
    assert "(0 reused, 4 embedded, 0 gone)" in err
    code, out, err = _search(tiny_run, capsys, folder)  # the rebuilt index is whole again
    assert code == 0 and out == fresh and "warning" not in err and "(4 reused, 0 embedded, 0 gone)" in err


# ----------------------------------------------------------------------------- text and names that are not UTF-8


def test_text_that_is_not_utf8_is_one_error_line(tiny_run, folder, tmp_path, capsys):
    bad = os.fsdecode(b"left \xff effusion")  # how Python hands such argv bytes over
    code, _, err = _search(tiny_run, capsys, folder, "--query", bad)
    assert code == 1 and "not UTF-8" in _error_line(err) and "--query" in _error_line(err)
    code, _, err = _run(tiny_run, capsys, "ground", "--image", str(folder / "img0.png"), "--text", bad, "--out",
                        str(tmp_path / "o.png"))
    assert code == 1 and "not UTF-8" in _error_line(err) and "--text" in _error_line(err)
    assert not (tmp_path / "o.png").exists()


def test_odd_file_names_print_as_one_line_each_and_exactly_in_json(tiny_run, folder, capsys, monkeypatch):
    odd = [os.fsdecode(b"bad\xffname.png"), "new\nline.png", "tab\there.png"]
    for k, name in enumerate(odd):
        shutil.copy(folder / f"img{k}.png", folder / name)
    strict = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr("sys.stdout", strict)
    assert main(["search", "--model", str(tiny_run[0]), "--images", str(folder), "--query", QUERY, "--device", "cpu",
                 "--top", "7"]) == 0
    strict.flush()
    lines = strict.buffer.getvalue().decode("utf-8").splitlines()
    assert len(lines) == 7
    shown = {line.split("\t")[0].removeprefix(f"{folder}/") for line in lines}
    assert {"bad\\xffname.png", "new\\nline.png", "tab\\there.png"} <= shown
    monkeypatch.undo()
    assert main(["search", "--model", str(tiny_run[0]), "--images", str(folder), "--query", QUERY, "--device", "cpu",
                 "--top", "7", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert sorted(os.path.basename(r["path"]) for r in found["results"]) == sorted(
        p.name for p in folder.iterdir() if p.suffix == ".png")
    assert all(os.path.isfile(r["path"]) for r in found["results"])
    assert found["indexed"] == 7 and found["skipped"] == [] and found["index_kept"] is True


# ----------------------------------------------------------------------------- what is cut, skipped or warned


def test_ground_says_where_a_long_text_is_cut_and_keeps_the_figure_small(tiny_run, folder, tmp_path, capsys):
    engine = ImageTextInference.from_pretrained(tiny_run[0], device="cpu")
    image = folder / "img0.png"
    text = " ".join(["small left pleural effusion"] * 300)  # 1200 words
    mapped = len(engine.word_maps(image, text).words)
    assert 0 < mapped < 1200
    code, out, err = _run(tiny_run, capsys, "ground", "--image", str(image), "--text", text, "--out",
                          str(tmp_path / "long.png"))
    assert code == 0
    assert "--text has 1200 words" in err and f"only the first {mapped} are mapped" in err
    assert f"of {mapped} words written" in out
    short = " ".join(text.split()[:mapped])  # the words the model read: the same panels
    assert _run(tiny_run, capsys, "ground", "--image", str(image), "--text", short, "--out",
                str(tmp_path / "short.png"))[0] == 0
    long_h, short_h = Image.open(tmp_path / "long.png").height, Image.open(tmp_path / "short.png").height
    assert abs(long_h - short_h) <= 60  # the title is shortened to a few lines, not 1200 words high


def _palette_png_with_transparency(path):
    """A palette PNG whose transparency is a byte string: Pillow warns when it converts it to grey."""
    Image.fromarray(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)).convert("P").save(
        path, transparency=bytes(10))


def test_reader_warnings_are_reported_once_in_our_words(tiny_run, folder, tmp_path, capsys):
    for k in range(2):
        _palette_png_with_transparency(folder / f"pal{k}.png")
    padded = make_ds(np.zeros((64, 64), np.uint8))
    padded.PixelData += b"\0" * 4  # pydicom warns about (and drops) the padding
    save(padded, folder / "padded.dcm")
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        code, _, err = _search(tiny_run, capsys, folder)
        ground, _, ground_err = _run(tiny_run, capsys, "ground", "--image", str(folder / "pal0.png"), "--text", QUERY,
                                     "--out", str(tmp_path / "o.png"))
    assert code == 0 and ground == 0
    assert [str(w.message) for w in leaked] == []
    pillow = [line for line in err.splitlines() if "Pillow warned" in line]
    assert len(pillow) == 1 and "pal0.png and 1 more file(s)" in pillow[0] and "Palette images" in pillow[0]
    assert sum("padded.dcm: pydicom warned" in line and "padding" in line for line in err.splitlines()) == 1
    assert "7 images" in err  # both kinds were used, as read
    assert sum("Pillow warned" in line for line in ground_err.splitlines()) == 1


def test_a_folder_with_no_readable_image_is_an_error_that_counts_them(tiny_run, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "junk.jpg").write_bytes(b"not a jpeg")
    code, out, err = _search(tiny_run, capsys, bad)
    assert code == 1 and out == ""
    assert "skipped empty.png: file is empty" in err and "skipped junk.jpg: cannot decode image" in err
    assert "none of the 2 image file(s) could be read" in _error_line(err)
    # the advice fits search: nothing to prepare, nothing to download
    assert "prepare" not in err and "download_openi" not in err


def test_entries_that_are_no_file_are_counted_skips(tiny_run, folder, capsys):
    os.mkfifo(folder / "pipe.png")
    (folder / "gone.png").symlink_to(folder / "nowhere.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "inner.png").mkdir()  # not an image itself, but its images are searched
    shutil.copy(folder / "img0.png", folder / "inner.png" / "x.png")
    code, _, err = _search(tiny_run, capsys, folder)
    assert code == 0
    assert "5 images (0 reused, 5 embedded, 0 gone); 4 unreadable file(s) skipped" in err
    assert "skipped pipe.png: not a regular file (a FIFO)" in err
    assert "skipped inner.png: not a regular file (a folder)" in err
    assert "skipped gone.png: a symbolic link to" in err and "which does not exist" in err
    assert "skipped loop.png: a symbolic link loop" in err
