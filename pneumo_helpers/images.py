"""Reading one image file into the array every other module works with.

Chest X-rays arrive as 8-bit grayscale or RGB JPEGs (Kaggle), 16-bit PNGs (hospital exports),
RGBA PNGs (screenshots) or palette images. All of them become one thing here: a ``uint8``
grayscale array, optionally resized to a square. X-rays carry no colour, so keeping one channel
costs nothing and makes caches and models three times smaller.

Errors are raised as :class:`ImageError` naming the file and what to do, never as a PIL or
TensorFlow traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageError", "IMAGE_SUFFIXES", "read_gray", "describe"]

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"}

# Decompression-bomb guard stays on, but X-rays of 4k x 4k are legitimate.
Image.MAX_IMAGE_PIXELS = 64_000_000


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the fix."""


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-download it")
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image PIL can read (is it really a JPEG/PNG?); "
                         "remove it or replace it with the original") from None
    except OSError as exc:
        raise ImageError(f"{path}: unreadable ({exc}); check permissions and the copy") from None


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


def read_gray(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode ``path`` into a ``uint8`` array of shape ``(H, W)``, or ``(size, size)``.

    JPEGs are decoded at reduced scale when the target is much smaller (libjpeg's DCT
    scaling), which makes a 2k-pixel X-ray ~10x cheaper to read at 150 px.

    Raises:
        ImageError: missing, empty, truncated, corrupt or non-image file.
    """
    img = _open(Path(path))
    try:
        with img:
            if size is not None and img.format == "JPEG":
                img.draft("L", (size, size))
            gray = _to_gray(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc}); "
                         "replace it with the original file") from None
    if size is not None and gray.shape != (size, size):
        gray = np.asarray(Image.fromarray(gray).resize((size, size), Image.BILINEAR,
                                                       reducing_gap=2.0))
    return gray


def describe(path: str | Path) -> dict:
    """Header facts of an image without decoding pixels: width, height, mode, format.

    Raises:
        ImageError: as :func:`read_gray`.
    """
    img = _open(Path(path))
    with img:
        return dict(width=img.width, height=img.height, mode=img.mode, format=img.format)
