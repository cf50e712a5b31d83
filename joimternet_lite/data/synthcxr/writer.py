"""Write SynthCXR to disk: the split of study ids, the PNG files and the manifest.

Taught in notebooks 01 and 02. On disk (:func:`generate_synthcxr`): ``images/<id>.png`` (8-bit
grey), one 1-bit PNG per finding mask ``masks/<id>_<k>.png``, and the manifest
(``schema.save_manifest``, ``source`` = ``synthcxr``).

The output folder may hold other files; none of them is lost. A folder that is neither empty nor
a SynthCXR dataset is refused (:class:`SynthCXRFolderError`) unless ``overwrite=True``.
Regenerating over a SynthCXR dataset replaces only the files its manifest lists: files of the new
dataset are moved in from a staging folder, then the old dataset's files the new one does not
have are deleted, then the manifest is saved. While files move, ``.synthcxr-pending.json`` lists
every file this run may replace, so a run that is cut off can be repeated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from tqdm import tqdm

from ...atomic import atomic_write_text
from ...errors import UserError
from ..schema import CHEXPERT_LABELS, SPLITS, save_manifest
from .findings import Difficulty
from .primitives import check_size
from .study import generate_study, study_id

DEMO_NUM_STUDIES, DEMO_SEED = 2000, 0
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SOURCE = "synthcxr"                   # the manifest's source: marks a folder as a SynthCXR dataset
STAGING_PREFIX = ".synthcxr-"         # this writer's own temporary entries in the output folder
PENDING = ".synthcxr-pending.json"    # files a run is moving in (see the module docstring)


class SynthCXRFolderError(UserError, ValueError):
    """The output folder holds files SynthCXR did not write. ``override`` says how the caller's
    user writes there anyway (a flag, a config key), so each front end names its own."""

    def __init__(self, folder: Path, problem: str, override: str = "pass overwrite=True") -> None:
        self.folder, self.problem = folder, problem
        super().__init__(f"{folder}: {problem}. Choose an empty or new folder, or {override} to write into it "
                         "anyway (SynthCXR replaces the files it writes and deletes nothing else)")


def findings_gt_features() -> list:
    """``datasets`` feature for the ``findings_gt`` column (a list of per-finding dicts)."""
    return [{
        "type": datasets.Value("string"), "label": datasets.Value("string"), "certainty": datasets.Value("int8"),
        "side": datasets.Value("string"), "zone": datasets.Value("string"),
        "box": [datasets.Value("float32")], "mask_path": datasets.Value("string"),
        "phrase_span": [datasets.Value("int32")], "head_span": [datasets.Value("int32")],
        "phrase_words": [datasets.Value("int32")], "head_words": [datasets.Value("int32")],
    }]


def assign_splits(num_studies: int, seed: int, fractions: tuple[float, ...] = DEFAULT_SPLIT_FRACTIONS) -> list[str]:
    """Split name per study index: exact counts, a permutation fixed by ``(seed, num_studies)``."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split_fractions={fractions} must be three non-negative numbers summing to 1")
    n_train = int(round(fractions[0] * num_studies))
    n_val = int(round(fractions[1] * num_studies))
    order = np.random.default_rng([seed, num_studies, 0x5EED]).permutation(num_studies)
    splits = [""] * num_studies
    for rank, i in enumerate(order):
        splits[i] = SPLITS[0] if rank < n_train else SPLITS[1] if rank < n_train + n_val else SPLITS[2]
    return splits


def split_file_payload(num_studies: int = DEMO_NUM_STUDIES, seed: int = DEMO_SEED,
                       fractions: tuple[float, ...] = DEFAULT_SPLIT_FRACTIONS) -> dict:
    """The published split: study ids per split and the sha256 of their canonical JSON."""
    splits = assign_splits(num_studies, seed, fractions)
    ids = {name: [study_id(i) for i, s in enumerate(splits) if s == name] for name in SPLITS}
    digest = hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()
    return {"dataset": "synthcxr", "num_studies": num_studies, "seed": seed, "fractions": list(fractions),
            "sha256": digest, "splits": ids}


def _write_study(index: int, seed: int, image_size: int, difficulty: Difficulty, staging: str) -> dict:
    """Worker: draw one study, write its PNGs into ``staging``, return its manifest record."""
    study = generate_study(index, seed, image_size, difficulty)
    Image.fromarray(study.image).save(os.path.join(staging, "images", f"{study.study_id}.png"), compress_level=1)
    for k, (mask, gt) in enumerate(zip(study.masks, study.findings_gt, strict=True)):
        gt["mask_path"] = f"masks/{study.study_id}_{k}.png"
        Image.fromarray(mask).save(os.path.join(staging, gt["mask_path"]), optimize=False)
    return {"study_id": study.study_id, "image_paths": [f"images/{study.study_id}.png"], "views": ["frontal"],
            "findings": study.findings, "impression": study.impression, "text": study.text,
            "labels": study.labels, "findings_gt": study.findings_gt}


