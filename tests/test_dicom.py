"""Tests for pneumo_helpers.dicom: DICOM files into the gray pixels every other format gives."""

import builtins

import numpy as np
import pytest

import hostile_files as make
from pneumo_helpers import dicom
from pneumo_helpers.images import ImageError, describe, read_gray

pytest.importorskip("pydicom")  # the optional extra; `make test` installs it

LIMIT = 1 << 26  # bytes a dataset may inflate to, in these tests


class Refused(Exception):
    """What ``fail`` raises here: the reader must raise the caller's exception."""


def to_gray(path, *, max_pixels=1 << 24, limit=LIMIT):
    return dicom.to_gray(path.read_bytes(), max_pixels=max_pixels, limit=limit, fail=Refused)


def xray(size=96, seed=0):
    """A smooth gray image with some texture, like a small X-ray."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    base = 120 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    return np.clip(base + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)


def test_is_dicom_reads_the_part_10_signature(tmp_path):
    path = make.dicom(tmp_path / "chest.dcm", xray(32))
    assert dicom.is_dicom(path.read_bytes())
    assert not dicom.is_dicom(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert not dicom.is_dicom(b"DICM")  # the signature only counts after the preamble


def test_header_leaves_the_pixels_unless_asked(tmp_path):
    path = make.dicom(tmp_path / "chest.dcm", xray(40))
    data = path.read_bytes()
    ds = dicom.header(data, limit=LIMIT, fail=Refused)
    assert (ds.Rows, ds.Columns) == (40, 40) and "PixelData" not in ds
    assert "PixelData" in dicom.header(data, limit=LIMIT, fail=Refused, pixels=True)


def test_dicom_12_bit_is_stretched_to_8_bit_and_resized(tmp_path):
    pixels = xray(80).astype(np.uint16) * 16  # 12-bit range
    path = make.dicom(tmp_path / "chest.dcm", pixels, bits=12)
    gray = read_gray(path)
    assert gray.dtype == np.uint8 and gray.shape == (80, 80)
    assert gray.min() == 0 and gray.max() == 255
    # Same picture as the 8-bit source, up to the min-max stretch.
    assert np.corrcoef(gray.ravel(), pixels.ravel())[0, 1] > 0.999
    np.testing.assert_array_equal(to_gray(path), gray)
    assert read_gray(path, size=32).shape == (32, 32)
    assert describe(path) == dict(width=80, height=80, mode="MONOCHROME2/12-bit", format="DICOM")


def test_dicom_monochrome1_is_inverted_so_bone_stays_white(tmp_path):
    pixels = xray(64).astype(np.uint16) * 16
    normal = to_gray(make.dicom(tmp_path / "m2.dcm", pixels, bits=12))
    inverted = to_gray(make.dicom(tmp_path / "m1.dcm", pixels.max() - pixels, bits=12,
                                  photometric="MONOCHROME1"))
    assert np.abs(normal.astype(int) - inverted).max() <= 1


def test_dicom_window_from_the_file_is_applied(tmp_path):
    pixels = np.tile(np.arange(0, 4000, 50, dtype=np.uint16), (8, 1))  # 80 columns, 0..3950
    path = make.dicom(tmp_path / "w.dcm", pixels, bits=12, WindowCenter=1000, WindowWidth=1000)
    gray = to_gray(path)
    # Outside the window (below 500, above 1500) everything is black or white.
    assert (gray[:, pixels[0] < 450] == 0).all() and (gray[:, pixels[0] > 1550] == 255).all()


def test_a_flat_image_is_black_not_a_division_by_zero(tmp_path):
    gray = to_gray(make.dicom(tmp_path / "flat.dcm", np.full((40, 40), 77, np.uint16)))
    assert gray.shape == (40, 40) and not gray.any()


def test_the_pixel_budget_is_checked_before_decoding(tmp_path):
    path = make.dicom(tmp_path / "big.dcm", xray(64))
    assert to_gray(path, max_pixels=64 * 64).shape == (64, 64)
    with pytest.raises(Refused, match="64 x 64 pixels"):
        to_gray(path, max_pixels=64 * 64 - 1)


def test_more_than_one_frame_is_refused(tmp_path):
    pixels = np.concatenate([xray(32), xray(32, seed=1)])  # two 32 x 32 frames' worth of data
    path = make.dicom(tmp_path / "cine.dcm", pixels, Rows=32, NumberOfFrames=2)
    with pytest.raises(Refused, match="2 frames"):
        to_gray(path)


def test_a_dicom_without_an_image_is_refused(tmp_path):
    path = make.dicom(tmp_path / "report.dcm", xray(32))
    ds = dicom.header(path.read_bytes(), limit=LIMIT, fail=Refused)  # read without pixels
    ds.save_as(tmp_path / "no_pixels.dcm", enforce_file_format=True)
    with pytest.raises(Refused, match="PixelData"):
        to_gray(tmp_path / "no_pixels.dcm")


def test_a_damaged_header_is_refused_not_decoded(tmp_path):
    data = make.dicom(tmp_path / "chest.dcm", xray(32)).read_bytes()
    # The file meta group's first element (0002,0000 UL) claims a length of 65535 bytes.
    damaged = data[:132] + b"\x02\x00\x00\x00UL\xff\xff" + data[142:]
    with pytest.raises(Refused, match="(?i)damaged"):
        dicom.to_gray(damaged, max_pixels=1 << 24, limit=LIMIT, fail=Refused)


def test_a_deflated_dataset_is_measured_against_the_limit(tmp_path):
    path = make.deflated_dicom_bomb(tmp_path / "bomb.dcm", side=2_000)  # 4 MB inflated
    with pytest.raises(Refused, match="inflates to more than"):
        to_gray(path, limit=1 << 20)


def test_errors_through_read_gray_name_the_file_and_the_fix(tmp_path, monkeypatch):
    path = make.dicom(tmp_path / "chest.dcm", xray(32))
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(path.read_bytes()[:-100])  # pixel data shorter than Rows x Columns
    with pytest.raises(ImageError, match=r"damaged\.dcm: "):
        read_gray(damaged)

    real_import = builtins.__import__

    def no_pydicom(name, *args, **kwargs):
        if name.startswith("pydicom"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    with pytest.raises(ImageError, match=r"chest\.dcm: DICOM file, and pydicom is not "
                                         r"installed.*pneumo\[dicom\]"):
        read_gray(path)
