"""Reading one image file into the array every other module works with.

Chest X-rays arrive as 8-bit grayscale or RGB JPEGs (Kaggle), 16-bit PNGs (hospital exports),
RGBA PNGs (screenshots), palette images, TIFF, or DICOM files straight from the scanner (with
the optional extra ``pip install "pneumo[dicom]"``, which brings pydicom; see
:mod:`pneumo_helpers.dicom`). All of them become one thing here: a ``uint8`` grayscale array,
upright as a viewer shows it (EXIF orientation applied), optionally resized to a square.
:func:`to_unit` is the one step from that array to what a model takes: float32 in ``[0, 1]``.

Three rules hold for every container:

* **One strict decoder per format.** JPEGs go through simplejpeg (libjpeg-turbo, decoding
  straight to one channel, with DCT scaling when the target is much smaller); anything
  libjpeg-turbo reports — corrupt data, extraneous bytes, a JPEG kind it does not support —
  refuses the file, with no second, more lenient decoder behind it. The other formats
  (:data:`PIL_FORMATS`) go through PIL, where any warning PIL or pydicom raises, and any
  line libtiff prints while decoding, is a refusal too. A damaged film must not get a
  confident label.
* **One budget, checked before decoding.** The file's size (:data:`MAX_FILE_BYTES`, from
  ``stat``, before a byte is read), then the pixels its header claims (:data:`MAX_PIXELS`:
  every TIFF page, every DICOM frame, a deflated DICOM's inflated size); PNG text chunks are
  bounded by PIL's own limits, whose errors are refusals.
* **Errors are** :class:`ImageError`, one line naming the file and what to do, never a
  decoder's traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from . import dicom
from .gate import film_reason

__all__ = ["ImageError", "IMAGE_SUFFIXES", "PIL_FORMATS", "MAX_PIXELS", "MAX_FILE_BYTES",
           "MAX_PAGES", "read_gray", "describe", "to_unit"]

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                  ".dcm", ".dicom"}
#: What PIL may open: the raster formats above. Its other plugins (EPS calls Ghostscript,
#: and a dozen rarely-audited parsers) are never reached.
PIL_FORMATS = ("PNG", "BMP", "GIF", "WEBP", "TIFF")

# Larger than any detector (a 43 x 43 cm plate at 0.1 mm is 4,300 px a side: 18 Mpx).
MAX_PIXELS = 64_000_000
# Two bytes for each pixel of the budget, twice over: room for an uncompressed 16-bit image
# with its metadata; a larger file is refused before it is read.
MAX_FILE_BYTES = 4 * MAX_PIXELS
MAX_PAGES = 16  # a TIFF or DICOM with more pages than this is a stack, not a film
_ORIENTATION = 0x0112  # the EXIF tag viewers rotate by


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the fix.

    Attributes:
        path: the file, or ``None``. reason: the message without the file name.
    """

    def __init__(self, message: str, *, path=None, reason: str | None = None):
        super().__init__(message)
        self.path, self.reason = path, reason or message


def _failure(path: Path):
    """``fail(reason) -> ImageError`` for one file."""
    return lambda reason: ImageError(f"{path}: {reason}", path=path, reason=reason)


