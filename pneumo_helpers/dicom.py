"""DICOM files (Part 10) into the uint8 grayscale array :mod:`pneumo_helpers.images` gives.

Needs the optional extra ``pip install "pneumo[dicom]"`` (pydicom). Every size is checked from
the header before pixels are decoded: the inflated size of a deflated dataset, and rows x
columns x frames against the pixel budget. A file pydicom warns about, or whose window cannot
be applied, is refused rather than decoded leniently.
"""

from __future__ import annotations

import io
import math
import zlib
from typing import Callable

import numpy as np

__all__ = ["is_dicom", "header", "to_gray"]

_DEFLATED = "1.2.840.10008.1.2.1.99"


def is_dicom(data: bytes) -> bool:
    """Whether ``data`` starts like a DICOM Part 10 file: a 128-byte preamble, then "DICM"."""
    return data[128:132] == b"DICM"


def _pydicom(fail: Callable[[str], Exception]):
    try:
        import pydicom
    except ImportError:
        raise fail("DICOM file, and pydicom is not installed; install the optional extra: "
                   "pip install \"pneumo[dicom]\"") from None
    return pydicom


def _check_inflated_size(data: bytes, limit: int, fail) -> None:
    """Refuse a deflated dataset that inflates past ``limit`` bytes, before pydicom inflates
    it whole (a few hundred kB of zeros can hold gigabytes)."""
    pydicom = _pydicom(fail)
    stream = io.BytesIO(data)
    try:
        pydicom.filereader.read_preamble(stream, False)
        meta = pydicom.filereader._read_file_meta_info(stream)
    except Exception as exc:  # pydicom raises many types for a damaged header
        raise fail(f"damaged DICOM header ({type(exc).__name__}); export it again from the "
                   "PACS") from None
    if str(meta.get("TransferSyntaxUID", "")) != _DEFLATED:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending, size = data[stream.tell():], 0
    try:  # counted a megabyte at a time: the check itself holds no more than that
        while pending and size <= limit:
            size += len(inflater.decompress(pending, 1 << 20))
            pending = inflater.unconsumed_tail
    except zlib.error:
        raise fail("damaged deflated DICOM data; export it again from the PACS") from None
    if size > limit:
        raise fail(f"deflated DICOM that inflates to more than {limit:,} bytes (a "
                   "decompression bomb or a huge scan); export a downscaled image")


def header(data: bytes, *, limit: int, fail, pixels: bool = False):
    """The pydicom dataset of a DICOM file, with pixel data only when ``pixels``.

    Args:
        limit: largest size in bytes the dataset may have once inflated.
        fail: ``fail(reason) -> Exception`` for a refusal naming what to do.
    """
    pydicom = _pydicom(fail)
    _check_inflated_size(data, limit, fail)
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise fail(f"damaged DICOM file ({type(exc).__name__}: {exc}); export it again from "
                   "the PACS") from None


def _pixel_array(ds, fail) -> np.ndarray:
    if "PixelData" not in ds:
        raise fail("DICOM file without an image (no PixelData); it may be a report or "
                   "structured document")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    compressed = bool(syntax) and syntax.is_compressed
    if not compressed:
        rows, columns = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
        expected = rows * columns * int(ds.get("SamplesPerPixel", 1) or 1) \
            * int(ds.get("NumberOfFrames", 1) or 1) * (int(ds.get("BitsAllocated", 8)) // 8)
        if len(ds.PixelData) < expected:
            raise fail(f"DICOM pixel data is shorter than its header says ({len(ds.PixelData):,} "
                       f"of {expected:,} bytes): the file is cut short; export it again")
    try:
        return ds.pixel_array
    except Exception as exc:  # no decoder for the compression, damaged data, ...
        hint = ("install a decoder: pip install pylibjpeg pylibjpeg-libjpeg" if compressed
                and "plugin" in str(exc).lower() else "export it again from the PACS")
        raise fail(f"cannot decode the DICOM pixels ({type(exc).__name__}); {hint}") from None


def _window_is_usable(ds) -> bool:
    if "WindowWidth" not in ds:
        return True
    widths = ds.WindowWidth if ds["WindowWidth"].VM > 1 else [ds.WindowWidth]
    try:
        return all(math.isfinite(float(w)) and float(w) > 0 for w in widths)
    except (TypeError, ValueError):
        return False


def to_gray(data: bytes, *, max_pixels: int, limit: int, fail) -> np.ndarray:
    """DICOM -> uint8 gray ``(H, W)``: modality LUT, the file's own window (VOI LUT) if it
    has one, the stored range stretched to 0..255, and MONOCHROME1 (white = low values)
    inverted.

    Args:
        max_pixels: pixel budget (rows x columns x frames), checked before decoding.
        limit, fail: as :func:`header`.
    """
    ds = header(data, limit=limit, fail=fail, pixels=True)
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    width, height = int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0)
    if width * height * frames > max_pixels:
        raise fail(f"{width} x {height} pixels x {frames} frame(s), more than the "
                   f"{max_pixels:,} an X-ray needs; downscale it (or check the file)")
    if frames > 1:
        raise fail(f"DICOM with {frames} frames; export the single X-ray frame to predict on it")
    arr = _pixel_array(ds, fail)
    if int(ds.get("SamplesPerPixel", 1)) == 3:  # secondary capture in colour
        arr = arr.astype(np.float32).mean(axis=-1)
    else:
        if not _window_is_usable(ds):
            raise fail(f"DICOM window width {ds.get('WindowWidth')!s} is not a positive number; "
                       "fix the export's window (VOI LUT) or export it again")
        arr = apply_voi_lut(apply_modality_lut(arr, ds), ds)
    arr = np.asarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise fail("DICOM pixels are not finite after its LUTs; export it again")
    lo, hi = float(arr.min()), float(arr.max())
    gray = np.round((arr - lo) / (hi - lo) * 255.0) if hi > lo else np.zeros_like(arr)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        gray = 255.0 - gray
    return gray.astype(np.uint8)
