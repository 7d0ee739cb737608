"""read_gray: the simplejpeg fast path against PIL, damaged and hostile files.

DICOM files: tests/test_dicom.py.
"""

import numpy as np
import pytest
from PIL import Image

from pneumo_helpers import images
from pneumo_helpers.images import ImageError, read_gray


def _xray(size=96, seed=0):
    """A smooth gray image with some texture, like a small X-ray."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    base = 120 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    return np.clip(base + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)


def test_jpeg_fast_path_gives_the_pixels_pil_gives(tmp_path, monkeypatch):
    rgb = np.dstack([_xray()] * 3)
    Image.fromarray(rgb).save(tmp_path / "x.jpeg", quality=90)
    fast = read_gray(tmp_path / "x.jpeg")
    with Image.open(tmp_path / "x.jpeg") as img:  # what PIL, a viewer's decoder, gives
        slow = np.asarray(img.convert("L"))
    assert fast.shape == slow.shape == (96, 96)
    np.testing.assert_array_equal(fast, slow)


def test_reduced_scale_decode_is_close_to_full_decode_then_resize(tmp_path):
    Image.fromarray(_xray(256)).save(tmp_path / "big.jpeg", quality=95)
    reduced = read_gray(tmp_path / "big.jpeg", size=64).astype(float)  # DCT scale 1/4
    # The same decoded pixels as a PNG, which is read whole and then resized.
    Image.fromarray(read_gray(tmp_path / "big.jpeg")).save(tmp_path / "big.png")
    full = read_gray(tmp_path / "big.png", size=64).astype(float)
    assert reduced.shape == (64, 64)
    assert np.abs(reduced - full).mean() < 3.0


def test_truncated_jpeg_is_an_error_not_a_gray_image(tmp_path):
    Image.fromarray(_xray()).save(tmp_path / "ok.jpeg")
    data = (tmp_path / "ok.jpeg").read_bytes()
    (tmp_path / "cut.jpeg").write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(ImageError, match=r"cut\.jpeg: corrupt or truncated"):
        read_gray(tmp_path / "cut.jpeg", size=32)


def test_jpeg_cut_in_half_with_an_end_marker_is_an_error(tmp_path):
    # libjpeg fills the missing half with grey and only warns; PIL and OpenCV return it.
    Image.fromarray(_xray(256)).save(tmp_path / "ok.jpeg", quality=90)
    data = (tmp_path / "ok.jpeg").read_bytes()
    (tmp_path / "half.jpeg").write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    for size in (None, 64):
        with pytest.raises(ImageError, match=r"half\.jpeg: corrupt or truncated JPEG data"):
            read_gray(tmp_path / "half.jpeg", size=size)


def test_pixel_bomb_png_is_refused_from_its_header(tmp_path):
    # A valid PNG header claiming 100,000 x 100,000 pixels, with no pixel data (~70 bytes).
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                        + chunk(b"IEND", b""))
    with pytest.raises(ImageError, match=r"bomb\.png: .*(pixels|decompression bomb)"):
        read_gray(tmp_path / "bomb.png", size=64)


def test_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(_xray(256)).save(tmp_path / "big.jpeg")
    Image.fromarray(_xray(256)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 256 * 255)
    for name in ("big.jpeg", "big.png"):
        with pytest.raises(ImageError, match=r"256 x 256 pixels, more than"):
            read_gray(tmp_path / name, size=64)


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_an_image_error(tmp_path):
    Image.fromarray(_xray()).save(tmp_path / "locked.jpeg")
    (tmp_path / "locked.jpeg").chmod(0)
    with pytest.raises(ImageError, match=r"locked\.jpeg: cannot be read"):
        read_gray(tmp_path / "locked.jpeg")


def test_read_error_of_any_kind_names_the_file(tmp_path, monkeypatch):
    # Root reads files whatever their mode, so a permission error is simulated.
    Image.fromarray(_xray()).save(tmp_path / "locked.jpeg")

    def refuse(self):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(type(tmp_path), "read_bytes", refuse)
    with pytest.raises(ImageError, match=r"locked\.jpeg: cannot be read \(Permission denied"):
        read_gray(tmp_path / "locked.jpeg")


def test_to_unit_scales_uint8_once_and_refuses_the_rest():
    from pneumo_helpers.images import to_unit

    x = to_unit(np.array([[0, 51, 255]], np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[0.0, 0.2, 1.0]])
    for bad in (x, np.array([0, 255], np.uint16), np.array([0, 1])):  # already scaled, 16-bit
        with pytest.raises(ValueError, match="uint8"):
            to_unit(bad)