def _read(path: Path) -> bytes:
    """The bytes of a regular file within :data:`MAX_FILE_BYTES`, checked before reading."""
    fail = _failure(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise fail("a symbolic link that loops back on itself; fix the link") from None
        if os.path.lexists(path):
            raise fail("a symbolic link to a missing file; fix the link") from None
        if isinstance(exc, FileNotFoundError):
            raise fail("no such file; check the path") from None
        raise fail(f"cannot be read ({exc.strerror or exc}); check permissions") from None
    if stat.S_ISDIR(info.st_mode):
        if os.path.islink(path):
            raise fail("a symbolic link to a folder, not followed; name the folder itself to "
                       "predict the images in it")
        try:
            os.listdir(path)
        except OSError as exc:
            raise fail(f"a folder that cannot be read ({exc.strerror or exc}): its images were "
                       "left out; fix its permissions") from None
        raise fail("is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise fail(f"{kind}, not a regular file; copy the image into a file first")
    if info.st_size == 0:
        raise fail("empty file (0 bytes); re-copy or re-download it")
    if info.st_size > MAX_FILE_BYTES:
        raise fail(f"{info.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} an X-ray file "
                   "needs; check the file is what it claims, or downscale it")
    try:
        return path.read_bytes()
    except OSError as exc:  # permission, an I/O error of the disk
        raise fail(f"cannot be read ({exc.strerror or exc}); check permissions and the copy"
                   ) from None


# Warnings are process-wide state: the decoders that raise them (PIL, pydicom) run one at a
# time, while simplejpeg (which reports through exceptions) keeps decoding in parallel.
_STRICT = threading.Lock()


@contextlib.contextmanager
def _strict(path: Path):
    """Run a PIL or pydicom decode where any warning, or any error, refuses the file."""
    fail = _failure(path)
    with _STRICT, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except ImageError:
            raise
        except Image.DecompressionBombError:
            raise fail("claims more pixels than PIL allows (a decompression bomb or a huge "
                       "scan); downscale it") from None
        except Exception as exc:  # a damaged file makes decoders raise almost anything
            raise fail(f"corrupt, truncated or crafted image ({type(exc).__name__}: "
                       f"{str(exc)[:120]}); replace it with the original file") from None
    if caught:
        raise fail(f"the decoder warned: {str(caught[0].message)[:120]}; the file is damaged or "
                   "unusual — replace it with the original")


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise _failure(path)(f"{width} x {height} pixels, more than the {MAX_PIXELS:,} an "
                             "X-ray needs; downscale it (or check the file is what it claims)")


# How each format's files start: a file that starts so but PIL cannot open is damaged.
_MAGIC = {b"\x89PNG": "PNG", b"BM": "BMP", b"GIF8": "GIF", b"II*\x00": "TIFF",
          b"MM\x00*": "TIFF"}


def _open(path: Path, data: bytes) -> Image.Image:
    """PIL image of ``data`` (header only; call inside :func:`_strict`), every page's size
    checked against the budget."""
    try:
        img = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except Image.UnidentifiedImageError:
        kind = next((k for m, k in _MAGIC.items() if data.startswith(m)),
                    "WEBP" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None)
        if kind:
            raise _failure(path)(f"a damaged or truncated {kind} file (its header cannot be "
                                 "read); replace it with the original") from None
        raise _failure(path)(f"not an image in a supported format ({', '.join(PIL_FORMATS)}, "
                             "JPEG or DICOM); convert it to PNG") from None
    pages = getattr(img, "n_frames", 1) if img.format == "TIFF" else 1
    if pages > MAX_PAGES:
        raise _failure(path)(f"TIFF with {pages} pages; export the single X-ray page")
    for page in range(pages):
        img.seek(page)
        _check_pixels(path, *img.size)
    img.seek(0)
    return img


def _orient(gray: np.ndarray, orientation) -> np.ndarray:
    """``gray`` turned as EXIF ``orientation`` (1..8) tells a viewer to show it."""
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.T, 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].T,
             8: lambda a: np.rot90(a, 1)}
    turn = turns.get(orientation)
    return np.ascontiguousarray(turn(gray)) if turn else gray


def _chroma(rgb: np.ndarray) -> float:
    """Mean spread between the colour channels of uint8 ``(H, W, 3)``, in grey levels: 0 for
    a grey picture stored as RGB, tens for a colour photo."""
    return float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1)))  # uint8: max >= min


