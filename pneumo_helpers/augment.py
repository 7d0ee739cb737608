"""Random, label-preserving changes to X-ray batches (:class:`Augment`) and the named recipes.

:class:`Augment` runs per batch inside the ``tf.data`` stream of :mod:`.generators`: one fused
affine ``cv2.warpAffine`` per image on uint8 pixels, then one lookup table for the intensity
changes, because OpenCV releases the GIL and keeps both cores busy. Everything is seeded.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import tensorflow as tf

from .images import to_unit

__all__ = ["AUGMENTATIONS", "Augment"]

# Keras' fill modes as OpenCV borders ("reflect" repeats the edge pixel: BORDER_REFLECT).
_BORDERS = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT,
            "constant": cv2.BORDER_CONSTANT, "wrap": cv2.BORDER_WRAP}
# Upper bounds on Augment's limits that catch unit mistakes (radians vs degrees, % vs fraction).
_LIMITS = dict(rotation=180.0, shift=0.5, zoom=0.9, brightness=1.0, contrast=1.0, gamma=1.5,
               blur=5.0, erase=0.5)
_CODES = np.arange(256, dtype=np.uint8)
_LEVELS = to_unit(_CODES)  # each pixel code's value in the models' range
_N_DRAWS = 10  # per image: rotation, shift x/y, zoom, flip x/y, brightness, contrast, gamma, blur


def _plane(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` as OpenCV wants it: ``(H, W)`` when there is one channel (a view)."""
    return image[:, :, 0] if image.shape[-1] == 1 else image



