"""StudyDataset / collate / DataLoader on a tiny manifest written by the test."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from joimternet_lite.config import Config
from joimternet_lite.data.dataset import Collate, make_dataloader, make_dataset
from joimternet_lite.data.schema import (
    CHEXPERT_LABELS,
    ManifestError,
    empty_labels,
    load_manifest,
    save_manifest,
)
from joimternet_lite.data.tokenizer import build_tokenizer


def _record(i, views, split="train", text="heart size normal"):
    labels = empty_labels()
    labels["Cardiomegaly"] = 1 if i % 2 else 0
    return {"study_id": f"s{i}", "image_paths": [f"images/{i}_{k}.png" for k in range(len(views))],
            "views": views, "findings": text, "impression": "", "text": text, "labels": labels, "split": split}


@pytest.fixture
def root(tmp_path):
    records = [_record(0, ["frontal", "lateral"]), _record(1, ["lateral", "frontal", "frontal"]),
               _record(2, ["frontal"], split="test", text="small left effusion"), _record(3, ["lateral"])]
    (tmp_path / "images").mkdir()
    for r in records:
        for k, p in enumerate(r["image_paths"]):
            value = 255 if r["views"][k] == "frontal" else 0  # frontal white, lateral black
            Image.fromarray(np.full((40, 32), value, np.uint8)).save(tmp_path / p)
    # study 1's second frontal image is corrupt: truncated PNG bytes
    (tmp_path / "images/1_2.png").write_bytes((tmp_path / "images/1_1.png").read_bytes()[:30])
    save_manifest(records, tmp_path, source="test")
    return tmp_path


def _cfg(root):
    cfg = Config()
    cfg.data.root = str(root)
    cfg.data.image_size = 16
    cfg.train.batch_size = 2
    return cfg


def test_eval_item_is_the_first_frontal_image_normalised(root):
    ds = make_dataset(_cfg(root), load_manifest(root), split="train", train=False)
    item = ds[0]
    assert item["image"].shape == (1, 16, 16)
    assert torch.allclose(item["image"], torch.ones(1, 16, 16))  # white frontal -> +1
    assert item["labels"][CHEXPERT_LABELS.index("Cardiomegaly")] == 0
    assert math.isnan(item["labels"][0])


def test_study_without_frontal_image_is_excluded_and_listed_not_skipped(root):
    ds = make_dataset(_cfg(root), load_manifest(root), split="train", train=False)
    assert len(ds) == 2 and [ds[i]["study_id"] for i in range(2)] == ["s0", "s1"]
    assert ds.excluded == [("s3", "no frontal image")]
    assert ds.exclusion_note("training studies").startswith("1 of 3 training studies have no frontal image")
    cfg = _cfg(root)
    cfg.data.frontal_only = False  # laterals allowed: nothing is left out, s3 reads its lateral (black) film
    every = make_dataset(cfg, load_manifest(root), split="train", train=False)
    assert every.excluded == [] and torch.all(every[2]["image"] == -1)


def test_corrupt_image_is_skipped_with_its_name(root):
    ds = make_dataset(_cfg(root), load_manifest(root), split="train", train=True)
    reasons = set()
    for _ in range(30):  # training draws one of the two frontal images at random
        out = ds[1]
        if "skipped" in out:
            reasons.add(out["skipped"][1])
    assert reasons and all("1_2.png" in r for r in reasons)


def test_collate_pads_and_reports_skips(root):
    manifest = load_manifest(root)
    tok = build_tokenizer(manifest["text"], min_frequency=1)
    ds = make_dataset(_cfg(root), manifest, split=None, train=False)
    batch = Collate(tok)([ds[0], {"skipped": ("s9", "unreadable")}, ds[2]])
    assert batch["images"].shape == (2, 1, 16, 16)
    assert batch["study_ids"] == ["s0", "s2"]
    assert batch["skipped"] == [("s9", "unreadable")]
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"].sum(1).tolist() == [5, 5]
    assert batch["index"].tolist() == [0, 2]


def test_dataloader_drops_last_in_training(root):
    manifest = load_manifest(root)
    tok = build_tokenizer(manifest["text"], min_frequency=1)
    cfg = _cfg(root)
    ds = make_dataset(cfg, manifest, split="train", train=False)
    loader = make_dataloader(ds, tok, cfg, train=True)
    assert len(loader) == 1  # 3 studies, batch 2, last dropped
    order = [b["study_ids"] for b in loader]
    assert order == [b["study_ids"] for b in make_dataloader(ds, tok, cfg, train=True)]  # fixed by the seed


def test_old_schema_manifest_is_refused_with_the_fix(root):
    meta = (root / "manifest.json").read_text().replace('"schema_version": 2', '"schema_version": 1')
    (root / "manifest.json").write_text(meta)
    with pytest.raises(ManifestError, match="Re-run the prepare command"):
        load_manifest(root)
