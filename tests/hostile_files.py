"""Generators of the hostile and degenerate inputs the tests feed to `pneumo` and its readers.

Each writes one file at ``path`` from a real film of the bundled sample (or from nothing) and
returns ``path``. They are small (under a megabyte written) however large the file claims to
be: bombs are deflated or sparse.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pneumo_helpers.config import SAMPLE_DIR

NORMAL_FILM = sorted((SAMPLE_DIR / "test" / "NORMAL").glob("*.jpeg"))[0]
PNEUMONIA_FILM = sorted((SAMPLE_DIR / "test" / "PNEUMONIA").glob("*.jpeg"))[0]


def film(path=NORMAL_FILM) -> np.ndarray:
    """A sample film as uint8 gray (H, W)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("L"))


def save(path: Path, pixels: np.ndarray, **options) -> Path:
    Image.fromarray(pixels).save(path, **options)
    return path


# --- 1. corrupt JPEG data ---------------------------------------------------------------------

def huffman_table_offset(data: bytes) -> int:
    """Offset of the first byte after a JPEG's first DHT (0xFFC4) marker and its length."""
    return data.index(b"\xff\xc4") + 4


def jpeg_with_zero_inserted(path: Path, at: int, source=NORMAL_FILM) -> Path:
    """The film with one zero byte inserted ``at`` bytes into its first Huffman table."""
    data = source.read_bytes()
    where = huffman_table_offset(data) + at
    path.write_bytes(data[:where] + b"\x00" + data[where:])
    return path


# --- 3, 4. crafted PNG and DICOM ----------------------------------------------------------------

def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def png_text_bomb(path: Path, inflated: int = 8 << 20) -> Path:
    """A real film as PNG with a zTXt chunk of a few kB that inflates to ``inflated`` bytes."""
    buffer = io.BytesIO()
    Image.fromarray(film()).save(buffer, format="PNG")
    data = buffer.getvalue()
    text = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * inflated, 9))
    end = data.rindex(b"IEND") - 4
    path.write_bytes(data[:end] + text + data[end:])
    return path


def dicom(path: Path, pixels: np.ndarray, *, bits: int = 8, photometric: str = "MONOCHROME2",
          short_by: int = 0, window_width: str | None = None, **extra) -> Path:
    """A single-frame ``bits``-bit-in-16 DICOM (explicit VR little endian), as a CR export, its
    pixel data ``short_by`` bytes shorter than the header says, its window width the text
    ``window_width``; ``extra`` sets more elements."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    data = pixels.astype(np.uint16).tobytes()
    ds.PixelData = data[:len(data) - short_by] if short_by else data
    for key, value in extra.items():
        setattr(ds, key, value)
    if window_width is not None:  # as a crafted file spells it: any text, whatever the VR says
        ds.add_new(0x00281050, "LO", "128")
        ds.add_new(0x00281051, "LO", window_width)
    ds.save_as(path, enforce_file_format=True)
    return path


def deflated_dicom_bomb(path: Path, side: int = 20_000) -> Path:
    """A deflated DICOM of a few hundred kB whose dataset holds side x side 8-bit pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    n = side * side
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, n)
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [squeeze.compress(body.getvalue() + pixel_header)]
    zeros = bytes(1 << 22)
    for _ in range(n // len(zeros)):
        out.append(squeeze.compress(zeros))
    out.append(squeeze.compress(bytes(n % len(zeros))) + squeeze.flush())
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta)
    path.write_bytes(head.getvalue() + b"".join(out))
    return path


def sparse_jpeg(path: Path, size: int = 6 << 30) -> Path:
    """A JPEG's first bytes, then a hole: ``size`` bytes on paper, a few kB on disk."""
    with open(path, "wb") as handle:
        handle.write(NORMAL_FILM.read_bytes()[:4096])
        handle.truncate(size)
    return path


# --- 6, 7. what is not a chest film, and films stored turned or inverted -----------------------

def noise(path: Path, seed: int = 0) -> Path:
    return save(path, np.random.default_rng(seed).integers(0, 256, (256, 256), dtype=np.uint8))


def text_screenshot(path: Path) -> Path:
    img = Image.new("L", (400, 300), 255)
    draw = ImageDraw.Draw(img)
    for line in range(14):
        draw.text((10, 8 + 20 * line), f"Line {line}: the quick brown fox jumps over it", fill=0)
    img.save(path)
    return path


def checkerboard(path: Path, square: int = 16) -> Path:
    yy, xx = np.mgrid[:256, :256] // square
    return save(path, ((yy + xx) % 2 * 255).astype(np.uint8))


def colour_photo(path: Path) -> Path:
    """Smooth blue sky over green ground, a red disc: a colour picture, as a JPEG."""
    yy, xx = np.mgrid[:240, :320]
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[..., 2] = np.where(yy < 120, 200, 40)
    rgb[..., 1] = np.where(yy < 120, 120, 160) + (xx // 8) % 20
    rgb[..., 0] = np.where((yy - 80) ** 2 + (xx - 220) ** 2 < 900, 230, 40)
    return save(path, rgb, quality=90)


def one_bit_film(path: Path) -> Path:
    Image.fromarray(film()).convert("1").save(path)
    return path


def two_grey_film(path: Path) -> Path:
    pixels = film()
    return save(path, np.where(pixels > np.median(pixels), 170, 60).astype(np.uint8))


def inverted_film(path: Path) -> Path:
    return save(path, 255 - film())


def rotated_film(path: Path) -> Path:
    return save(path, np.ascontiguousarray(np.rot90(film())))


def upside_down_with_exif(path: Path, source=NORMAL_FILM) -> Path:
    """The film stored upside down, with EXIF Orientation 3: upright in every viewer."""
    img = Image.fromarray(film(source)[::-1, ::-1].copy())
    exif = Image.Exif()
    exif[0x0112] = 3
    img.save(path, exif=exif)
    return path


# --- 12, 14. misleading messages and noise ------------------------------------------------------

def damaged_lzw_tiff(path: Path) -> Path:
    """A film as LZW TIFF with bytes inside its strip scrambled (libtiff prints on stderr)."""
    buffer = io.BytesIO()
    Image.fromarray(film()).save(buffer, format="TIFF", compression="tiff_lzw")
    data = bytearray(buffer.getvalue())
    for k in range(len(data) // 3, len(data) // 3 + 200):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def eps(path: Path) -> Path:
    """A tiny Encapsulated PostScript file (PIL would hand it to Ghostscript)."""
    path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
                    "newpath 0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n")
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def symlink_loop(path: Path) -> Path:
    os.symlink(path.name, path)
    return path