@dataclasses.dataclass(frozen=True)
class Augment:
    """Random, label-preserving changes to a batch of X-rays; call it on a batch.

    Each image gets its own random rotation, shift, zoom (and flips, when on), fused into one
    2x3 affine matrix about the image centre and applied by a single bilinear
    ``cv2.warpAffine``, then its own blur, gamma curve, brightness and contrast change. Values
    are drawn uniformly from ``[-limit, +limit]`` (blur: ``[0, limit]``) by a numpy generator
    seeded with the batch seed, so the same seed gives the same batch. The defaults are mild: a
    chest film is taken in a standard position, and large changes would make images no scanner
    produces.

    Why gamma and blur: the model standardises each image at its input, which undoes any
    brightness and contrast change (they only matter where they clip). What differs between
    X-ray systems beyond that is the shape of the exposure curve (gamma) and the sharpness of
    the detector and its processing (blur) — and a softer, denser-looking normal film is what a
    pneumonia model is tempted to call an opacity. Both are off by default; the shipped model's
    setting is in its model card.

    Attributes:
        rotation: maximum rotation, in degrees.
        shift: maximum shift along each axis, as a fraction of the image side.
        zoom: maximum scale change, as a fraction (0.1: 90 % to 110 %).
        brightness: maximum added intensity, on the ``[0, 1]`` pixel scale.
        contrast: maximum relative change of contrast around each image's mean.
        gamma: maximum log-gamma: pixels ``x`` in ``[0, 1]`` become ``x ** exp(g)`` with ``g``
            in ``[-gamma, gamma]`` (0.3: gamma 0.74 to 1.35), before brightness and contrast.
        blur: maximum Gaussian blur, as sigma in pixels (per image uniform in ``[0, blur]``;
            below 0.1 px nothing is done).
        horizontal_flip: mirror left-right half of the time. Off by default: the chest is not
            mirror-symmetric (the heart sits on the patient's left, film markers read
            backwards), so mirrored films are unrealistic images. On when asked.
        vertical_flip: mirror top-bottom half of the time (off: never seen in practice).
        fill_mode: how pixels moved in from outside the image are filled: ``"nearest"``
            (default: repeats the border, usually dark), ``"reflect"`` (``d c b a | a b c d``),
            ``"constant"`` (black) or ``"wrap"``; the same meanings as in Keras.
        erase: maximum depth of a strip blanked along one edge, as a fraction of the side
            (0.15: up to 15 %), plus a square of the same size at one corner, per image with
            probability 1/2 each; filled with the image's mean. Film markers, burnt-in text and
            the collimation edge sit there: blanking them at random stops the network from
            relying on them. Drawn from a second random stream, so turning it on leaves every
            other draw of a seed unchanged.
    """

    rotation: float = 7.0
    shift: float = 0.06
    zoom: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.15
    gamma: float = 0.0
    blur: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: str = "nearest"
    erase: float = 0.0

    def __post_init__(self):
        for name in _LIMITS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < _LIMITS[name]:
                raise ValueError(f"Augment.{name} must be a number in [0, {_LIMITS[name]}), "
                                 f"got {value!r}")
        if self.fill_mode not in _BORDERS:
            raise ValueError(f"Augment.fill_mode must be one of {tuple(_BORDERS)}, "
                             f"got {self.fill_mode!r}")

    @property
    def geometric(self) -> bool:
        """Whether any rotation, shift, zoom or flip is on (else the warp is skipped)."""
        return bool(self.rotation or self.shift or self.zoom or self.horizontal_flip
                    or self.vertical_flip)

    def __call__(self, images, seed):
        """Augment a batch.

        Args:
            images: uint8 ``(B, H, W, C)`` with 1 to 4 channels, the pipeline's cached
                pixels; a numpy
                array or a tensor. Inside a ``tf.function`` or ``Dataset.map`` the work runs
                through ``tf.numpy_function``.
            seed: int or sequence of ints (e.g. an int tensor of shape ``(2,)``); the same
                seed gives the same result.

        Returns:
            float32 ``(B, H, W, C)`` in ``[0, 1]``: a tensor when ``images`` is one, else a
            numpy array.
        """
        if tf.is_symbolic_tensor(images) or tf.is_symbolic_tensor(seed):
            images = tf.convert_to_tensor(images)
            out = tf.numpy_function(self._augment, [images, seed], tf.float32, stateful=False)
            return tf.ensure_shape(out, images.shape)
        out = self._augment(np.asarray(images), np.asarray(seed))
        return tf.constant(out) if isinstance(images, tf.Tensor) else out

    def _augment(self, images, seed) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or not 1 <= images.shape[-1] <= 4 \
                or images.dtype != np.uint8:
            raise ValueError("Augment expects a uint8 batch (B, H, W, C) with 1 to 4 "
                             f"channels; got dtype {images.dtype} and shape "
                             f"{images.shape}")
        # SeedSequence wants non-negative words; tf.data's random seeds are signed int64.
        words = np.atleast_1d(np.asarray(seed)).astype(np.int64).view(np.uint64)
        # One draw per image and parameter, in [-1, 1) (see _N_DRAWS).
        draws = np.random.default_rng(words).uniform(-1.0, 1.0, (len(images), _N_DRAWS))
        return self._apply(images, draws, words)

    def _erase(self, images: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Blank an edge strip and a corner square of some images, in place (see ``erase``)."""
        n, height, width = images.shape[:3]
        words = [0] if words is None else np.asarray(words).tolist()
        rng = np.random.default_rng([*words, 1])
        draws = rng.uniform(0.0, 1.0, (n, 6))
        for i in range(n):
            image = _plane(images[i])
            fill = image.mean()
            if draws[i, 0] < 0.5:  # a strip along edge 0-3 (top, bottom, left, right)
                depth = int(round(self.erase * draws[i, 1] * height))
                edge = int(draws[i, 2] * 4)
                if depth:
                    region = (image[:depth], image[-depth:], image[:, :depth],
                              image[:, -depth:])[edge]
                    region[...] = fill
            if draws[i, 3] < 0.5:  # a square at corner 0-3
                side = int(round(self.erase * draws[i, 4] * min(height, width)))
                corner = int(draws[i, 5] * 4)
                if side:
                    rows = slice(0, side) if corner < 2 else slice(height - side, height)
                    cols = slice(0, side) if corner % 2 == 0 else slice(width - side, width)
                    image[rows, cols] = fill
        return images

    def _apply(self, images: np.ndarray, draws: np.ndarray,
               seed_words: np.ndarray | None = None) -> np.ndarray:
        """Augment uint8 ``images`` ``(B, H, W, C)`` with ``(B, _N_DRAWS)`` draws.

        Warps and blurs uint8 as uint8 (where OpenCV is fastest); gamma, brightness, contrast,
        clipping and the conversion to float32 are then one pass: a 256-entry lookup table per
        image.
        """
        images = np.ascontiguousarray(images)
        n, height, width, channels = images.shape
        warped = images
        if self.geometric:
            matrices = self._matrices(draws, height, width)
            warped = np.empty_like(images)
            for i in range(n):
                cv2.warpAffine(_plane(images[i]), matrices[i], (width, height),
                               dst=_plane(warped[i]), borderValue=0,
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=_BORDERS[self.fill_mode])
        if self.erase:
            warped = self._erase(warped.copy() if warped is images else warped, seed_words)
        if self.blur:
            sigmas = self.blur * np.abs(draws[:, 9])
            warped = warped.copy() if warped is images else warped
            for i in np.flatnonzero(sigmas >= 0.1):
                cv2.GaussianBlur(_plane(warped[i]), (0, 0), sigmas[i], dst=_plane(warped[i]))
        gammas = np.exp(self.gamma * draws[:, 8])
        # (x ** gamma - mean) * factor + mean + delta = x ** gamma * factor + offset, with the
        # mean taken after the warp and approximated after the gamma curve as mean ** gamma.
        factors = 1.0 + self.contrast * draws[:, 7]
        offsets = self.brightness * draws[:, 6]
        if self.contrast:
            # One OpenCV call for all the means (per-image Python calls cost more than this).
            means = cv2.reduce(warped.reshape(n, -1), 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
            offsets = offsets + np.interp(means[:, 0], _CODES, _LEVELS) ** gammas \
                * (1.0 - factors)
        levels = _LEVELS[None, :].astype(np.float64) ** gammas[:, None]
        luts = np.clip(levels * factors[:, None] + offsets[:, None], 0.0, 1.0).astype(np.float32)
        out = np.empty(images.shape, np.float32)
        for i in range(n):
            cv2.LUT(_plane(warped[i]), luts[i], dst=_plane(out[i]))
        return out

    def _matrices(self, draws: np.ndarray, height: int, width: int) -> np.ndarray:
        """``(B, 2, 3)`` float64 affine matrices mapping output pixels to input pixels.

        Per image: input = c + R(angle) @ F / zoom @ (output - c) + shift, with c the image
        centre and F the flips, so the five changes cost one interpolation.
        """
        angle = np.deg2rad(self.rotation * draws[:, 0])
        scale = 1.0 / (1.0 + self.zoom * draws[:, 3])
        flip_x = np.where(draws[:, 4] < 0, -1.0, 1.0) if self.horizontal_flip else 1.0
        flip_y = np.where(draws[:, 5] < 0, -1.0, 1.0) if self.vertical_flip else 1.0
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        linear = np.stack([np.stack([cos * flip_x, -sin * flip_y], -1),
                           np.stack([sin * flip_x, cos * flip_y], -1)], -2)  # (B, 2, 2)
        centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        shift = self.shift * draws[:, 1:3] * [width, height]
        return np.concatenate([linear, (centre - linear @ centre + shift)[..., None]], -1)

# Named augmentation recipes, chosen by RunConfig.augment. Why each exists, and what it bought
# over three seeds: docs/recipe_history.md ("Augmentation recipes").
AUGMENTATIONS: dict[str, Augment] = {
    # Mild geometry and intensity (the defaults).
    "mild": Augment(),
    # Framing as wide as the stress range of pneumo_helpers.shifts, black fill, and blanked edge
    # strips and corners, where markers and collimation edges sit.
    "framing": Augment(zoom=0.45, shift=0.1, erase=0.15, fill_mode="constant"),
    # Framing plus other X-ray systems' exposure curve (gamma) and detector sharpness (blur):
    # the shipped recipe, used with a consistency term between two draws (RunConfig.consistency).
    "framing-acq": Augment(zoom=0.45, shift=0.1, erase=0.15, fill_mode="constant", gamma=0.3,
                           blur=1.0),
}
