"""Whether a decoded image looks like a chest radiograph, before any model is asked.

A model returns a probability for anything — noise, a screenshot, an upside-down film — and
often a confident one. ``pneumo`` abstains instead when an image fails any of these checks,
each a property every training film has:

* **big enough and not blank** (:func:`implausible`);
* **grey**: the colour channels of a photo differ, those of a film stored as RGB do not;
* **many grey levels**: no two 1/32 slices of the grey range hold nearly all pixels (a 1-bit
  or two-level image, a text screenshot);
* **a chest's layout**: the image, shrunk to :data:`THUMB` x :data:`THUMB` and standardised,
  correlates with the mean training film and lies near the training films' principal
  subspace (noise, patterns, text and photos do not; an inverted film correlates negatively);
* **upright**: it matches the mean film better than its own rotations by 90, 180 or 270
  degrees do (EXIF orientation is applied before, as viewers do).

The statistics (mean film, principal components, thresholds) come from the training films
alone and live in ``gate_stats.npz`` beside this module, written by ``tools/gate_stats.py``.
``benchmarks/bench_gate.py`` measures what the gate rejects of real films and catches of
non-films (README, "The ``pneumo`` command").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["MIN_SIDE", "THUMB", "STATS_FILE", "GateStats", "implausible", "features",
           "film_reason", "load_stats", "abstentions"]

# Smaller than this a side, or of one grey level, an image cannot be a chest film.
MIN_SIDE = 32
THUMB = 32  # side of the standardised thumbnail the layout checks compare, in pixels
STATS_FILE = Path(__file__).with_name("gate_stats.npz")


@dataclass(frozen=True)
class GateStats:
    """What the training films look like, and where the gate draws its lines.

    Attributes:
        mean: float32 (THUMB*THUMB,) mean standardised thumbnail.
        components: float32 (K, THUMB*THUMB) orthonormal principal directions around ``mean``.
        template: float32 (THUMB, THUMB) standardised mean film (unit variance).
        max_chroma: mean channel spread, in grey levels, above which an image is colour.
        max_top2: share of pixels in the two fullest of 32 grey bins above which an image
            has too few levels.
        min_correlation: correlation with ``template`` below which the layout is not a
            chest's. max_residual: mean squared distance from the principal subspace (in
            units of the thumbnail's variance) above which it is not either.
        min_upright_margin: correlation an image must keep over its best rotation.
    """

    mean: np.ndarray
    components: np.ndarray
    template: np.ndarray
    max_chroma: float
    max_top2: float
    min_correlation: float
    max_residual: float
    min_upright_margin: float

    @functools.cached_property
    def turned_templates(self) -> np.ndarray:
        """(THUMB*THUMB, 4): the template as stored, then turned back by 90, 180, 270 degrees."""
        return np.stack([np.rot90(self.template, -k).ravel() for k in range(4)], axis=1)

    def save(self, path: Path = STATS_FILE) -> None:
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        np.savez_compressed(path, **{k: np.asarray(v, np.float32 if np.ndim(v) else np.float64)
                                     for k, v in fields.items()})


@functools.lru_cache(maxsize=1)
def load_stats(path: Path = STATS_FILE) -> GateStats:
    """The stored :class:`GateStats` (read once per process)."""
    with np.load(path) as stored:
        return GateStats(**{k: (stored[k] if stored[k].ndim else float(stored[k]))
                            for k in stored.files})


def implausible(gray: np.ndarray) -> str | None:
    """Why a decoded image cannot be a chest film by its size or range, or ``None``.

    Args:
        gray: uint8 ``(H, W)`` as decoded, before resizing.
    """
    height, width = gray.shape[:2]
    if min(height, width) < MIN_SIDE:
        return (f"{width} x {height} pixels: too small to be a chest film (at least {MIN_SIDE} "
                "a side)")
    if int(gray.max()) - int(gray.min()) == 0:
        return "blank image (a single grey level): not a chest film"
    return None


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """float32 (THUMB, THUMB) of uint8 ``gray`` (H, W), zero mean and unit variance (all zeros
    for a flat image)."""
    small = cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    spread = float(small.std())
    return (small - small.mean()) / spread if spread > 1e-3 else np.zeros_like(small)


def features(gray: np.ndarray, chroma: float = 0.0, stats: GateStats | None = None) -> dict:
    """The numbers the gate compares, for uint8 ``gray`` (H, W) of colour spread ``chroma``.

    Returns:
        dict of chroma, top2, correlation, residual, upright_margin (see :class:`GateStats`).
    """
    stats = stats or load_stats()
    counts = np.bincount(gray.ravel() >> 3, minlength=32)
    top2 = float(np.sort(counts)[-2:].sum() / gray.size)
    z = thumbnail(gray).ravel()
    # The template as given and turned (one product for all four, as this runs once a film):
    # mean(rot90(z, k) * T) is mean(z * rot90(T, -k)).
    correlation, *rotations = z @ stats.turned_templates / z.size
    centred = z - stats.mean
    coords = stats.components @ centred
    residual = float((centred @ centred - coords @ coords) / centred.size)
    return dict(chroma=float(chroma), top2=top2, correlation=float(correlation),
                residual=residual, upright_margin=float(correlation - max(rotations)))



def film_reason(gray: np.ndarray, chroma: float = 0.0,
                stats: GateStats | None = None) -> str | None:
    """Why ``gray`` does not look like a chest film, or ``None`` when it does.

    Args:
        gray: uint8 ``(H, W)`` as decoded (upright), before resizing.
        chroma: its colour spread (0 for a grey source), see :class:`GateStats`.
    """
    reason = implausible(gray)
    if reason:
        return reason
    stats = stats or load_stats()
    f = features(gray, chroma, stats)
    if f["chroma"] > stats.max_chroma:
        return f"a colour image (channel spread {f['chroma']:.0f}): not a chest film"
    if f["top2"] > stats.max_top2:
        return (f"too few grey levels ({f['top2']:.0%} of pixels in two): a 1-bit, two-level "
                "or drawn image, not a chest film")
    if f["correlation"] < -stats.min_correlation:
        return "looks like an inverted (negative) chest film; invert it back to predict on it"
    if f["correlation"] < stats.min_correlation or f["residual"] > stats.max_residual:
        return ("does not have the layout of a chest film (correlation "
                f"{f['correlation']:.2f}, distance {f['residual']:.2f}): not a chest film")
    if f["upright_margin"] < stats.min_upright_margin:
        return "looks like a chest film turned on its side or upside down; rotate it upright"
    return None


def abstentions(images) -> dict[int, str]:
    """The films of a stack the gate would abstain on: ``{index: reason}``.

    ``images``: uint8 grey films (N, H, W), e.g. a split as 05 holds it (already resized, so
    a few borderline films may be judged differently from their files)."""
    stats = load_stats()
    found = {}
    for i, image in enumerate(np.asarray(images)):
        reason = film_reason(image, 0.0, stats)
        if reason:
            found[i] = reason
    return found
