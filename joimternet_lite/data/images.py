"""Read one radiograph from disk as a float image in [0, 1]: PNG / JPEG (8 or 16 bit) or DICOM.

Taught in notebook 12. Every reader in the package goes through :func:`read_image`, so a bad file
fails the same way everywhere: an ``ImageReadError`` (``data/errors.py``) that names the file, the
problem and the fix. Callers that skip bad files (``prepare``, ``build_cache``) catch that one class
and count it.

A path is looked at with ``os.stat`` before it is opened: an entry that is not a regular file (a
FIFO, whose open would block; a folder named ``x.png``; a symbolic link loop) is refused with what it
is. :func:`list_image_files` lists a folder's image files and, with the same reasons, its entries
that only look like image files, so no entry is dropped unsaid. Pillow's and pydicom's warnings are
caught where the file is read: a decompression bomb is refused, the warnings of a refused file are
dropped (its reason says what they meant), and those of a file that reads go on once each.

Ranges: an 8-bit image is divided by 255 and a 16-bit one by 65535, so the file's bit depth (not
the image's own minimum and maximum) defines black and white. DICOM goes through
:func:`joimternet_lite.data.dicom.read_dicom`, which applies the modality and VOI transforms.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError

DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", *DICOM_SUFFIXES)

_SAID: dict = {}  # the warnings registry of read_image: a warning not caught by a caller prints once a process

_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def read_image(path: str | Path, min_size: int | None = None) -> np.ndarray:
    """Return the image at ``path`` as float32 (H, W) in [0, 1], higher = brighter.

    Colour images are converted to grey (ITU-R 601 luma), multi-frame DICOMs give their first frame.
    ``min_size`` lets JPEG decode at a reduced scale (DCT scaling, several times faster) while both
    sides stay >= ``min_size``; the cache uses it, training reads leave it None (full resolution).
    Raises ``ImageReadError`` for a missing, empty, truncated or undecodable file.
    """
    path = Path(path)
    _check_regular_and_not_empty(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused like the error, see _read_pillow
        if is_dicom(path):
            from .dicom import read_dicom  # local import: pydicom is only needed for DICOM sources

            image = read_dicom(path)
        else:
            image = _read_pillow(path, min_size)
    # The file read: each distinct warning goes on once, from the library line that raised it, for the
    # caller to word (search and ground: inference.reader_warnings). A file refused above took its
    # warnings with it: the error's reason says what they meant.
    for text, w in {str(w.message): w for w in caught}.items():
        warnings.warn_explicit(text, w.category, w.filename, w.lineno, registry=_SAID)
    return image


def list_image_files(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES
                     ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``(files, refused)`` for the entries under ``folder`` (recursive, sorted) whose name ends in
    one of ``suffixes`` (any case): the regular files, and every other such entry (a FIFO, a folder
    named ``x.png``, a symbolic link loop or a link to nothing) with the one-line reason
    :func:`read_image` would give. Nothing is opened, so a FIFO cannot block the listing."""
    files, refused = [], []
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in suffixes):
        problem = entry_problem(path)
        if problem is None:
            files.append(path)
        else:
            refused.append((path, problem))
    return files, refused


def entry_problem(path: Path) -> str | None:
    """Why ``path`` is no file to read, from ``os.stat`` alone (None: a regular file)."""
    try:
        mode = path.stat().st_mode  # follows a symbolic link, as open would
    except OSError as err:
        if err.errno == errno.ELOOP:
            return (f"{path}: a symbolic link loop (it leads back to itself), so there is no file to read. Remove "
                    "the link, or point it at the image.")
        if path.is_symlink():
            return (f"{path}: a symbolic link to {os.readlink(path)}, which does not exist. Remove the link, or "
                    "point it at the image.")
        if err.errno == errno.ENOENT:
            return (f"{path}: file not found. If a manifest lists it, the image folder moved or is incomplete: "
                    "check the dataset root, or re-run `prepare` on the current source folder.")
        return f"{path}: cannot be looked at ({err.strerror}); check the permissions of its folder."
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), None)
    if kind is not None:
        return (f"{path}: not a regular file ({kind}), so no image can be read from it. Remove it from the image "
                "folder, or rename it so that its name does not end in an image suffix.")
    return None


def is_dicom(path: Path) -> bool:
    """DICOM by suffix, or by the ``DICM`` magic after the 128-byte preamble (extension-less files).

    ``<uid>_IM-....dcm.png`` (the Kaggle OpenI layout) is a PNG: only the last suffix counts.
    """
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    from pydicom.misc import is_dicom as has_dicom_marker  # local import, as in read_image

    return has_dicom_marker(path)


def _check_regular_and_not_empty(path: Path) -> None:
    problem = entry_problem(path)
    if problem is not None:
        raise ImageReadError(problem)
    if path.stat().st_size == 0:
        raise ImageReadError(
            f"{path}: file is empty (0 bytes), usually an interrupted download or copy. "
            "Copy it again from its source, or remove it."
        )


def _read_pillow(path: Path, min_size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if min_size and img.format == "JPEG":
                img.draft(img.mode, (min_size, min_size))
            img.load()  # decode now, so truncation raises here and not later
            return to_unit_float(img, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise ImageReadError(
            f"{path}: decompression bomb ({pixels.group(1) if pixels else 'too many'} pixels, limit "
            f"{Image.MAX_IMAGE_PIXELS}): its header declares an image far larger than a radiograph, so it is not "
            "decoded. Remove it; if it is a real image, downscale it below the limit."
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(
            f"{path}: cannot decode image ({type(err).__name__}: {err}). The file is truncated or corrupt: "
            "copy it again from its source, or remove it."
        ) from err


def to_unit_float(img: Image.Image, path: Path) -> np.ndarray:
    """A decoded PIL image -> (H, W) float32 grey in [0, 1]; ``path`` names it in errors.

    8-bit images are divided by 255, 16-bit ones by 65535; colour images are converted to grey.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageReadError(f"{path}: 32-bit integer image with values outside 0..65535; save it as 8 or 16 bit")
        return (arr / 65535.0).astype(np.float32)
    if img.mode == "F":
        raise ImageReadError(f"{path}: floating-point image mode 'F' has no defined range; save it as 8 or 16 bit")
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.float32) / 255.0
