"""Read a DICOM radiograph as float32 (H, W) in [0, 1], higher = brighter (more attenuating).

Taught in notebook 12. The display pipeline of DICOM PS3.4 N.2, done with pydicom:

1. decode the stored values (compressed transfer syntaxes go through pydicom's pixel-data plugins:
   pylibjpeg + pylibjpeg-libjpeg for JPEG / JPEG-LS, pylibjpeg-openjpeg for JPEG 2000 / HTJ2K);
2. Modality LUT or Rescale Slope/Intercept (stored values -> modality units);
3. VOI LUT or Window Center/Width (modality units -> display values), if the file has one;
4. scale to [0, 1] by the range that stage can output, and invert MONOCHROME1, where a low value is
   white, so that the result always reads as MONOCHROME2.

Without a VOI transform the image is scaled by its own minimum and maximum, which is what a viewer
does with such a file. Files without a preamble or file-meta group are read with ``force=True``.

A file without pixel data is told apart by cause, because the fixes differ: a PNG / JPEG with a
DICOM name (rename it), a copy cut short inside its header or inside its pixel data (copy it again;
pydicom drops a compressed pixel data element that the file ends inside), a DICOM that is no image
such as a report (remove it), or something else entirely.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom.misc
from PIL import Image, UnidentifiedImageError
from pydicom.dataelem import RawDataElement
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder

from .errors import DicomError

# Which pixel-data plugin decodes which transfer syntax, for the error message when none is installed.
_PLUGIN_FOR_SYNTAX = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",  # JPEG Extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE (pydicom's own numpy decoder also works)
}

# Pixel data (7FE0,0010), the dataset's last element, and the end of a compressed one (FFFE,E0DD), as a
# little-endian file stores them; the value representations whose length takes 4 bytes after 2 reserved.
_PIXEL_DATA_TAG, _SEQUENCE_END = b"\xe0\x7f\x10\x00", b"\xfe\xff\xdd\xe0"
_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN")

# Ordinary image formats sometimes saved under a DICOM name, and the suffix that file should have.
_OTHER_FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "JPEG2000": ".jp2", "TIFF": ".tif", "BMP": ".bmp",
                        "GIF": ".gif", "WEBP": ".webp"}


def read_dicom(path: str | Path) -> np.ndarray:
    """Return the first frame of the DICOM at ``path`` as float32 (H, W) in [0, 1], higher = brighter."""
    path = Path(path)
    ds = _read_dataset(path)
    _check_image_attributes(ds, path)
    stored = _decode_pixels(ds, path)
    if stored.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1:
        stored = stored[0]  # multi-frame: first frame
    if stored.ndim == 3:  # colour secondary capture: pydicom gives RGB
        return _rgb_to_grey(stored)
    return display_values(stored, ds)


def display_values(stored: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Stored grey values (H, W) -> float32 (H, W) in [0, 1] per the steps in the module docstring."""
    modality = apply_modality_lut(stored, ds).astype(np.float64)
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        shown = apply_voi_lut(modality, ds, index=0)
        low, high = _voi_output_range(ds)
    else:
        shown = modality
        low, high = float(modality.min()), float(modality.max())
    unit = np.clip((shown - low) / max(high - low, 1e-12), 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unit = 1.0 - unit
    return unit.astype(np.float32)


def _voi_output_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """The output range of pydicom's VOI step (PS3.3 C.11.2.1): LUT bit depth, or the window's y-range."""
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if "ModalityLUTSequence" in ds:
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(ds.BitsStored)
    low, high = (0, 2**bits - 1) if int(ds.PixelRepresentation) == 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))
    return low * slope + intercept, high * slope + intercept


def _read_dataset(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, force=True)
    except Exception as err:  # pydicom raises many types on garbage input
        raise _other_format_error(path) or DicomError(
            f"{path}: not a readable DICOM file ({type(err).__name__}: {err}). The copy is damaged: copy it again."
        ) from err


def _check_image_attributes(ds: pydicom.Dataset, path: Path) -> None:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise _no_pixels_error(ds, path)
    missing = [k for k in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation") if k not in ds]
    if missing:
        raise DicomError(f"{path}: image attributes missing: {', '.join(missing)}; the file is incomplete or damaged: "
                         "copy it again, or remove it")
    allocated, stored = int(ds.BitsAllocated), int(ds.get("BitsStored", ds.BitsAllocated))
    if allocated not in (8, 16) or not 1 <= stored <= allocated:
        raise DicomError(
            f"{path}: unsupported bit depth (Bits Allocated {allocated}, Bits Stored {stored}); "
            "radiographs use 8 or 16 bits allocated with Bits Stored <= Bits Allocated. "
            "Convert it (e.g. `gdcmconv --raw`) or remove it."
        )
    if "TransferSyntaxUID" not in ds.file_meta:
        # No file meta (old ACR-NEMA style files): pydicom knows the encoding it parsed with.
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR else pydicom.uid.ExplicitVRLittleEndian
        )


