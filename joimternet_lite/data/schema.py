"""The one record schema shared by every data source (SynthCXR, OpenI, MIMIC-CXR).

Taught in notebook 02. A manifest is a Hugging Face ``datasets.Dataset`` saved with
``save_to_disk`` under ``<root>/manifest``; image paths in it are relative to ``<root>``
(absolute paths are allowed and kept as they are). Beside it, ``<root>/manifest.json`` records
the schema version, the source and the counts, so that an old manifest is detected on load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import datasets
import pyarrow as pa

from ..atomic import atomic_write_text
from ..errors import UserError

SCHEMA_VERSION = 2
REBUILD = ("Re-run the prepare command that made it (`python -m joimternet_lite prepare ...` or "
           "`data_scripts/make_synthetic.py`) to rebuild it; raw data is not touched")

CHEXPERT_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)

VIEWS = ("frontal", "lateral", "unknown")
SPLITS = ("train", "validate", "test")


class ManifestError(UserError, ValueError):
    """A manifest that cannot be used; the message names the path and the fix."""


def label_features() -> datasets.Features:
    return datasets.Features({name: datasets.Value("int8") for name in CHEXPERT_LABELS})


def manifest_features(extra: dict | None = None) -> datasets.Features:
    """Columns every manifest has. Sources may add their own (``extra``)."""
    base = {
        "study_id": datasets.Value("string"),
        "image_paths": datasets.Sequence(datasets.Value("string")),
        "views": datasets.Sequence(datasets.Value("string")),
        "findings": datasets.Value("string"),
        "impression": datasets.Value("string"),
        "text": datasets.Value("string"),
        "labels": label_features(),
        "split": datasets.Value("string"),
    }
    base.update(extra or {})
    return datasets.Features(base)


def empty_labels() -> dict[str, int | None]:
    return {name: None for name in CHEXPERT_LABELS}


def validate_record(record: dict) -> None:
    """Raise ``ManifestError`` when a record breaks the schema."""
    for key in ("study_id", "image_paths", "views", "text", "labels", "split"):
        if key not in record:
            raise ManifestError(f"record {record.get('study_id', '?')!r} has no {key!r} field")
    if len(record["image_paths"]) != len(record["views"]):
        raise ManifestError(f"record {record['study_id']!r}: image_paths and views differ in length")
    bad_views = set(record["views"]) - set(VIEWS)
    if bad_views:
        raise ManifestError(f"record {record['study_id']!r}: unknown views {sorted(bad_views)}; use {VIEWS}")
    unknown = set(record["labels"]) - set(CHEXPERT_LABELS)
    if unknown:
        raise ManifestError(f"record {record['study_id']!r}: unknown label names {sorted(unknown)}")
    for name, value in record["labels"].items():
        if value not in (1, 0, -1, None):
            raise ManifestError(f"record {record['study_id']!r}: label {name}={value!r} is not 1/0/-1/None")


def save_manifest(records: list[dict] | datasets.Dataset, root: str | Path, source: str,
                  extra_features: dict | None = None, summary: dict | None = None) -> datasets.Dataset:
    """Validate and save a manifest atomically under ``root/manifest`` (+ ``root/manifest.json``).

    The dataset is written to a temporary folder and renamed into place, so a crash never leaves a
    half-written manifest behind.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if isinstance(records, datasets.Dataset):
        ds = records
    else:
        for r in records:
            validate_record(r)
        ds = datasets.Dataset.from_list(records, features=manifest_features(extra_features))
    tmp = Path(tempfile.mkdtemp(prefix=".manifest-", dir=root))
    ds.save_to_disk(str(tmp / "manifest"))
    final = root / "manifest"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp / "manifest", final)
    shutil.rmtree(tmp, ignore_errors=True)
    meta = {"schema_version": SCHEMA_VERSION, "source": source, "num_studies": len(ds)}
    meta["splits"] = {s: int(n) for s, n in _count(ds["split"]).items()}
    if summary:
        meta["summary"] = summary
    atomic_write_text(root / "manifest.json", json.dumps(meta, indent=2))
    return datasets.load_from_disk(str(final))


def load_manifest(root: str | Path) -> datasets.Dataset:
    """Load ``root/manifest``; refuse a manifest written by another schema version."""
    root = Path(root)
    meta_path = root / "manifest.json"
    if not meta_path.exists() or not (root / "manifest").exists():
        raise ManifestError(
            f"{root}: no manifest found (expected {root / 'manifest'} and {meta_path}). "
            "Create one with `python -m joimternet_lite prepare ...` or `make_synthetic.py`."
        )
    version = manifest_meta(root).get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{meta_path}: manifest schema version {version}, this package reads version {SCHEMA_VERSION}. "
            f"{REBUILD}."
        )
    try:
        return datasets.load_from_disk(str(root / "manifest"))
    except (pa.ArrowException, OSError, ValueError) as err:  # a cut .arrow file or a broken state.json
        raise ManifestError(f"{root / 'manifest'}: damaged ({type(err).__name__}: {err}). {REBUILD}.") from err


def manifest_meta(root: str | Path) -> dict:
    """The ``manifest.json`` beside a manifest: schema version, source, counts."""
    meta_path = Path(root) / "manifest.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{meta_path}: damaged, not JSON ({err}). {REBUILD}.") from err
    if not isinstance(meta, dict):
        raise ManifestError(f"{meta_path}: damaged, not a JSON object. {REBUILD}.")
    return meta


def resolve_image_path(root: str | Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
