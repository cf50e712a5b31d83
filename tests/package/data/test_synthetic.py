"""SynthCXR: determinism, the recorded output digest, label/text agreement, masks in anatomy, word spans,
manifest round trip, and output folders (nothing SynthCXR did not write is lost)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from joimternet_lite import errors
from joimternet_lite.cli import main
from joimternet_lite.config import Config
from joimternet_lite.data.dataset import load_training_data
from joimternet_lite.data.schema import CHEXPERT_LABELS, load_manifest
from joimternet_lite.data.synthcxr import (
    Difficulty,
    generate_study,
    generate_synthcxr,
    has_lateral,
    render_lateral,
    split_file_payload,
)
from joimternet_lite.data.tokenizer import MAX_LENGTH, build_tokenizer, split_words

SIZE = 128
N_STUDIES = 120
SPLIT_FILE = Path(__file__).resolve().parents[3] / "data_scripts" / "splits" / "synthcxr_demo.json"

# An independent, deliberately simple reading of the reports (not the generator's templates):
# words that name each label, and sentence-level negation / hedging cues.
KEYWORDS = {
    "Atelectasis": r"atelectasis", "Cardiomegaly": r"\b(cardiomegaly|heart|cardiac)\b",
    "Consolidation": r"consolidation", "Edema": r"edema", "Enlarged Cardiomediastinum": r"mediastin",
    "Fracture": r"fracture", "Lung Lesion": r"\b(nodules?|mass)\b", "Lung Opacity": r"opacit",
    "Pleural Effusion": r"effusion", "Pneumonia": r"pneumonia", "Pneumothorax": r"pneumothorax",
    "Support Devices": r"\b(tube|line|catheter|pacemaker)\b",
}
NEGATION = re.compile(r"\b(no|without|normal|negative|unremarkable)\b")
HEDGE = re.compile(r"\b(possible|questionable|cannot be excluded|may be)\b")


def _sentences(text: str) -> list[str]:
    return [s.strip().lower() for s in re.split(r"(?<=\.)\s+", text) if s.strip()]


def _reading(text: str, label: str) -> set[str]:
    """How the report mentions ``label``: a subset of {"positive", "negated", "hedged"}."""
    kinds = set()
    for s in _sentences(text):
        if re.search(KEYWORDS[label], s):
            kinds.add("negated" if NEGATION.search(s) else "hedged" if HEDGE.search(s) else "positive")
    return kinds


@pytest.fixture(scope="module")
def studies():
    return [generate_study(i, seed=3, image_size=SIZE) for i in range(N_STUDIES)]


def test_same_seed_gives_identical_studies_and_other_seed_differs():
    a, b = generate_study(7, seed=1, image_size=SIZE), generate_study(7, seed=1, image_size=SIZE)
    assert np.array_equal(a.image, b.image) and a.text == b.text and a.labels == b.labels
    assert all(np.array_equal(m, n) for m, n in zip(a.masks, b.masks, strict=True))
    others = [generate_study(7, seed=s, image_size=SIZE) for s in (2, 3)]
    assert all(not np.array_equal(a.image, o.image) for o in others)


def test_image_is_grey_uint8_of_requested_size_and_size_is_checked():
    study = generate_study(0, image_size=160)
    assert study.image.shape == (160, 160) and study.image.dtype == np.uint8
    assert 10 < study.image.mean() < 245  # neither blank nor saturated
    with pytest.raises(ValueError, match="128..1024"):
        generate_study(0, image_size=64)


def test_laterality_right_lung_is_on_the_image_left():
    anatomy = generate_study(0, image_size=SIZE).anatomy
    xs_right = np.nonzero(anatomy["lung_right"])[1]
    xs_left = np.nonzero(anatomy["lung_left"])[1]
    assert xs_right.mean() < SIZE / 2 < xs_left.mean()


def test_every_label_agrees_with_an_independent_reading_of_the_text(studies):
    seen = {1: 0, 0: 0, -1: 0, None: 0}
    for st in studies:
        for label in KEYWORDS:
            value, kinds = st.labels[label], _reading(st.text, label)
            seen[value] += 1
            if value == 1:
                assert "positive" in kinds, (st.study_id, label, st.text)
            elif value == -1:
                assert kinds == {"hedged"}, (st.study_id, label, st.text)
            elif value == 0:
                assert kinds == {"negated"}, (st.study_id, label, st.text)
            else:
                assert not kinds, (st.study_id, label, st.text)
        pathologies = [st.labels[n] for n in CHEXPERT_LABELS if n not in ("No Finding", "Support Devices")]
        assert st.labels["No Finding"] == (1 if not any(v in (1, -1) for v in pathologies) else None)
    assert min(seen.values()) > 0, seen  # every kind of label occurs


def test_normal_reports_repeat_and_abnormal_ones_vary(studies):
    normal = [s.text for s in studies if not s.findings_gt]
    abnormal = [s.text for s in studies if s.findings_gt]
    assert len(normal) > 15 and len(set(normal)) < len(normal) / 2
    assert len(set(abnormal)) > 0.9 * len(abnormal)


def test_finding_masks_lie_in_the_anatomy_they_belong_to(studies):
    checked = 0
    for st in studies:
        a = st.anatomy
        for gt, mask in zip(st.findings_gt, st.masks, strict=True):
            assert mask.any(), (st.study_id, gt["type"])
            if gt["label"] == "Support Devices":
                allowed = a["body"]
            elif gt["type"] == "enlarged_cardiomediastinum":
                allowed = a["mediastinum"]
            elif gt["type"] == "cardiomegaly":
                allowed = a["heart"]
            else:
                allowed = a["lung_right"] if gt["side"] == "right" else a["lung_left"] if gt["side"] == "left" else a["lungs"]
            assert not (mask & ~allowed).any(), (st.study_id, gt["type"], gt["side"])
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = gt["box"]
            assert (x0, y0, x1, y1) == (xs.min() / SIZE, ys.min() / SIZE, (xs.max() + 1) / SIZE, (ys.max() + 1) / SIZE)
            checked += 1
    assert checked > 50


def test_spans_and_word_indices_name_each_finding(studies):
    texts = [s.text for s in studies]
    tok = build_tokenizer(texts, min_frequency=1)
    for st in studies:
        words = split_words(st.text)
        ids = tok(st.text)["input_ids"]
        assert len(ids) < MAX_LENGTH
        for gt in st.findings_gt:
            p0, p1 = gt["phrase_span"]
            h0, h1 = gt["head_span"]
            head = st.text[h0:h1]
            assert p0 <= h0 < h1 <= p1 and p1 <= len(st.findings)  # the phrase is in FINDINGS
            assert re.fullmatch(r"[a-z]+", head.lower()) and head.lower() in KEYWORDS_HEADS
            assert gt["head_words"] == [k for k, (_, (s, e)) in enumerate(words) if (s, e) == (h0, h1)]
            assert [words[k][0] for k in gt["phrase_words"]] == [w for w, _ in split_words(st.text[p0:p1])]
            for k in gt["head_words"]:
                assert tok.convert_ids_to_tokens(ids[k + 1]) == head.lower()


KEYWORDS_HEADS = {"effusion", "pneumothorax", "consolidation", "pneumonia", "opacity", "nodule", "mass",
                  "atelectasis", "edema", "cardiomegaly", "enlargement", "mediastinum", "silhouette",
                  "tube", "catheter", "line", "pacemaker"}


def test_contrast_knob_changes_how_visible_a_finding_is():
    index = next(i for i in range(200) if any(g["type"] == "effusion" for g in generate_study(i, 5, SIZE).findings_gt))
    faint = generate_study(index, 5, SIZE, Difficulty(contrast=0.2))
    strong = generate_study(index, 5, SIZE, Difficulty(contrast=1.5))
    k = next(k for k, g in enumerate(faint.findings_gt) if g["type"] == "effusion")
    mask = faint.masks[k]
    gain = strong.image[mask].astype(float).mean() - faint.image[mask].astype(float).mean()
    assert gain > 10
    assert abs(strong.image[~faint.anatomy["body"]].astype(float).mean() - faint.image[~faint.anatomy["body"]].astype(float).mean()) < 1
    with pytest.raises(ValueError, match="contrast"):
        Difficulty(contrast=0)


def test_visibility_turns_one_finding_type_up_or_down_and_nothing_else():
    has = lambda st, kind: any(g["type"] == kind for g in st.findings_gt)  # noqa: E731
    index = next(i for i in range(300) if has(generate_study(i, 5, SIZE), "effusion"))
    other = next(i for i in range(300) if generate_study(i, 5, SIZE).findings_gt
                 and not has(generate_study(i, 5, SIZE), "effusion"))
    dim = Difficulty(visibility={**Difficulty().visibility, "effusion": 0.2})
    bright = Difficulty(visibility={**Difficulty().visibility, "effusion": 2.0})
    faint, strong = generate_study(index, 5, SIZE, dim), generate_study(index, 5, SIZE, bright)
    mask = faint.masks[next(k for k, g in enumerate(faint.findings_gt) if g["type"] == "effusion")]
    assert strong.image[mask].astype(float).mean() - faint.image[mask].astype(float).mean() > 10
    # a study without an effusion is drawn pixel for pixel the same
    assert np.array_equal(generate_study(other, 5, SIZE, dim).image, generate_study(other, 5, SIZE, bright).image)
    with pytest.raises(ValueError, match="unknown finding types"):
        Difficulty(visibility={"effusions": 1.0})
    with pytest.raises(ValueError, match="visibility"):
        Difficulty(visibility={"effusion": 0.0})


def test_visibility_of_the_heart_scales_its_enlargement():
    index = next(i for i in range(300) if any(g["type"] == "cardiomegaly" for g in generate_study(i, 5, SIZE).findings_gt))
    areas = [generate_study(index, 5, SIZE, Difficulty(visibility={"cardiomegaly": v})).anatomy["heart"].sum()
             for v in (0.1, 1.0, 2.0)]
    assert areas[0] < areas[1] < areas[2]


def test_dataset_on_disk_round_trips_and_does_not_depend_on_workers(tmp_path):
    one = generate_synthcxr(tmp_path / "a", num_studies=6, image_size=SIZE, seed=4, workers=1, progress=False)
    two = generate_synthcxr(tmp_path / "b", num_studies=6, image_size=SIZE, seed=4, workers=2, progress=False)
    assert one.to_list() == two.to_list()
    loaded = load_manifest(tmp_path / "a")
    assert loaded.to_list() == one.to_list()
    assert sorted(loaded["split"]) == ["train"] * 5 + ["validate"]  # round(0.8 * 6), round(0.1 * 6), rest
    for record in loaded:
        study = generate_study(int(record["study_id"].split("-")[1]), seed=4, image_size=SIZE)
        assert record["text"] == study.text and record["views"] == ["frontal"]
        assert record["labels"] == study.labels
        for name in ("a", "b"):
            image = np.asarray(Image.open(tmp_path / name / record["image_paths"][0]))
            assert np.array_equal(image, study.image)
        for gt, mask in zip(record["findings_gt"], study.masks, strict=True):
            assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / gt["mask_path"])), mask)
    meta = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert meta["source"] == "synthcxr" and meta["num_studies"] == 6


def test_published_demo_split_matches_the_code():
    published = json.loads(SPLIT_FILE.read_text())
    assert published == split_file_payload()
    ids = published["splits"]
    assert [len(ids[s]) for s in ("train", "validate", "test")] == [1600, 200, 200]
    assert len(set(sum(ids.values(), []))) == 2000


# Recorded from the generator before it was split into modules: any change to the drawing, the
# sampling order, the report wording or the files written changes these digests.
DATASET_DIGEST = "db3b96f0a3090157d3160e0a229610889ecb701cc57ed90b6df3f3d6694eb8fe"
LATERAL_DIGEST = "5fe7ba49020e281b657fbd6889cd7cb992969bea0c60b2f9f2ddd5c48349046f"


def _dataset_digest(root: Path) -> str:
    """sha256 over every image and mask (name and bytes, sorted), manifest.json and the records."""
    h = hashlib.sha256()
    for sub in ("images", "masks"):
        for path in sorted((root / sub).iterdir()):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    h.update((root / "manifest.json").read_bytes())
    h.update(json.dumps(load_manifest(root).to_list(), sort_keys=True).encode())
    return h.hexdigest()


def test_a_fixed_seed_writes_the_recorded_dataset_bit_for_bit(tmp_path):
    generate_synthcxr(tmp_path, num_studies=20, image_size=SIZE, seed=11, workers=1, progress=False)
    assert _dataset_digest(tmp_path) == DATASET_DIGEST


def test_lateral_films_are_the_recorded_ones():
    h = hashlib.sha256()
    for i in range(20):
        h.update(render_lateral(i, 0, SIZE).tobytes())
        h.update(bytes([has_lateral(f"synth-{i:06d}")]))
    assert h.hexdigest() == LATERAL_DIGEST


# Writing into a folder that holds other files: nothing SynthCXR did not write may be lost.


def _users_file(folder: Path) -> Path:
    path = folder / "images" / "mine.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(path)
    return path


def _synth_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for sub in ("images", "masks") for p in (root / sub).glob("synth-*"))


def test_generate_refuses_a_folder_of_other_files_and_keeps_them(tmp_path, capsys):
    mine = _users_file(tmp_path / "out")
    kept = mine.read_bytes()
    args = ["generate", "--out", str(tmp_path / "out"), "--num-studies", "4", "--image-size", str(SIZE)]
    assert main(args) == errors.EXIT_USER_ERROR
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(tmp_path / "out") in line and "--overwrite" in line
    assert mine.read_bytes() == kept and sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["images", "mine.png"]
    with pytest.raises(errors.UserError, match="overwrite=True"):
        generate_synthcxr(tmp_path / "out", num_studies=4, image_size=SIZE, workers=1, progress=False)
    # --overwrite writes SynthCXR's files beside the user's and deletes nothing
    assert main([*args, "--overwrite"]) == errors.EXIT_OK
    assert mine.read_bytes() == kept and len(load_manifest(tmp_path / "out")) == 4
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == [
        "mine.png", *(f"synth-{i:06d}.png" for i in range(4))]


def test_train_on_a_folder_of_other_files_names_data_root_and_keeps_them(tmp_path):
    mine = _users_file(tmp_path / "data")
    cfg = Config()
    cfg.data.root, cfg.data.num_studies, cfg.data.synth_image_size = str(tmp_path / "data"), 4, SIZE
    assert cfg.data.source == "synthetic"
    with pytest.raises(errors.UserError, match="data.root") as err:
        load_training_data(cfg)
    assert str(tmp_path / "data") in str(err.value)
    assert mine.exists() and not (tmp_path / "data" / "manifest.json").exists()


def test_regenerating_replaces_only_the_files_the_old_dataset_lists(tmp_path):
    root = tmp_path / "synth"
    generate_synthcxr(root, num_studies=6, image_size=SIZE, seed=1, workers=1, progress=False)
    mine = _users_file(root / "extra")  # a user's folder inside the dataset
    (root / "images" / "notes.txt").write_text("mine")
    generate_synthcxr(root, num_studies=4, image_size=SIZE, seed=2, workers=1, progress=False)
    assert mine.exists() and (root / "images" / "notes.txt").read_text() == "mine"
    listed = [p for r in load_manifest(root) for p in r["image_paths"] + [g["mask_path"] for g in r["findings_gt"]]]
    assert _synth_files(root) == sorted(listed)  # studies 4 and 5 of the old dataset are gone
    fresh = tmp_path / "fresh"
    generate_synthcxr(fresh, num_studies=4, image_size=SIZE, seed=2, workers=1, progress=False)
    assert all((root / p).read_bytes() == (fresh / p).read_bytes() for p in listed)


def test_regenerating_refuses_to_replace_a_file_the_old_dataset_does_not_list(tmp_path):
    root = tmp_path / "synth"
    generate_synthcxr(root, num_studies=2, image_size=SIZE, workers=1, progress=False)
    before = _synth_files(root)
    stranger = root / "images" / "synth-000003.png"
    stranger.write_bytes(b"not ours")
    with pytest.raises(errors.UserError, match="synth-000003.png"):
        generate_synthcxr(root, num_studies=4, image_size=SIZE, workers=1, progress=False)
    assert stranger.read_bytes() == b"not ours" and len(load_manifest(root)) == 2
    assert _synth_files(root) == sorted([*before, "images/synth-000003.png"])


def test_a_run_cut_off_while_moving_files_can_be_repeated(tmp_path, monkeypatch):
    from joimternet_lite.data.synthcxr import writer

    real_replace, moves = writer.os.replace, []

    def cut_off(src, dst):
        if len(moves) == 3:
            raise KeyboardInterrupt
        moves.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", cut_off)
    with pytest.raises(KeyboardInterrupt):
        generate_synthcxr(tmp_path / "synth", num_studies=4, image_size=SIZE, workers=1, progress=False)
    monkeypatch.undo()
    assert len(moves) == 3 and not (tmp_path / "synth" / "manifest.json").exists()
    generate_synthcxr(tmp_path / "synth", num_studies=4, image_size=SIZE, workers=1, progress=False)
    generate_synthcxr(tmp_path / "fresh", num_studies=4, image_size=SIZE, workers=1, progress=False)
    assert _synth_files(tmp_path / "synth") == _synth_files(tmp_path / "fresh")
    assert sorted(p.name for p in (tmp_path / "synth").iterdir()) == sorted(p.name for p in (tmp_path / "fresh").iterdir())
