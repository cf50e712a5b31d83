"""read_image: PNG/JPEG 8 and 16 bit, and every bad-file case names the file (notebook 12)."""

import re

import numpy as np
import pytest
from PIL import Image

from joimternet_lite.data.errors import ImageReadError
from joimternet_lite.data.images import is_dicom, list_image_files, read_image


@pytest.fixture
def ramp():
    return np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1))  # (48, 64)


def test_png_8bit_round_trip(tmp_path, ramp):
    Image.fromarray(ramp).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (48, 64)
    np.testing.assert_allclose(out, ramp / 255.0, atol=1e-7)


def test_png_16bit_uses_full_16bit_range(tmp_path):
    values = np.array([[0, 1000, 65535]], dtype=np.uint16).repeat(4, 0)
    Image.fromarray(values).save(tmp_path / "b.png")
    np.testing.assert_allclose(read_image(tmp_path / "b.png"), values / 65535.0, atol=1e-7)


def test_rgb_jpeg_becomes_grey_and_kaggle_name_is_png(tmp_path, ramp):
    Image.fromarray(np.stack([ramp] * 3, -1)).save(tmp_path / "1_IM-0001-1001.dcm.jpg", quality=95)
    path = tmp_path / "1_IM-0001-1001.dcm.jpg"
    assert not is_dicom(path)
    assert np.abs(read_image(path) - ramp / 255.0).mean() < 0.02


def test_jpeg_draft_keeps_at_least_min_size(tmp_path):
    Image.fromarray(np.full((800, 600), 128, np.uint8)).save(tmp_path / "big.jpg")
    small = read_image(tmp_path / "big.jpg", min_size=128)
    assert min(small.shape) >= 128 and small.shape[0] < 800


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_names_file_and_fix(tmp_path, ramp, suffix):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(ramp).save(path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.(png|jpg).*truncated or corrupt"):
        read_image(path)


def test_garbage_zero_byte_and_missing(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(ImageReadError, match=r"empty.png: file is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="gone.png: file not found"):
        read_image(tmp_path / "gone.png")


def test_extensionless_dicom_is_found_by_its_marker(tmp_path):
    from dicom_files import RAMP, make_ds, save

    path = save(make_ds(RAMP, bits_stored=10), tmp_path / "IM000001")  # DICOMDIR-style name, no suffix
    (tmp_path / "README").write_text("not an image")
    assert is_dicom(path) and not is_dicom(tmp_path / "README")
    np.testing.assert_allclose(read_image(path), RAMP / 1023.0, atol=1e-6)


@pytest.fixture
def odd_folder(tmp_path, ramp):
    """An image folder with one entry of each kind that is not a regular file, beside real images."""
    import os

    Image.fromarray(ramp).save(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "folder.png").mkdir()
    Image.fromarray(ramp).save(tmp_path / "folder.png" / "inner.png")
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "dangling.dcm").symlink_to("gone.dcm")
    (tmp_path / "notes.txt").write_text("not an image name: not listed at all")
    return tmp_path


REASONS = {"pipe.png": r"not a regular file \(a FIFO\)", "folder.png": r"not a regular file \(a folder\)",
           "loop.png": r"a symbolic link loop", "dangling.dcm": r"a symbolic link to gone\.dcm, which does not exist"}


def test_entries_that_are_not_regular_files_are_listed_with_what_they_are(odd_folder):
    files, refused = list_image_files(odd_folder)
    assert files == [odd_folder / "folder.png" / "inner.png", odd_folder / "good.png"]
    assert [p.name for p, _ in refused] == sorted(REASONS)
    for path, reason in refused:
        assert re.match(rf"{path}: {REASONS[path.name]}", reason), reason


@pytest.mark.parametrize("name", sorted(REASONS))
def test_reading_an_entry_that_is_not_a_regular_file_says_what_it_is_without_opening_it(odd_folder, name):
    with pytest.raises(ImageReadError, match=rf"{name}: {REASONS[name]}"):
        read_image(odd_folder / name)  # a FIFO opened would block here


@pytest.mark.parametrize(("side", "pixels"), [(40, 1600), (50, 2500)])  # Pillow warns above the limit, raises above 2x
def test_a_decompression_bomb_is_refused_as_one(tmp_path, monkeypatch, side, pixels):
    import warnings

    Image.new("L", (side, side)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError, match=rf"bomb\.png: decompression bomb \({pixels} pixels, limit 1000\)"):
            read_image(tmp_path / "bomb.png")
    assert escaped == []


def test_the_warnings_of_a_file_that_reads_go_on_once_each_from_the_line_that_raised_them(tmp_path, ramp,
                                                                                          monkeypatch):
    import warnings

    from joimternet_lite.data import images

    real = images.to_unit_float

    def warning_three_times(img, path):  # stands in for Pillow or pydicom warning about a file it still reads
        for text in ("odd chunk", "odd chunk", "another odd chunk"):
            warnings.warn(text, UserWarning, stacklevel=1)
        return real(img, path)

    monkeypatch.setattr(images, "to_unit_float", warning_three_times)
    Image.fromarray(ramp).save(tmp_path / "a.png")
    with warnings.catch_warnings(record=True) as passed_on:  # as search's reader_warnings catches them
        warnings.simplefilter("always")
        np.testing.assert_allclose(read_image(tmp_path / "a.png"), ramp / 255.0, atol=1e-7)
    assert [str(w.message) for w in passed_on] == ["odd chunk", "another odd chunk"]
    assert {w.filename for w in passed_on} == {__file__}  # the library's line, which names the library