def _no_pixels_error(ds: pydicom.Dataset, path: Path) -> DicomError:
    """Why a file read as DICOM has no pixel data: another image format under a DICOM name, a copy cut
    short (pixel data is the last element, so a cut file loses it first), or a DICOM that is no image."""
    if other := _other_format_error(path):
        return other
    sop = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if not (sop or pydicom.misc.is_dicom(path)):  # is_dicom: the 'DICM' marker after the preamble
        return DicomError(
            f"{path}: not a DICOM file (no 'DICM' marker, no SOP class) nor an image format Pillow knows. "
            "Check what it is; replace it with the right file, or remove it from the image folder."
        )
    if sop and "Image" not in pydicom.uid.UID(str(sop)).name and not _value_cut_short(ds):
        return DicomError(
            f"{path}: no pixel data (7FE0,0010): its SOP class is {pydicom.uid.UID(str(sop)).name}, not an image "
            "(e.g. a report or presentation state). Remove it from the image folder."
        )
    if _pixel_data_cut(path.read_bytes()):  # pydicom drops a compressed pixel data element the file ends inside
        return DicomError(
            f"{path}: its pixel data is cut: the file ends inside the pixel data element (7FE0,0010), at "
            f"{path.stat().st_size} bytes: the copy or download is incomplete. Copy or download it again."
        )
    return DicomError(
        f"{path}: the file ends inside its DICOM header, before any pixel data ({path.stat().st_size} bytes): "
        "the copy or download is incomplete. Copy or download it again."
    )


def _pixel_data_cut(data: bytes) -> bool:
    """True when ``data`` (a whole file) holds a pixel data element that it ends inside: a compressed
    one without its end marker, or a native one whose length runs past the end of the file."""
    start = data.rfind(_PIXEL_DATA_TAG)
    if start < 0:
        return False
    explicit = data[start + 4:start + 6] in _LONG_VRS
    at = start + (8 if explicit else 4)
    if len(data) < at + 4:
        return True  # cut inside the element's own header
    length = int.from_bytes(data[at:at + 4], "little")
    if length == 0xFFFFFFFF:
        return _SEQUENCE_END not in data[at + 4:]
    return at + 4 + length > len(data)


def _other_format_error(path: Path) -> DicomError | None:
    """The error for a PNG / JPEG / ... file with a DICOM name, or None when it is not one."""
    try:
        with Image.open(path, formats=list(_OTHER_FORMAT_SUFFIX)) as img:
            fmt = img.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return DicomError(
        f"{path}: a {fmt} image, not a DICOM file (only its name says DICOM). "
        f"Rename it to {path.stem}{_OTHER_FORMAT_SUFFIX[fmt]} so it is read as {fmt}, or convert it to DICOM."
    )


def _value_cut_short(ds: pydicom.Dataset) -> bool:
    """True when the last element read holds fewer bytes than its length says: the file was cut inside it."""
    return any(isinstance(e, RawDataElement) and e.value is not None and e.length != 0xFFFFFFFF
               and len(e.value) < e.length for e in ds.elements())


def _decode_pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    syntax = pydicom.uid.UID(str(ds.file_meta.TransferSyntaxUID))
    if syntax.is_compressed and not _decoder_available(syntax):
        plugin = _PLUGIN_FOR_SYNTAX.get(str(syntax))
        fix = f"`pip install {plugin}`" if plugin else "convert it to uncompressed (`gdcmconv --raw`)"
        raise DicomError(
            f"{path}: transfer syntax {syntax} ({syntax.name}) is not supported by the installed "
            f"pixel-data plugins. Fix: {fix}."
        )
    try:
        return ds.pixel_array
    except Exception as err:  # decoders raise RuntimeError, ValueError, KeyError... on corrupt data
        raise DicomError(
            f"{path}: pixel data ({syntax.name}) cannot be decoded ({type(err).__name__}: {err}). "
            "The file is truncated or corrupt: copy it again, or remove it."
        ) from err


def _decoder_available(syntax: pydicom.uid.UID) -> bool:
    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:  # pydicom has no decoder class at all for this syntax
        return False


def _rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114])
    grey = rgb[..., :3].astype(np.float64) @ weights
    return (grey / 255.0 if rgb.dtype == np.uint8 else grey / 65535.0).clip(0, 1).astype(np.float32)
