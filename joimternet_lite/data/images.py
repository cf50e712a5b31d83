"""Read one radiograph from disk as a float image in [0, 1]: PNG / JPEG (8 or 16 bit) or DICOM.

Taught in notebook 12. Every reader in the package goes through :func:`read_image`, so a bad file
fails the same way everywhere: an ``ImageReadError`` (``data/errors.py``) that names the file, the
problem and the fix. Callers that skip bad files (``prepare``, ``build_cache``) catch that one class
and count it.

Ranges: an 8-bit image is divided by 255 and a 16-bit one by 65535, so the file's bit depth (not
the image's own minimum and maximum) defines black and white. DICOM goes through
:func:`joimternet_lite.data.dicom.read_dicom`, which applies the modality and VOI transforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError

DICOM_SUFFIXES = (".dcm", ".dicom")


def read_image(path: str | Path, min_size: int | None = None) -> np.ndarray:
    """Return the image at ``path`` as float32 (H, W) in [0, 1], higher = brighter.

    Colour images are converted to grey (ITU-R 601 luma), multi-frame DICOMs give their first frame.
    ``min_size`` lets JPEG decode at a reduced scale (DCT scaling, several times faster) while both
    sides stay >= ``min_size``; the cache uses it, training reads leave it None (full resolution).
    Raises ``ImageReadError`` for a missing, empty, truncated or undecodable file.
    """
    path = Path(path)
    _check_exists_and_not_empty(path)
    if is_dicom(path):
        from .dicom import read_dicom  # local import: pydicom is only needed for DICOM sources

        return read_dicom(path)
    return _read_pillow(path, min_size)


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


def _check_exists_and_not_empty(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(
            f"{path}: file not found. If a manifest lists it, the image folder moved or is incomplete: "
            "check the dataset root, or re-run `prepare` on the current source folder."
        )
    if path.stat().st_size == 0:
        raise ImageReadError(
            f"{path}: file is empty (0 bytes), usually an interrupted download or copy. "
            "Copy or download it again (downloads resume with data_scripts/download_openi.py)."
        )


def _read_pillow(path: Path, min_size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if min_size and img.format == "JPEG":
                img.draft(img.mode, (min_size, min_size))
            img.load()  # decode now, so truncation raises here and not later
            return _to_unit_float(img, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(
            f"{path}: cannot decode image ({type(err).__name__}: {err}). The file is truncated or corrupt: "
            "copy or download it again, or delete it and re-run `prepare` so it is counted as missing."
        ) from err


def _to_unit_float(img: Image.Image, path: Path) -> np.ndarray:
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
