"""read_dicom on DICOMs written here with pydicom, and on the real CR film of pydicom-data (notebook 12)."""

import io

import numpy as np
import pytest
from dicom_files import RAMP, make_ds, save
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    BasicTextSRStorage,
    JPEGBaseline8Bit,
    RLELossless,
)

from joimternet_lite.data import dicom as dicom_mod
from joimternet_lite.data.dicom import read_dicom
from joimternet_lite.data.errors import DicomError
from joimternet_lite.data.images import read_image


def test_monochrome2_without_voi_is_min_max_scaled(tmp_path):
    out = read_dicom(save(make_ds(RAMP, bits_stored=10), tmp_path / "m2.dcm"))
    np.testing.assert_allclose(out, RAMP / 1023.0, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path):
    out = read_dicom(save(make_ds(RAMP, "MONOCHROME1", bits_stored=10), tmp_path / "m1.dcm"))
    np.testing.assert_allclose(out, 1.0 - RAMP / 1023.0, atol=1e-6)


def test_16bit_rescale_and_window_match_hand_formula(tmp_path):
    stored = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (8, 1))
    ds = make_ds(stored, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=3000, WindowWidth=4000)
    out = read_dicom(save(ds, tmp_path / "w.dcm"))
    modality = stored * 2.0 - 1000
    # PS3.3 C.11.2.1.2.1 linear window, output range = rescaled 12-bit range [-1000, 7190]
    y = np.clip((modality - 2999.5) / 3999 + 0.5, 0, 1)
    np.testing.assert_allclose(out, y, atol=1e-5)
    assert out[0, 0] == 0 and out[0, -1] == 1  # below and above the window clip


def test_no_preamble_no_file_meta_read_with_force(tmp_path):
    ds = make_ds(RAMP, "MONOCHROME1", bits_stored=10)
    del ds.file_meta
    path = save(ds, tmp_path / "raw.dcm", enforce=False, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_allclose(read_dicom(path), 1.0 - RAMP / 1023.0, atol=1e-6)


GREY = np.tile(np.linspace(20, 235, 64).astype(np.uint8), (48, 1))


def jpeg_ds(grey: np.ndarray) -> Dataset:
    """A JPEG Baseline DICOM of ``grey``, its one frame compressed by Pillow."""
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=95)
    ds = make_ds(grey)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    return ds


def test_jpeg_baseline_frames_built_with_pillow(tmp_path):
    out = read_image(save(jpeg_ds(GREY), tmp_path / "jpeg.dcm"))
    assert np.abs(out - (GREY - 20) / 215.0).max() < 0.03


@pytest.mark.parametrize("cut", ["in the first fragment's item", "before the end marker"])
def test_jpeg_dicom_cut_inside_its_pixel_data_says_the_pixel_data_is_cut(tmp_path, cut):
    import warnings

    path = save(jpeg_ds(GREY), tmp_path / "cut.dcm")
    whole = path.read_bytes()
    keep = whole.rfind(b"\xe0\x7f\x10\x00") + 20 if cut.startswith("in") else len(whole) - 20
    path.write_bytes(whole[:keep])
    with warnings.catch_warnings(record=True) as escaped:  # pydicom warns of the missing delimiter
        warnings.simplefilter("always")
        with pytest.raises(DicomError, match=rf"cut\.dcm: its pixel data is cut: the file ends inside the pixel data "
                                             rf"element \(7FE0,0010\), at {keep} bytes.*Copy or download it again"):
            read_image(path)
    assert escaped == []


def test_rle_compressed_is_lossless(tmp_path):
    ds = make_ds(RAMP, bits_stored=10)
    ds.compress(RLELossless)
    np.testing.assert_allclose(read_dicom(save(ds, tmp_path / "rle.dcm")), RAMP / 1023.0, atol=1e-6)


def test_complete_dicom_that_is_not_an_image_says_remove_it(tmp_path):
    ds = make_ds(RAMP)
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage  # a structured report
    with pytest.raises(DicomError, match=r"report.dcm: no pixel data.*Basic Text SR Storage.*not an image.*Remove it"):
        read_dicom(save(ds, tmp_path / "report.dcm"))


