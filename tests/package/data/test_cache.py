"""build_cache / ImageCache: letterboxing, idempotence, resume, verification, skips (notebook 12)."""

import json

import numpy as np
import pytest
from PIL import Image

from joimternet_lite.data.cache import ImageCache, build_cache, letterbox
from joimternet_lite.data.schema import empty_labels, save_manifest
from joimternet_lite.data.skips import TooManySkipsError


def write_manifest(root, images: dict[str, np.ndarray]):
    (root / "img").mkdir(parents=True, exist_ok=True)
    records = []
    for name, pixels in images.items():
        if not (root / "img" / name).exists():  # keep mtimes: a re-save counts as a changed source
            Image.fromarray(pixels).save(root / "img" / name)
        records.append({"study_id": name, "image_paths": [f"img/{name}"], "views": ["frontal"], "findings": "",
                        "impression": "", "text": "x", "labels": empty_labels(), "split": "train"})
    save_manifest(records, root, source="test")


def test_letterbox_keeps_aspect_and_pads_black():
    wide = letterbox(np.ones((20, 40), np.float32), 16)  # 2:1 -> 16 x 8 band in the middle
    expected = np.zeros((16, 16), np.uint8)
    expected[4:12] = 255
    np.testing.assert_array_equal(wide, expected)
    tall = letterbox(np.ones((40, 10), np.float32), 16)
    assert tall[:, 6:10].min() == 255 and tall[:, :6].max() == 0 and tall[:, 10:].max() == 0


def test_build_get_and_idempotent_rerun(tmp_path):
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    write_manifest(tmp_path / "m", {"a.png": ramp, "b.png": ramp.T.copy(), "c.png": np.full((30, 60), 99, np.uint8)})
    first = build_cache(tmp_path / "m", tmp_path / "c", size=32, workers=2, progress=False)
    assert (first["decoded"], first["reused"], first["skipped"]) == (3, 0, 0)
    cache = ImageCache(tmp_path / "c")
    a = cache.get(tmp_path / "m" / "img" / "a.png")
    np.testing.assert_array_equal(a, np.asarray(Image.fromarray(ramp).resize((32, 32), Image.BILINEAR, reducing_gap=2.0)))
    assert cache.has(tmp_path / "m" / "img" / "c.png") and not cache.has(tmp_path / "nope.png")
    second = build_cache(tmp_path / "m", tmp_path / "c", size=32, workers=1, progress=False)
    assert (second["decoded"], second["reused"]) == (0, 3)


def test_resume_changed_source_and_corrupt_row_are_redone(tmp_path):
    imgs = {f"{i}.png": np.full((20, 20), i * 10, np.uint8) for i in range(4)}
    write_manifest(tmp_path / "m", dict(list(imgs.items())[:2]))
    build_cache(tmp_path / "m", tmp_path / "c", size=8, workers=1, progress=False)  # an "interrupted" first run
    write_manifest(tmp_path / "m", imgs)
    resumed = build_cache(tmp_path / "m", tmp_path / "c", size=8, workers=1, progress=False)
    assert (resumed["reused"], resumed["decoded"]) == (2, 2)
    Image.fromarray(np.full((20, 20), 7, np.uint8)).save(tmp_path / "m" / "img" / "0.png")  # source changed
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    row = index["entries"][str((tmp_path / "m" / "img" / "1.png").resolve())]["row"]
    data = np.memmap(tmp_path / "c" / "images.u8", np.uint8, "r+", shape=(index["capacity"], 8, 8))
    data[row] = 255  # cached row damaged
    data.flush()
    again = build_cache(tmp_path / "m", tmp_path / "c", size=8, workers=1, progress=False)
    assert (again["reused"], again["decoded"]) == (2, 2)
    cache = ImageCache(tmp_path / "c")
    assert cache.get(tmp_path / "m" / "img" / "0.png").max() == 7
    assert cache.get(tmp_path / "m" / "img" / "1.png").max() == 10


def test_bad_images_are_counted_skips_and_threshold(tmp_path):
    write_manifest(tmp_path / "m", {"ok.png": np.zeros((8, 8), np.uint8), "bad.png": np.zeros((8, 8), np.uint8)})
    (tmp_path / "m" / "img" / "bad.png").write_bytes(b"\x89PNG broken")
    raw = (tmp_path / "m" / "img" / "bad.png").read_bytes()
    with pytest.raises(TooManySkipsError, match="skipped 1 of 2 images"):
        build_cache(tmp_path / "m", tmp_path / "c", size=8, workers=1, progress=False, max_skip_fraction=0.1)
    summary = build_cache(tmp_path / "m", tmp_path / "c", size=8, workers=1, progress=False, max_skip_fraction=0.5)
    assert summary["skips_by_kind"] == {"bad_image": 1} and summary["reused"] == 1
    assert "bad.png" in (tmp_path / "c" / "skips.jsonl").read_text()
    assert (tmp_path / "m" / "img" / "bad.png").read_bytes() == raw  # raw data never modified
