"""Stress tests: how a model's errors move when the images look as if taken elsewhere.

The official test split of the Kermany data is harder than any random cut of the training
split, and published models fail on it the same way: they call normal films pneumonia
(specificity falls, sensitivity stays). Validation metrics cannot show that, because
validation images come from the same distribution as the training images. This module gives
a cheap, honest proxy: apply a plausible *acquisition shift* to every validation image — a
different exposure curve, a softer or sharper detector, lower resolution, a different
processing pipeline (CLAHE), noise, tighter collimation — and measure ROC AUC, sensitivity and
specificity again *at the threshold chosen on the unshifted validation split*. A model whose
specificity collapses under a mild shift is unlikely to keep it on another hospital's films.

The shifts are fixed (same pixels every call) and act on the stored uint8 gray images, so two
models are compared on exactly the same inputs. They are not the official test split's shift
(which is unknown); they are a way to rank candidates by robustness, next to validation ROC AUC
and calibration, without ever looking at a test split.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pandas as pd

from . import evaluate
from .labels import encode_labels

__all__ = ["ACQUISITION", "FRAMING", "CROPS", "SHIFTS", "SUMMARY", "apply_shift", "stress_test",
           "crop_curve", "summarize"]


def _lut(images: np.ndarray, gamma: float) -> np.ndarray:
    table = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    # Indexing, not cv2.LUT: OpenCV reads the last axis of (N, S, S) as channels and refuses
    # S > 128, i.e. any model above 128 px.
    return table[images]


def _each(images: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(image) for image in images])


def _blur(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _sharpen(image: np.ndarray) -> np.ndarray:
    # Unsharp mask, amount 1: the edge enhancement many X-ray consoles apply by default.
    return cv2.addWeighted(image, 2.0, _blur(image, 1.5), -1.0, 0.0)


def _half_resolution(image: np.ndarray) -> np.ndarray:
    size = image.shape[1], image.shape[0]
    small = cv2.resize(image, (size[0] // 2, size[1] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)


def _clahe(image: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image)


def _crop_border(image: np.ndarray, per_side: float) -> np.ndarray:
    """Cut ``per_side`` of the side off every edge and resize back: tighter collimation."""
    height, width = image.shape
    dy, dx = int(round(height * per_side)), int(round(width * per_side))
    return cv2.resize(image[dy:height - dy, dx:width - dx], (width, height),
                      interpolation=cv2.INTER_AREA)


def _zoom_out(image: np.ndarray, per_side: float) -> np.ndarray:
    """Shrink the film and pad ``per_side`` of the side with black on every edge: a wider field
    of view (more of the body around the chest, or a smaller child in the same frame)."""
    height, width = image.shape
    dy, dx = int(round(height * per_side)), int(round(width * per_side))
    small = cv2.resize(image, (width - 2 * dx, height - 2 * dy), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(small, dy, height - small.shape[0] - dy, dx,
                              width - small.shape[1] - dx, cv2.BORDER_CONSTANT, value=0)


def _translate(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Move the film by a fraction of its side; the uncovered strip is black."""
    height, width = image.shape
    matrix = np.float32([[1, 0, dx * width], [0, 1, dy * height]])
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _noise(images: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    # A fixed seed: every model sees the same noisy pixels.
    noise = np.random.default_rng(0).normal(0.0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


# name -> function of a uint8 (N, S, S) batch; each mild enough that a radiologist would still
# read the film, and each a difference between real X-ray systems.
ACQUISITION: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gamma 0.7 (brighter)": lambda x: _lut(x, 0.7),
    "gamma 1.4 (darker)": lambda x: _lut(x, 1.4),
    "blur (sigma 1 px)": lambda x: _each(x, _blur),
    "sharpen (unsharp mask)": lambda x: _each(x, _sharpen),
    "half resolution": lambda x: _each(x, _half_resolution),
    "CLAHE": lambda x: _each(x, _clahe),
    "noise (sigma 8/255)": _noise,
}

# The same film framed differently: how much of the body is in view, where the chest sits.
# A model that reads the lungs keeps its calls; one that learned the field of view (borders,
# markers, the child's size in the frame) drifts towards one class as the framing changes.
CROPS = (0.05, 0.10, 0.15, 0.20)  # share of the side cut from every edge


def _framing() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    out = {f"crop {c:.0%} per side": (lambda x, c=c: _each(x, lambda i: _crop_border(i, c)))
           for c in CROPS}
    out.update({f"zoom out, pad {p:.0%} per side": (
        lambda x, p=p: _each(x, lambda i: _zoom_out(i, p))) for p in (0.05, 0.10)})
    out.update({f"shift {name}": (lambda x, d=d: _each(x, lambda i: _translate(i, *d)))
                for name, d in (("right 10%", (0.1, 0.0)), ("down 10%", (0.0, 0.1)),
                                ("up-left 7%", (-0.07, -0.07)))})
    return out


FRAMING = _framing()
SHIFTS = {**ACQUISITION, **FRAMING}


def apply_shift(images: np.ndarray, name: str) -> np.ndarray:
    """One of :data:`SHIFTS` applied to a batch.

    Args:
        images: uint8 ``(N, S, S)`` or ``(N, S, S, 1)`` gray images.
        name: a key of :data:`SHIFTS`, or ``"none"`` (a copy).

    Returns:
        uint8 array of the same shape.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) \
            or (images.ndim == 4 and images.shape[-1] != 1):
        raise ValueError("apply_shift expects uint8 gray images (N, S, S) or (N, S, S, 1), "
                         f"got dtype {images.dtype} and shape {images.shape}")
    if name != "none" and name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; choose from {['none', *SHIFTS]}")
    planes = np.ascontiguousarray(images.reshape(images.shape[:3]))
    out = planes.copy() if name == "none" else SHIFTS[name](planes)
    return out.reshape(images.shape)


def stress_test(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, y_true, *,
                threshold: float, shifts=None) -> pd.DataFrame:
    """Metrics of a model on a labelled split, unshifted and under each acquisition shift.

    Args:
        predict: function of uint8 images ``(N, S, S)`` returning P(PNEUMONIA) ``(N,)``,
            e.g. ``inference.LoadedModel.predict``.
        images: uint8 ``(N, S, S)`` or ``(N, S, S, 1)`` gray images of a validation split.
        y_true: ``(N,)`` labels, 0/1 or the class names.
        threshold: the operating point chosen on the *unshifted* validation split; it is kept
            fixed, as it would be on another hospital's films.
        shifts: names from :data:`SHIFTS` (default: all).

    Returns:
        DataFrame, one row per condition (``"none"`` first): ``shift, roc_auc, brier,
        recall, specificity, accuracy, mean_p_normal`` (mean P(PNEUMONIA) of the normal films:
        it rises before specificity falls).
    """
    y = encode_labels(y_true)
    if len(y) != len(images):
        raise ValueError(f"{len(images)} images but {len(y)} labels")
    rows = []
    for name in ["none", *(shifts or SHIFTS)]:
        shifted = apply_shift(images, name)
        p = np.asarray(predict(shifted.reshape(shifted.shape[:3]))).reshape(-1)
        df = evaluate.evaluate(y, p, threshold=threshold, n_boot=0).set_index("metric")["value"]
        rows.append(dict(shift=name, roc_auc=df["roc_auc"], brier=df["brier"],
                         recall=df["recall"], specificity=df["specificity"],
                         accuracy=df["accuracy"], mean_p_normal=float(p[y == 0].mean())))
    return pd.DataFrame(rows)


def crop_curve(stress: pd.DataFrame) -> pd.DataFrame:
    """The border-crop rows of a :func:`stress_test` table as a curve.

    Returns:
        DataFrame ``crop, roc_auc, recall, specificity`` with ``crop`` the share of the side cut
        per edge (0 for the unshifted row), ascending.
    """
    rows = stress[stress["shift"].isin(["none", *[f"crop {c:.0%} per side" for c in CROPS]])]
    crop = rows["shift"].map(lambda name: 0.0 if name == "none"
                             else float(name.split()[1].rstrip("%")) / 100)
    return (rows.assign(crop=crop)[["crop", "roc_auc", "recall", "specificity"]]
            .sort_values("crop").reset_index(drop=True))


#: The figures a comparison of recipes quotes from a :func:`stress_test` table (one row per
#: model in ``tools/sweep.py``'s summary, read back by the shipped model's card):
#: column -> (shift, metric, heading; ``None``: not in the card).
SUMMARY = {
    "val_auc": ("none", "roc_auc", "ROC AUC"),
    "val_spec": ("none", "specificity", "unshifted"),
    "crop15_auc": ("crop 15% per side", "roc_auc", None),
    "crop15_sens": ("crop 15% per side", "recall", None),
    "crop15_spec": ("crop 15% per side", "specificity", "15 % crop"),
    "crop20_spec": ("crop 20% per side", "specificity", "20 % crop"),
    "clahe_auc": ("CLAHE", "roc_auc", None),
    "clahe_spec": ("CLAHE", "specificity", "CLAHE"),
    "sharpen_spec": ("sharpen (unsharp mask)", "specificity", "unsharp mask"),
}


def summarize(stress: pd.DataFrame) -> dict[str, float]:
    """One model's :data:`SUMMARY` figures from its :func:`stress_test` table, and
    ``worst_spec``: its lowest specificity over every condition."""
    table = stress.set_index("shift")
    row = {column: float(table.loc[shift, metric])
           for column, (shift, metric, _) in SUMMARY.items()}
    return {**row, "worst_spec": float(table["specificity"].min())}
