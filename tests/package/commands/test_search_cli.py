"""`search` and `ground` through the real command line: rankings equal to direct scoring, an index
that re-embeds only what changed, counted skips, and one-line errors without tracebacks."""

import os
import shutil
import subprocess
import sys

import pytest

from joimternet_lite.cli import main
from joimternet_lite.commands.search import INDEX_NAME, ImageIndex
from joimternet_lite.inference import ImageTextInference

QUERY = "Small left pleural effusion."


@pytest.fixture(scope="module")
def engine(tiny_run):
    return ImageTextInference.from_pretrained(tiny_run[0], device="cpu")


@pytest.fixture
def folder(tiny_run, tmp_path):
    """Six SynthCXR images (one in a subfolder), an empty PNG, a truncated JPEG and a text file."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    pngs = sorted((tiny_run[1] / "images").rglob("*.png"))[:6]
    for k, png in enumerate(pngs):
        shutil.copy(png, images / ("sub" if k == 0 else "") / f"img{k}.png")
    (images / "empty.png").write_bytes(b"")
    (images / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    (images / "notes.txt").write_text("not an image")
    return images


def _search(run, folder, capsys, *extra):
    code = main(["search", "--model", str(run), "--images", str(folder), "--query", QUERY, "--device", "cpu", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return [line.split("\t") for line in out.splitlines()], err


def test_search_ranks_as_direct_scoring_and_lists_skips(tiny_run, folder, engine, capsys):
    rows, err = _search(tiny_run[0], folder, capsys, "--top", "4")
    good = sorted(p for p in folder.rglob("*.png") if p.stat().st_size)
    direct = engine.similarity(good, [QUERY])[:, 0]
    want = [(str(good[i]), float(direct[i])) for i in direct.argsort(descending=True)[:4].tolist()]
    assert [r[0] for r in rows] == [w[0] for w in want]
    assert [float(r[1]) for r in rows] == pytest.approx([w[1] for w in want], abs=1e-4)
    assert "6 images (0 reused, 6 embedded, 0 gone); 2 unreadable file(s) skipped" in err
    assert "skipped cut.jpg: " in err and "skipped empty.png: " in err and "empty (0 bytes)" in err
    assert "embedding images" in err  # the progress bar
    assert (folder / INDEX_NAME).exists()


def test_second_query_embeds_only_new_or_changed_files(tiny_run, folder, capsys, monkeypatch):
    _search(tiny_run[0], folder, capsys)
    embedded = []
    original = ImageTextInference.encode_images
    monkeypatch.setattr(ImageTextInference, "encode_images",
                        lambda self, batch: embedded.append(batch.shape[0]) or original(self, batch))
    _, err = _search(tiny_run[0], folder, capsys)
    assert "(6 reused, 0 embedded, 0 gone)" in err and embedded == []
    changed = folder / "img2.png"
    changed.write_bytes(changed.read_bytes())
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    (folder / "img3.png").unlink()
    shutil.copy(folder / "img4.png", folder / "sub" / "new.png")
    _, err = _search(tiny_run[0], folder, capsys)
    assert "6 images (4 reused, 2 embedded, 1 gone)" in err and sum(embedded) == 2


def test_index_goes_where_asked_and_belongs_to_one_model(tiny_run, folder, capsys, tmp_path, engine):
    index = tmp_path / "elsewhere" / "my.safetensors"
    _search(tiny_run[0], folder, capsys, "--index", str(index), "--scoring", "combined", "--precision", "bf16")
    assert index.exists() and not (folder / INDEX_NAME).exists()
    from joimternet_lite.commands.search import model_fingerprint

    bf16 = ImageTextInference(engine.model, device="cpu", precision="bf16")
    assert ImageIndex.load(index, model_fingerprint(bf16)) is not None
    assert ImageIndex.load(index, model_fingerprint(engine)) is None  # fp32 rows are not bf16 rows
    assert ImageIndex.load(index, "another model") is None


def test_search_by_image_ranks_manifest_reports(tiny_run, engine, capsys):
    run, synth = tiny_run
    image = sorted((synth / "images").rglob("*.png"))[0]
    assert main(["search", "--model", str(run), "--image", str(image), "--manifest", str(synth), "--top", "5",
                 "--device", "cpu"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    from joimternet_lite.data.schema import load_manifest

    manifest = load_manifest(synth)
    scores = engine.similarity([image], manifest["text"])[0]
    best = scores.argsort(descending=True)[:5].tolist()
    assert [r[0] for r in rows] == [manifest["study_id"][i] for i in best]
    assert [r[2] for r in rows] == [manifest["text"][i] for i in best]


def test_ground_writes_the_word_maps(tiny_run, capsys, tmp_path):
    image = sorted((tiny_run[1] / "images").rglob("*.png"))[0]
    out = tmp_path / "maps.png"
    assert main(["ground", "--model", str(tiny_run[0]), "--image", str(image), "--text", QUERY, "--out", str(out),
                 "--device", "cpu"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "of 4 words written" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["search", "--images", "{folder}", "--query", " ... "], "error: --query ' ... ' has no words"),
    (["search", "--images", "{tmp}/nowhere", "--query", QUERY], "nowhere: no such folder"),
    (["search", "--images", "{folder}"], "--images needs --query"),
    (["search", "--image", "{folder}/img1.png"], "--image needs --manifest"),
    (["search", "--image", "{folder}/empty.png", "--manifest", "{tmp}"], "empty.png: file is empty"),
    (["search", "--image", "{folder}/img1.png", "--manifest", "{tmp}"], "no manifest found"),
    (["ground", "--image", "{tmp}/missing.png", "--text", QUERY, "--out", "{tmp}/o.png"], "missing.png: file not found"),
    (["ground", "--image", "{folder}/empty.png", "--text", QUERY, "--out", "{tmp}/o.png"], "empty.png: file is empty"),
    (["ground", "--image", "{folder}/img1.png", "--text", "", "--out", "{tmp}/o.png"], "--text '' has no words"),
])
def test_bad_input_is_one_error_line(tiny_run, folder, tmp_path, capsys, argv, message):
    argv = [a.format(folder=folder, tmp=tmp_path) for a in argv]
    assert main([*argv[:1], "--model", str(tiny_run[0]), *argv[1:]]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_top_below_one_is_a_usage_error(tiny_run, folder, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["search", "--model", str(tiny_run[0]), "--images", str(folder), "--query", QUERY, "--top", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --top: 0 is not a positive number" in err and "Traceback" not in err


@pytest.mark.slow  # a fresh interpreter imports torch and transformers: about 15 s on 2 cores
def test_a_folder_that_is_not_a_model_fails_cleanly_from_the_shell(folder, tmp_path):
    done = subprocess.run([sys.executable, "-m", "joimternet_lite", "search", "--model", str(tmp_path), "--images",
                           str(folder), "--query", QUERY], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {tmp_path}: not a model folder") and "Traceback" not in done.stderr
