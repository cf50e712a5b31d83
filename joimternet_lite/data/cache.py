"""Training-image cache: decode and resize every image once into one compact on-disk array.

Taught in notebook 12. Full-size radiographs (2,000-3,000 px PNG/JPEG/DICOM) take tens of
milliseconds each to decode, enough to starve a GPU. ``build_cache`` resizes each image once:

- the longest side is scaled to ``size`` (aspect ratio kept, bilinear with Pillow's reducing gap),
  then the short side is padded with black (0) equally on both sides to a ``size`` x ``size``
  square. Nothing is cropped, so no anatomy is lost; the padding looks like a collimator border;
- the squares are stored as uint8 rows of a numpy memmap ``images.u8`` (N, size, size), with an
  ``index.json`` mapping each absolute source path to its row, the source's size and mtime, and a
  CRC-32 of the stored row.

It is parallel (a process pool decodes), resumable (the index is saved atomically every few seconds
and a row counts only once its index entry exists), idempotent (a second run decodes nothing) and
verifies what it reuses (the source's size and mtime, and the row's CRC-32). Unreadable images are
counted, logged skips. Raw files are only read.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..errors import UserError
from .errors import ImageReadError
from .images import read_image
from .schema import load_manifest, resolve_image_path
from .skips import SkipLog

INDEX_VERSION = 1
SAVE_EVERY_S = 5.0


class CacheError(UserError, ValueError):
    """A cache that cannot be used; the message names the folder and the fix."""


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """float (H, W) in [0, 1] -> uint8 (size, size): longest side to ``size``, centred, black padding."""
    h, w = image.shape
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    pil = Image.fromarray(np.round(image * 255).astype(np.uint8))
    resized = np.asarray(pil.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0))
    out = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resized
    return out


def _decode_one(args: tuple[str, int]) -> tuple[str, np.ndarray | None, str]:
    """Worker: (path, size) -> (path, square or None, error message)."""
    path, size = args
    try:
        return path, letterbox(read_image(path, min_size=size), size), ""
    except ImageReadError as err:
        return path, None, str(err)


def _source_stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


class ImageCache:
    """Read access to a built cache: ``get(path)`` -> uint8 (S, S); ``has(path)``.

    Paths are the absolute source paths (``schema.resolve_image_path(root, p)`` for a manifest row).
    """

    def __init__(self, cache_dir: str | Path):
        self.dir = Path(cache_dir)
        index_path = self.dir / "index.json"
        if not index_path.exists():
            raise CacheError(f"{self.dir}: no cache index.json. Build it with data_scripts/build_cache.py")
        index = json.loads(index_path.read_text())
        if index.get("version") != INDEX_VERSION:
            raise CacheError(f"{index_path}: cache version {index.get('version')}; rebuild it with build_cache.py")
        self.size = int(index["size"])
        self.entries: dict[str, dict] = index["entries"]
        self._data = self._open(int(index["capacity"]))

    def _open(self, capacity: int) -> np.ndarray | None:
        path = self.dir / "images.u8"
        if capacity == 0 or not path.exists():
            return None
        return np.memmap(path, dtype=np.uint8, mode="r", shape=(capacity, self.size, self.size))

    def has(self, image_path: str | Path) -> bool:
        return str(Path(image_path).resolve()) in self.entries

    def get(self, image_path: str | Path) -> np.ndarray:
        key = str(Path(image_path).resolve())
        entry = self.entries.get(key)
        if entry is None:
            raise KeyError(f"{key}: not in the cache {self.dir}; re-run build_cache.py on the current manifest")
        return np.array(self._data[entry["row"]])

    def __len__(self) -> int:
        return len(self.entries)


def build_cache(manifest_root: str | Path, cache_dir: str | Path, size: int = 512, workers: int | None = None,
                max_skip_fraction: float = 0.05, progress: bool = True) -> dict:
    """Cache every image of the manifest at ``manifest_root``; return counts and images/s."""
    manifest_root, cache_dir = Path(manifest_root), Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = _manifest_image_paths(manifest_root)
    index = _load_or_new_index(cache_dir, size)
    reused, todo = _verify_existing(index, paths, cache_dir)
    data = _open_for_write(cache_dir, index, len(index["entries"]) + len(todo))
    free = _free_rows(index)
    skips = SkipLog()
    start, last_save = time.perf_counter(), time.perf_counter()
    workers = workers or max(1, (os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        jobs = pool.map(_decode_one, [(p, size) for p in todo], chunksize=8)
        for path, square, error in tqdm(jobs, total=len(todo), desc="cache", unit="img", disable=not progress):
            if square is None:
                skips.add("bad_image", path, error)
                continue
            row = next(free)
            data[row] = square
            index["entries"][path] = {"row": row, "source": _source_stamp(path), "crc32": zlib.crc32(square.tobytes())}
            if time.perf_counter() - last_save > SAVE_EVERY_S:
                _save_index(cache_dir, index, data)
                last_save = time.perf_counter()
    _save_index(cache_dir, index, data)
    elapsed = time.perf_counter() - start
    decoded = len(todo) - len(skips)
    skip_list = skips.write(cache_dir / "skips.jsonl")
    summary = {"images": len(paths), "reused": reused, "decoded": decoded, "skipped": len(skips),
               "skips_by_kind": skips.counts(), "skip_list": str(skip_list), "size": size, "workers": workers,
               "seconds": round(elapsed, 3), "images_per_s": round(decoded / elapsed, 2) if decoded else 0.0}
    print(skips.report(len(paths), skip_list, "images"))
    skips.check(len(paths), max_skip_fraction, skip_list, "images")
    return summary


def _manifest_image_paths(root: Path) -> list[str]:
    ds = load_manifest(root)
    unique = dict.fromkeys(str(resolve_image_path(root, p).resolve()) for row in ds["image_paths"] for p in row)
    return list(unique)


def _load_or_new_index(cache_dir: Path, size: int) -> dict:
    path = cache_dir / "index.json"
    if path.exists():
        index = json.loads(path.read_text())
        if index.get("version") == INDEX_VERSION and index.get("size") == size:
            return index
        raise CacheError(f"{cache_dir}: holds a cache of size {index.get('size')}; use another folder for size {size}")
    return {"version": INDEX_VERSION, "size": size, "capacity": 0, "entries": {}}


def _verify_existing(index: dict, paths: list[str], cache_dir: Path) -> tuple[int, list[str]]:
    """Keep entries whose source and row are unchanged; return (reused count, paths to decode)."""
    data = ImageCache(cache_dir)._data if index["entries"] else None
    todo, reused = [], 0
    for path in paths:
        entry = index["entries"].get(path)
        ok = (entry is not None and data is not None and os.path.exists(path)
              and entry["source"] == _source_stamp(path) and zlib.crc32(data[entry["row"]].tobytes()) == entry["crc32"])
        if ok:
            reused += 1
        else:
            index["entries"].pop(path, None)
            todo.append(path)
    return reused, todo


def _open_for_write(cache_dir: Path, index: dict, rows_needed: int) -> np.memmap:
    """Open ``images.u8`` read-write, growing it (never shrinking) to hold ``rows_needed`` rows."""
    size, path = index["size"], cache_dir / "images.u8"
    capacity = max(index["capacity"], rows_needed, 1)
    with open(path, "ab") as f:
        f.truncate(max(os.path.getsize(path), capacity * size * size))
    index["capacity"] = capacity
    return np.memmap(path, dtype=np.uint8, mode="r+", shape=(capacity, size, size))


def _free_rows(index: dict) -> Iterator[int]:
    """Rows no index entry owns (rows of dropped or stale entries are reused)."""
    used = {e["row"] for e in index["entries"].values()}
    return (r for r in range(index["capacity"]) if r not in used)


def _save_index(cache_dir: Path, index: dict, data: np.memmap) -> None:
    data.flush()  # rows reach the disk before the index that vouches for them
    atomic_write_text(cache_dir / "index.json", json.dumps(index))
