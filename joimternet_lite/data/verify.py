"""Check every image at ``prepare`` time, so a corrupt file is a counted skip there and not a crash
in training. Taught in notebook 12.

The default check reads each file once and checks what its format lets us check without decoding
the pixels:

- PNG: every chunk's CRC up to ``IEND`` (Pillow's ``verify``), so a flipped byte or a cut file fails;
- JPEG: the marker structure from ``SOI`` to the end-of-image marker ``FFD9`` (a cut file has none);
- DICOM: the header (pydicom, pixel data left unread), the image attributes, and that the pixel data
  holds at least ``Rows x Columns x SamplesPerPixel x BitsAllocated / 8 x NumberOfFrames`` bytes
  (native syntaxes) or a fragment list whose last fragment ends with a JPEG / JPEG 2000 end marker
  (encapsulated syntaxes).

``decode=True`` (``prepare --verify-decode``) also decodes every image with
:func:`joimternet_lite.data.images.read_image`, as training will. Costs per image are measured by
``bench/image_checks.py``. Files are checked in a process pool with a progress bar.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pydicom
from PIL import Image
from tqdm import tqdm

from .errors import ImageReadError
from .images import is_dicom, read_image
from .skips import SkipLog
from .views import guess_view

log = logging.getLogger(__name__)

PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8"
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length field (TEM, RSTn)
_JPEG_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")  # in scan data: not stuffing, not RSTn
_END_MARKER = b"\xff\xd9"  # JPEG EOI and JPEG 2000 EOC share the code
_UNDEFINED_LENGTH = 0xFFFFFFFF
_NO_END_MARKER_SYNTAXES = {"1.2.840.10008.1.2.5"}  # RLE Lossless: no end marker to look for


class ImageCheck(NamedTuple):
    """Result for one file: ``problem`` (None when the file passed) and ``view`` (when classified)."""

    problem: str | None
    view: str | None = None


def check_image(path: str | Path, decode: bool = False, classify_view: bool = False) -> ImageCheck:
    """Check one file (see the module docstring); ``classify_view`` decodes it and adds
    :func:`joimternet_lite.data.views.guess_view`. Never raises for a bad file: it reports it."""
    path = Path(path)
    try:
        problem = _structure_problem(path)
        if problem is None and (decode or classify_view):
            image = read_image(path)
            return ImageCheck(None, guess_view(image) if classify_view else None)
        return ImageCheck(problem)
    except ImageReadError as err:
        return ImageCheck(f"decode failed: {err}")
    except OSError as err:
        return ImageCheck(f"cannot read the file ({type(err).__name__}: {err})")


def _structure_problem(path: Path) -> str | None:
    if path.stat().st_size == 0:
        return "zero-byte file; copy or download it again"
    if is_dicom(path):
        return dicom_problem(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head == PNG_MAGIC:
        return png_problem(path)
    if head[:2] == JPEG_MAGIC:
        return jpeg_problem(path.read_bytes())
    return f"not a PNG, JPEG or DICOM file (starts with {head!r}); remove it from the image folder"


def png_problem(path: Path) -> str | None:
    """Chunk CRCs and lengths up to ``IEND`` (no decompression)."""
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as err:  # Pillow raises SyntaxError, OSError, struct.error... on broken chunks
        return f"PNG structure broken ({type(err).__name__}: {err}); the file is cut or corrupt, copy it again"
    return None


def jpeg_problem(data: bytes) -> str | None:
    """Walk the marker segments from SOI; scan data is skipped to its next marker. None when EOI is reached."""
    if data[:2] != JPEG_MAGIC:
        return "no JPEG start-of-image marker (FFD8)"
    pos, end = 2, len(data)
    while pos < end:
        if data[pos] != 0xFF:
            return f"JPEG marker expected at byte {pos}, found {data[pos]:#04x}; the file is corrupt, copy it again"
        while pos < end and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= end:
            break
        marker, pos = data[pos], pos + 1
        if marker == 0xD9:
            return None
        if marker in _JPEG_STANDALONE:
            continue
        length = int.from_bytes(data[pos:pos + 2], "big")
        if pos + 2 > end or length < 2 or pos + length > end:
            break
        pos += length
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            found = _JPEG_NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return "JPEG ends before its end-of-image marker (FFD9): the file is cut, copy or download it again"


def dicom_problem(path: Path) -> str | None:
    """Header, image attributes and pixel-data length, without decoding (see the module docstring)."""
    try:
        with warnings.catch_warnings(record=True) as caught:  # pydicom warns (not raises) on a cut sequence
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, defer_size="64 KB", force=True)
    except Exception as err:  # pydicom raises many types on garbage input
        return f"DICOM header unreadable ({type(err).__name__}: {err}); copy the file again"
    missing = [k for k in ("PixelData", "Rows", "Columns", "BitsAllocated") if k not in ds]
    if missing:
        said = "".join(f" (pydicom: {w.message})" for w in caught[:1])
        return f"DICOM lacks {', '.join(missing)}{said}; it is cut or not an image, copy it again or remove it"
    element = ds.get_item("PixelData", keep_deferred=True)
    if element.length == _UNDEFINED_LENGTH:
        return _encapsulated_problem(ds)
    held = len(element.value) if element.value is not None else max(0, path.stat().st_size - element.value_tell)
    needed = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * int(ds.BitsAllocated)
              * int(ds.get("NumberOfFrames", 1) or 1) + 7) // 8
    if min(held, element.length) < needed:
        return (f"DICOM pixel data holds {min(held, element.length)} bytes but {ds.Rows} x {ds.Columns} pixels "
                f"need {needed}: the file is cut, copy it again")
    return None


def _encapsulated_problem(ds: pydicom.Dataset) -> str | None:
    try:
        fragments = list(pydicom.encaps.generate_fragments(ds.PixelData))
    except Exception as err:  # a cut or garbled item list
        return f"DICOM compressed pixel data has broken fragments ({type(err).__name__}: {err}); copy it again"
    if not fragments:
        return "DICOM compressed pixel data has no fragments; copy the file again"
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in _NO_END_MARKER_SYNTAXES and not fragments[-1].rstrip(b"\x00").endswith(_END_MARKER):
        return "DICOM compressed pixel data ends without its end marker (FFD9): the file is cut, copy it again"
    return None


def check_images(paths: list[str | Path], decode: bool = False, classify_view: bool = False,
                 workers: int | None = None, progress: bool = True) -> list[ImageCheck]:
    """:func:`check_image` for every path, in ``workers`` processes (default: all CPUs), in order."""
    workers = workers or os.cpu_count() or 1
    check = partial(check_image, decode=decode, classify_view=classify_view)
    what = "decode" if decode or classify_view else "check"
    bar = partial(tqdm, total=len(paths), desc=f"{what} images", unit="img", disable=not progress)
    if workers == 1 or len(paths) < 2:
        return list(bar(map(check, paths)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(bar(pool.map(check, paths, chunksize=max(1, min(64, len(paths) // (8 * workers))))))


def drop_bad_images(records: list[dict], skips: SkipLog, decode: bool = False, classify_views: bool = False,
                    workers: int | None = None, progress: bool = True) -> list[dict]:
    """Manifest rows with every failing image removed (with its view) and logged as a ``bad_image``
    skip of its study. A row left without images is dropped with a warning but no second skip entry:
    the skip fraction counts each study once. ``classify_views`` replaces the views with the classifier's."""
    paths = sorted({p for r in records for p in r["image_paths"]})
    results = dict(zip(paths, check_images(paths, decode, classify_views, workers, progress), strict=True))
    study_of = {p: r["study_id"] for r in records for p in r["image_paths"]}  # the skip's unit
    for path in paths:
        if results[path].problem is not None:
            skips.add("bad_image", path, results[path].problem, unit=study_of[path])
    kept = []
    for record in records:
        pairs = [(p, results[p].view or v) for p, v in zip(record["image_paths"], record["views"], strict=True)
                 if results[p].problem is None]
        if pairs:
            kept.append({**record, "image_paths": [p for p, _ in pairs], "views": [v for _, v in pairs]})
    if len(kept) < len(records):
        log.warning("%d studies left out: every image of theirs failed the check (listed as bad_image skips)",
                    len(records) - len(kept))
    return kept
