"""read_gray: the simplejpeg fast path against PIL, damaged and hostile files, DICOM files."""

import builtins

import numpy as np
import pytest
from PIL import Image

from pneumo_helpers import images
from pneumo_helpers.images import ImageError, describe, read_gray


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
    full = images._resize(read_gray(tmp_path / "big.jpeg"), 64).astype(float)
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


@pytest.mark.parametrize("image, reason", [
    (np.zeros((1, 1), np.uint8), "too small"),
    (np.full((300, 300), 117, np.uint8), "blank image"),
])
def test_images_that_cannot_be_chest_films_are_named(image, reason):
    assert reason in images.implausible(image)
    assert images.implausible(_xray()) is None


# --- DICOM ----------------------------------------------------------------------------------

def _write_dicom(path, pixels: np.ndarray, *, photometric="MONOCHROME2", bits=12, **extra):
    """A minimal single-frame DICOM file (Part 10, explicit VR little endian), as a CR export."""
    pytest.importorskip("pydicom")  # the optional extra; `make test` installs it
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_12_bit_is_stretched_to_8_bit_and_resized(tmp_path):
    pixels = _xray(80).astype(np.uint16) * 16  # 12-bit range
    path = _write_dicom(tmp_path / "chest.dcm", pixels)
    gray = read_gray(path)
    assert gray.dtype == np.uint8 and gray.shape == (80, 80)
    assert gray.min() == 0 and gray.max() == 255
    # Same picture as the 8-bit source, up to the min-max stretch.
    assert np.corrcoef(gray.ravel(), pixels.ravel())[0, 1] > 0.999
    assert read_gray(path, size=32).shape == (32, 32)
    assert describe(path) == dict(width=80, height=80, mode="MONOCHROME2/12-bit", format="DICOM")


def test_dicom_monochrome1_is_inverted_so_bone_stays_white(tmp_path):
    pixels = _xray(64).astype(np.uint16) * 16
    normal = read_gray(_write_dicom(tmp_path / "m2.dcm", pixels))
    inverted = read_gray(_write_dicom(tmp_path / "m1.dcm", pixels.max() - pixels,
                                      photometric="MONOCHROME1"))
    assert np.abs(normal.astype(int) - inverted).max() <= 1


def test_dicom_window_from_the_file_is_applied(tmp_path):
    pixels = np.tile(np.arange(0, 4000, 50, dtype=np.uint16), (8, 1))  # 80 columns, 0..3950
    path = _write_dicom(tmp_path / "w.dcm", pixels, WindowCenter=1000, WindowWidth=1000)
    gray = read_gray(path)
    # Outside the window (below 500, above 1500) everything is black or white.
    assert (gray[:, pixels[0] < 450] == 0).all() and (gray[:, pixels[0] > 1550] == 255).all()


def test_dicom_errors_name_the_file_and_the_fix(tmp_path, monkeypatch):
    path = _write_dicom(tmp_path / "chest.dcm", _xray(32).astype(np.uint16))
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


def test_read_gray_converts_every_mode_to_the_same_shape(tmp_path):
    gray = np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8)
    rgb = np.dstack([gray] * 3)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpeg")
    Image.fromarray(np.dstack([rgb, np.full((40, 40), 9, np.uint8)])).save(
        tmp_path / "rgba.png")
    Image.fromarray(gray.astype(np.uint16) * 256).save(tmp_path / "deep.png")
    Image.fromarray(gray).save(tmp_path / "gray.png")
    outs = [read_gray(tmp_path / n, size=32) for n in ("rgb.jpeg", "rgba.png", "deep.png",
                                                          "gray.png")]
    assert all(o.shape == (32, 32) and o.dtype == np.uint8 for o in outs)
    # 16-bit content is stretched to the 8-bit range, not truncated to black/white.
    deep = read_gray(tmp_path / "deep.png")
    assert deep.max() == 255 and len(np.unique(deep)) > 100
    with pytest.raises(ImageError, match="no such file"):
        read_gray(tmp_path / "missing.png")