@pytest.mark.parametrize("keep", [140, 400, -(RAMP.nbytes + 12)])  # in the file meta, inside a value, before pixels
def test_dicom_cut_inside_its_header_says_copy_it_again(tmp_path, keep):
    path = save(make_ds(RAMP, PatientName="Doe^Jane", StudyDescription="CHEST PA"), tmp_path / "cut.dcm")
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DicomError, match=r"cut.dcm: .*ends inside its DICOM header.*incomplete.*again") as err:
        read_image(path)
    assert "not an image" not in str(err.value)


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_png_or_jpeg_named_dcm_says_what_it_is(tmp_path, fmt, suffix):
    path = tmp_path / "film.dcm"
    Image.fromarray(np.full((20, 30), 90, np.uint8)).save(path, format=fmt)
    with pytest.raises(DicomError, match=rf"film.dcm: a {fmt} image, not a DICOM file.*Rename it to film{suffix}"):
        read_image(path)


def test_unsupported_syntax_names_plugin(tmp_path, monkeypatch):
    ds = make_ds(RAMP)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8junk"])
    path = save(ds, tmp_path / "j.dcm")
    monkeypatch.setattr(dicom_mod, "_decoder_available", lambda syntax: False)
    with pytest.raises(DicomError, match=r"j.dcm: transfer syntax .*JPEG Baseline.*pip install pylibjpeg pylibjpeg-libjpeg"):
        read_dicom(path)
    monkeypatch.undo()
    with pytest.raises(DicomError, match="(?s)cannot be decoded.*truncated or corrupt"):  # plugin present, data bad
        read_dicom(path)


def test_unknown_syntax(tmp_path):
    ds = make_ds(RAMP)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder exists
    ds.PixelData = encapsulate([b"\x00" * 16])
    with pytest.raises(DicomError, match="mpeg.dcm: transfer syntax 1.2.840.10008.1.2.4.100"):
        read_dicom(save(ds, tmp_path / "mpeg.dcm"))


def test_odd_bit_depth(tmp_path):
    ds = make_ds(RAMP, bits_stored=10)
    ds.BitsAllocated = 12
    with pytest.raises(DicomError, match=r"odd.dcm: unsupported bit depth \(Bits Allocated 12"):
        read_dicom(save(ds, tmp_path / "odd.dcm", enforce=False))


def test_real_cr_chest_film_from_pydicom_data():
    pytest.importorskip("data_store", reason="pydicom-data not installed")
    from pydicom.data import get_testdata_file

    plain = read_dicom(get_testdata_file("RG1_UNCR.dcm"))  # MONOCHROME1, 15 bit, window 15000/30000
    assert plain.shape == (1955, 1841) and 0 <= plain.min() and plain.max() <= 1
    np.testing.assert_array_equal(read_dicom(get_testdata_file("RG1_J2KR.dcm")), plain)  # lossless JPEG 2000
    assert np.abs(read_dicom(get_testdata_file("RG1_J2KI.dcm")) - plain).mean() < 0.01  # lossy
    # higher = brighter: the spine/mediastinum (centre) is whiter than the lung fields
    rows = plain[500:1200]
    assert rows[:, 850:1000].mean() > rows[:, 350:600].mean() + 0.05
    assert rows[:, 850:1000].mean() > rows[:, 1250:1500].mean() + 0.05


def test_file_that_is_neither_dicom_nor_an_image_says_so(tmp_path):
    (tmp_path / "notes.dcm").write_text("patient notes, not an image\n" * 20)
    with pytest.raises(DicomError, match=r"notes.dcm: not a DICOM file .*nor an image format.*remove it"):
        read_image(tmp_path / "notes.dcm")


def test_non_image_dicom_cut_inside_a_value_says_copy_it_again(tmp_path):
    ds = make_ds(RAMP, ImageComments="CHEST " * 40)
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    path = save(ds, tmp_path / "sr.dcm")
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"CHEST CHEST") + 50])  # the file ends inside ImageComments
    with pytest.raises(DicomError, match=r"sr.dcm: the file ends inside its DICOM header"):
        read_dicom(path)
