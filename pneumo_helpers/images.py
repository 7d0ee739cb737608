"""Reading one image file into the array every other module works with.

Chest X-rays arrive as 8-bit grayscale or RGB JPEGs (Kaggle), 16-bit PNGs (hospital exports),
RGBA PNGs (screenshots), palette images or DICOM files straight from the scanner (with the
optional extra ``pip install "pneumo[dicom]"``, which brings pydicom). All of them become one thing here: a ``uint8``
grayscale array, optionally resized to a square. X-rays carry no colour, so keeping one channel
costs nothing and makes caches and models three times smaller.

Speed matters here: ``pneumo predict`` and every cold cache go through :func:`read_gray`. JPEGs
take a fast path through simplejpeg (libjpeg-turbo decoding straight to one channel, with DCT
scaling when the target is much smaller) and every resize uses ``cv2.INTER_AREA``; the decoded
pixels are identical to PIL's and OpenCV's. simplejpeg is strict: data libjpeg calls corrupt
(a file cut short with an end marker appended, damaged entropy data) is an error for that file,
where PIL and OpenCV fill the missing part with grey and carry on — a damaged film must not get
a confident label. Everything else (PNG, 16-bit, RGBA, palette, TIFF) and JPEGs simplejpeg does
not support (12-bit, arithmetic coding) go through PIL.

Images larger than :data:`MAX_PIXELS` are refused from their header, before any pixel is
decoded: a 74-byte PNG can claim 100,000 x 100,000 pixels.

Errors are raised as :class:`ImageError` naming the file and what to do, never as a PIL or
TensorFlow traceback.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageError", "IMAGE_SUFFIXES", "MAX_PIXELS", "MIN_SIDE", "read_gray", "describe",
           "implausible"]

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}

# Larger than any detector (a 43 x 43 cm plate at 0.1 mm is 4,300 px a side: 18 Mpx).
MAX_PIXELS = 64_000_000
# Smaller than this a side, or of one grey level, an image cannot be a chest film.
MIN_SIDE = 32


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the fix."""


_JPEG_START = b"\xff\xd8\xff"


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(f"{path}: {width} x {height} pixels, more than the {MAX_PIXELS:,} an "
                         "X-ray needs; downscale it (or check the file is what it claims)")


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
        img = Image.open(io.BytesIO(data) if data is not None else path)
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: claims more pixels than PIL allows (a decompression bomb "
                         "or a huge scan); downscale it") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image PIL can read (is it really a JPEG/PNG?); "
                         "remove it or replace it with the original") from None
    except OSError as exc:
        raise ImageError(f"{path}: unreadable ({exc}); check permissions and the copy") from None
    _check_pixels(path, *img.size)
    return img


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


def _decode_jpeg(path: Path, data: bytes, size: int | None) -> np.ndarray | None:
    """simplejpeg decode to one channel, or None to let PIL handle a JPEG it does not support.

    Raises:
        ImageError: corrupt or truncated data, or too many pixels.
    """
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    _check_pixels(path, width, height)
    # DCT scaling by 1/2, 1/4 or 1/8 only (the largest that still leaves at least size pixels
    # a side): libjpeg's other factors (7/8, 3/4...) interpolate, and would change the pixels
    # models were trained on. EXIF orientation is ignored, as PIL does.
    scale = max((s for s in (1, 2, 4, 8) if min(height, width) // s >= size), default=1) \
        if size else 1
    minimum = dict(min_height=-(-height // scale), min_width=-(-width // scale))
    try:
        return simplejpeg.decode_jpeg(data, colorspace="GRAY", **minimum)[:, :, 0]
    except ValueError as exc:
        message = str(exc)
        if "orrupt" in message or "remature" in message or "truncated" in message.lower():
            raise ImageError(f"{path}: corrupt or truncated JPEG data ({message}); the file is damaged — "
                             "replace it with the original") from None
        return None  # 12-bit, arithmetic coding, CMYK...: PIL's turn


def _resize(gray: np.ndarray, size: int) -> np.ndarray:
    # INTER_AREA averages the source pixels under each target pixel when shrinking (no
    # aliasing of rib edges), and is bilinear when enlarging.
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def read_gray(path: str | Path, size: int | None = None, *, film: bool = False) -> np.ndarray:
    """Decode ``path`` into a ``uint8`` array of shape ``(H, W)``, or ``(size, size)``.

    JPEGs are decoded at reduced scale when the target is much smaller (libjpeg's DCT
    scaling), which makes a 2k-pixel X-ray ~10x cheaper to read at 150 px. Resizing ignores
    the aspect ratio (Kaggle's X-rays are not square; the models take squares).

    Args:
        film: also refuse, as decoded and before resizing, what cannot be a chest film (see
            :func:`implausible`): what ``pneumo`` does before it gives any label.

    Raises:
        ImageError: missing, unreadable, empty, truncated, corrupt, too large or non-image
            file; with ``film``, an image that cannot be a chest film.
    """
    path = Path(path)
    _check_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:  # permission, a FIFO, an I/O error of the disk
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc}); check permissions "
                         "and that it is a regular file") from None
    gray = _decode_jpeg(path, data, size) if data.startswith(_JPEG_START) else None
    if gray is None and _is_dicom(data):
        gray = _dicom_to_gray(path, data)
    if gray is None:
        img = _open(path, data)
        try:
            with img:
                if size is not None and img.format == "JPEG":
                    img.draft("L", (size, size))
                gray = _to_gray(img)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{path}: corrupt or truncated image ({exc}); "
                             "replace it with the original file") from None
    reason = implausible(gray) if film else None
    if reason:
        raise ImageError(f"{path}: {reason}")
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


def implausible(gray: np.ndarray) -> str | None:
    """Why a decoded image cannot be a chest film, or ``None`` when it could be one.

    A model called on a 1 x 1 image or a blank frame still returns a probability — often a
    confident one. Such input is refused instead: fewer than :data:`MIN_SIDE` pixels a side, or
    a single grey level.

    Args:
        gray: uint8 ``(H, W)`` as decoded, before resizing.
    """
    height, width = gray.shape[:2]
    if min(height, width) < MIN_SIDE:
        return f"{width} x {height} pixels: too small to be a chest film (at least {MIN_SIDE} a side)"
    if int(gray.max()) - int(gray.min()) == 0:
        return "blank image (a single grey level): not a chest film"
    return None