def generate_synthcxr(out_dir: str | Path, num_studies: int = DEMO_NUM_STUDIES, image_size: int = 256,
                      seed: int = DEMO_SEED, workers: int = 2,
                      split_fractions: tuple[float, ...] = DEFAULT_SPLIT_FRACTIONS,
                      difficulty: Difficulty | None = None, progress: bool = True,
                      overwrite: bool = False) -> datasets.Dataset:
    """Write SynthCXR under ``out_dir`` (images/, masks/, manifest) and return the manifest.

    Output is identical for any ``workers`` (each study has its own generator). ``out_dir`` must be
    new, empty or a SynthCXR dataset, of which only the listed files are replaced; ``overwrite``
    writes into any folder, replacing files of the same names and deleting nothing else.
    """
    check_size(image_size)
    if num_studies < 1:
        raise ValueError(f"num_studies={num_studies} must be at least 1")
    out_dir = Path(out_dir)
    owned = _replaceable_files(out_dir, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    difficulty = difficulty or Difficulty()
    splits = assign_splits(num_studies, seed, split_fractions)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        for sub in ("images", "masks"):
            (staging / sub).mkdir()
        job = partial(_write_study, seed=seed, image_size=image_size, difficulty=difficulty, staging=str(staging))
        bar = partial(tqdm, total=num_studies, desc="SynthCXR", unit="study", disable=not progress)
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                records = list(bar(pool.map(job, range(num_studies), chunksize=32)))
        else:
            records = [job(i) for i in bar(range(num_studies))]
        _move_into_place(staging, out_dir, _files_of(records), owned, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for record, split in zip(records, splits, strict=True):
        record["split"] = split
    summary = {"seed": seed, "image_size": image_size, "difficulty": difficulty.__dict__,
               "label_counts": _label_counts(records)}
    manifest = save_manifest(records, out_dir, source=SOURCE,
                             extra_features={"findings_gt": findings_gt_features()}, summary=summary)
    (out_dir / PENDING).unlink(missing_ok=True)
    return manifest


def _files_of(records: list[dict] | datasets.Dataset) -> set[str]:
    """Relative paths of the images and masks a manifest lists."""
    return {path for r in records for path in [*r["image_paths"], *(g["mask_path"] for g in r["findings_gt"])]}


def _replaceable_files(out_dir: Path, overwrite: bool) -> set[str]:
    """Files in ``out_dir`` that SynthCXR wrote and may replace; refuse a folder of other files."""
    if not out_dir.is_dir():
        return set()
    owned = set()
    if (out_dir / PENDING).exists():
        owned |= set(json.loads((out_dir / PENDING).read_text()))
    if _is_synthcxr(out_dir):
        owned |= _files_of(datasets.load_from_disk(str(out_dir / "manifest")).select_columns(["image_paths", "findings_gt"]))
    elif not owned and not overwrite and any(not p.name.startswith(STAGING_PREFIX) for p in out_dir.iterdir()):
        raise SynthCXRFolderError(out_dir, f"the folder is not empty and holds no SynthCXR dataset (no manifest.json "
                                           f"with source {SOURCE!r})")
    return owned


def _is_synthcxr(out_dir: Path) -> bool:
    try:
        return json.loads((out_dir / "manifest.json").read_text()).get("source") == SOURCE
    except (OSError, ValueError):
        return False


def _move_into_place(staging: Path, out_dir: Path, new: set[str], owned: set[str], overwrite: bool) -> None:
    """Move the staged files into ``out_dir``, then delete the owned files the new dataset lacks."""
    strangers = sorted(p for p in new - owned if (out_dir / p).exists())
    if strangers and not overwrite:
        raise SynthCXRFolderError(out_dir, f"{len(strangers)} file(s) SynthCXR would write are there but not listed "
                                           f"by its manifest, e.g. {strangers[0]}")
    atomic_write_text(out_dir / PENDING, json.dumps(sorted(owned | new)))
    for path in sorted(new):
        (out_dir / path).parent.mkdir(exist_ok=True)
        os.replace(staging / path, out_dir / path)
    for path in sorted(owned - new):
        (out_dir / path).unlink(missing_ok=True)


def _label_counts(records: list[dict]) -> dict[str, dict[str, int]]:
    counts = {name: {"1": 0, "0": 0, "-1": 0} for name in CHEXPERT_LABELS}
    for r in records:
        for name, value in r["labels"].items():
            if value is not None:
                counts[name][str(value)] += 1
    return counts


def write_split_file(path: str | Path, num_studies: int = DEMO_NUM_STUDIES, seed: int = DEMO_SEED,
                     fractions: tuple[float, ...] = DEFAULT_SPLIT_FRACTIONS) -> dict:
    """Write :func:`split_file_payload` as JSON to ``path`` (atomically); returns it."""
    payload = split_file_payload(num_studies, seed, fractions)
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return payload