def _decode_jpeg(path: Path, data: bytes, size: int | None, colour: bool):
    """(gray, chroma) of a JPEG through simplejpeg; every libjpeg-turbo complaint refuses it."""
    fail = _failure(path)
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise fail(f"a JPEG libjpeg-turbo cannot read ({exc}); the file is damaged or of an "
                   "unusual kind (12-bit, lossless) — convert it to PNG") from None
    _check_pixels(path, width, height)
    # DCT scaling by 1/2, 1/4 or 1/8 only (the largest that still leaves at least size pixels
    # a side): libjpeg's other factors (7/8, 3/4...) interpolate, and would change the pixels
    # models were trained on.
    scale = max((s for s in (1, 2, 4, 8) if min(height, width) // s >= size), default=1) \
        if size else 1
    try:
        gray = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_height=-(-height // scale),
                                      min_width=-(-width // scale))[:, :, 0]
        chroma = 0.0
        if colour and colorspace not in ("Gray", "GRAY"):
            chroma = _chroma(simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=1,
                                                    min_width=1))
    except ValueError as exc:
        raise fail(f"corrupt or truncated JPEG data ({exc}); the file is damaged — replace it "
                   "with the original") from None
    if b"Exif\x00\x00" in data[:65536]:
        with _strict(path), Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            gray = _orient(gray, img.getexif().get(_ORIENTATION))
    return gray, chroma


def _pil_to_gray(img: Image.Image, colour: bool):
    """(gray, chroma) of any PIL mode, scaling high-bit-depth images to their own range."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit exports often use 10-12 bits of the range: stretch min..max to 0..255.
        arr = np.asarray(img, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise ValueError("pixels that are not finite numbers")
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return np.round(scaled).astype(np.uint8), 0.0
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Drop alpha: an X-ray screenshot's transparency carries no anatomy.
        img = img.convert("RGBA").convert("RGB")
    chroma = 0.0
    if colour and img.mode not in ("L", "1"):
        chroma = _chroma(np.asarray(img.convert("RGB"), dtype=np.uint8))
    gray = img if img.mode == "L" else img.convert("L")
    return np.asarray(gray, dtype=np.uint8), chroma


def _decode(path: Path, data: bytes, size: int | None, colour: bool):
    """(gray uint8 (H, W) upright, chroma) of a file's bytes; chroma is 0 unless ``colour``."""
    if data.startswith(b"\xff\xd8\xff"):
        return _decode_jpeg(path, data, size, colour)
    if dicom.is_dicom(data):
        with _strict(path):
            return dicom.to_gray(data, max_pixels=MAX_PIXELS, limit=MAX_FILE_BYTES,
                                 fail=_failure(path)), 0.0
    with _strict(path):
        with _open(path, data) as img:
            orientation = img.getexif().get(_ORIENTATION)
            with _c_library_messages(path) if img.format == "TIFF" else contextlib.nullcontext():
                img.load()
            gray, chroma = _pil_to_gray(img, colour)
    return _orient(gray, orientation), chroma


@contextlib.contextmanager
def _c_library_messages(path: Path):
    """Refuse the file when a C library prints on file descriptor 2 during the block: libtiff
    reports damage there ("Using code not yet in table") and may still return pixels. Run
    under :data:`_STRICT` (one such decode at a time); nothing reaches the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    failure = None
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except Exception as exc:  # judged below, once the descriptor is restored
            failure = exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        said = capture.read().decode("utf-8", "replace").strip().splitlines()
    if said:
        first = said[0].replace("tempfile.tif: ", "")[:120]  # PIL's name for a buffer
        raise _failure(path)(f"the TIFF decoder reported damage ({first}); replace it with "
                             "the original file")
    if failure is not None:
        raise failure


def to_unit(pixels) -> np.ndarray:
    """uint8 pixels ``0..255`` (any shape) -> float32 in ``[0, 1]``, the models' input range.

    The package's one pixel scaling: serving, training batches, augmentation and explanations
    all call it. Anything but uint8 is refused rather than guessed at: a float array may be
    scaled already, and scaled twice a film becomes a near-blank image.

    Raises:
        ValueError: ``pixels`` is not uint8.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels 0..255 as read_gray gives them, got dtype "
                         f"{pixels.dtype}; read the file with pneumo_helpers.images.read_gray")
    return pixels.astype(np.float32) / 255.0


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
        film: also refuse, as decoded and before resizing, what does not look like a chest
            film (see :func:`pneumo_helpers.gate.film_reason`): what ``pneumo`` does before it
            gives any label.

    Raises:
        ImageError: missing, unreadable, empty, truncated, corrupt, too large or non-image
            file; with ``film``, an image that does not look like a chest film.
    """
    path = Path(path)
    gray, chroma = _decode(path, _read(path), size, film)
    reason = film_reason(gray, chroma) if film else None
    if reason:
        raise _failure(path)(reason)
    if size is not None and gray.shape != (size, size):
        gray = _resize(gray, size)
    return gray


def describe(path: str | Path) -> dict:
    """Header facts of an image without decoding pixels: width, height, mode, format.

    Raises:
        ImageError: as :func:`read_gray`.
    """
    path = Path(path)
    data = _read(path)
    if dicom.is_dicom(data):
        with _strict(path):
            ds = dicom.header(data, limit=MAX_FILE_BYTES, fail=_failure(path))
        return dict(width=int(ds.get("Columns", 0)), height=int(ds.get("Rows", 0)),
                    mode=f"{ds.get('PhotometricInterpretation', '?')}/"
                         f"{ds.get('BitsStored', '?')}-bit", format="DICOM")
    with _strict(path):
        img = Image.open(io.BytesIO(data), formats=("JPEG", *PIL_FORMATS))
        with img:
            _check_pixels(path, *img.size)
            return dict(width=img.width, height=img.height, mode=img.mode, format=img.format)
