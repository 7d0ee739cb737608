"""The input pipeline: images decoded once into a disk cache, then fed by ``tf.data``.

Two steps:

1. :func:`load_images` decodes and resizes every image of a manifest once (threads; PIL releases
   the GIL while decoding) and keeps the result as one ``.npy`` file in a cache folder. The file
   is keyed by every image's hash, size and modification time plus the image size, so it is
   reused across epochs, notebooks and processes, and rebuilt when any image or the size changes.
2. :func:`make_dataset` serves batches from that in-memory uint8 array with ``tf.data``: row
   indices are shuffled and batched, then one call per *batch* gathers the pixels and, when
   training, applies :class:`Augment` through ``tf.numpy_function``. Per image, rotation,
   shift, zoom and flips are one fused 2x3 affine matrix applied by a single bilinear
   ``cv2.warpAffine`` on the uint8 pixels; brightness, contrast, clipping and the conversion to
   float32 are then one 256-entry lookup table (``cv2.LUT``).

Why ``tf.data`` rather than ``keras.utils.PyDataset``: a PyDataset runs Python for every batch
and typically decodes its files there, every epoch; ``tf.data`` runs one batch call per core in
its own threads, overlapped with training by ``prefetch``. Why OpenCV for the warp: TF's
``ImageProjectiveTransformV3`` CPU kernel is several times slower per output pixel than
``cv2.warpAffine`` on uint8, which also releases the GIL, so the parallel batch calls of
``tf.data`` use both cores and training does not wait on the pipeline. The figures (images/s
cold, cached, augmented; input time against a training step) are measured by
``benchmarks/bench_pipeline.py`` into ``benchmarks/results/pipeline.json`` and quoted in the
README, not here, where they would go stale.

Everything random is seeded: two pipelines built with the same seed give the same batches,
epoch after epoch, and each epoch differs from the last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from . import files
from .balance import encode_labels
from .images import ImageError, read_gray

__all__ = ["AUGMENTATIONS", "Augment", "cache_key", "load_images", "make_dataset"]

# Bump when read_gray's output changes for the same file, so old caches are not reused.
_CACHE_FORMAT = 2  # 2: OpenCV INTER_AREA resize (was PIL bilinear)
# Below this many images the cold pass takes a second or two: no progress bar.
_PROGRESS_MIN_IMAGES = 1000
# Keras' fill modes as OpenCV borders ("reflect" repeats the edge pixel: BORDER_REFLECT).
_BORDERS = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT,
            "constant": cv2.BORDER_CONSTANT, "wrap": cv2.BORDER_WRAP}
# Upper bounds on Augment's limits that catch unit mistakes (radians vs degrees, % vs fraction).
_LIMITS = dict(rotation=180.0, shift=0.5, zoom=0.9, brightness=1.0, contrast=1.0, gamma=1.5,
               blur=5.0, erase=0.5, mixup=10.0)
_N_DRAWS = 10  # per image: rotation, shift x/y, zoom, flip x/y, brightness, contrast, gamma, blur


# --- Decoding once, caching on disk -------------------------------------------------------

def _check_manifest(manifest: pd.DataFrame, columns=("path",)) -> None:
    if not isinstance(manifest, pd.DataFrame):
        raise TypeError(f"manifest must be a pandas DataFrame (from data.build_manifest), "
                        f"got {type(manifest).__name__}")
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks the column(s) {missing}; build it with "
                         "pneumo_helpers.data.build_manifest")
    if len(manifest) == 0:
        raise ValueError("manifest is empty: no images to load")


def _check_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) \
            or not 8 <= image_size <= 4096:
        raise ValueError(f"image_size must be an int in [8, 4096] pixels, got {image_size!r}")
    return int(image_size)


def cache_key(manifest: pd.DataFrame, image_size: int) -> str:
    """Hex digest naming the cache of ``manifest``'s images at ``image_size``.

    Built from each row's sha256 (its path when the manifest has no hash) and the file's
    current size and ``mtime_ns``, in row order, plus ``image_size``. Rewriting any image (even
    with a stale manifest) or changing the size or the order gives a new key.

    Raises:
        ImageError: a file of the manifest no longer exists.
    """
    _check_manifest(manifest)
    image_size = _check_size(image_size)
    ids = manifest["sha256"] if "sha256" in manifest.columns else manifest["path"]
    digest = hashlib.sha256(f"v{_CACHE_FORMAT}|{image_size}".encode())
    for path, ident in zip(manifest["path"], ids):
        try:
            stat = os.stat(path)
        except OSError:
            raise ImageError(f"{path}: no such file; the manifest is out of date — "
                             "rebuild it with data.build_manifest") from None
        digest.update(f"\n{ident}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _decode_all(paths: list[str], image_size: int, workers: int,
                progress: bool | None) -> np.ndarray:
    out = np.empty((len(paths), image_size, image_size, 1), dtype=np.uint8)

    def decode(i: int) -> None:
        out[i, :, :, 0] = read_gray(paths[i], image_size)  # raises ImageError naming the file

    show = len(paths) >= _PROGRESS_MIN_IMAGES if progress is None else progress
    with ThreadPoolExecutor(workers) as pool, \
            tqdm(total=len(paths), desc=f"decoding at {image_size}px", unit="img",
                 disable=not show) as bar:
        for _ in pool.map(decode, range(len(paths))):
            bar.update()
    return out


def load_images(manifest: pd.DataFrame, *, image_size: int, cache_dir: str | Path | None = None,
                workers: int = 4, progress: bool | None = None) -> np.ndarray:
    """Every image of ``manifest``, decoded to gray and resized, in row order.

    The first call decodes each file once (``workers`` threads) and, when ``cache_dir`` is
    given, writes the array there as ``images-<size>px-<key>.npy`` (see :func:`cache_key`);
    later calls with the same files and size, from any process, just load that file. Without
    ``cache_dir`` nothing is written and every call decodes.

    Args:
        manifest: DataFrame with a ``path`` column (and ``sha256``, used for the cache key).
        image_size: side of the square output, in pixels.
        cache_dir: folder for the cache file (created), e.g. ``Path(cfg.run_dir) / "cache"``;
            ``None`` for no disk cache.
        workers: decoding threads.
        progress: tqdm bar for the cold pass; ``None`` shows it from 1,000 images on.

    Returns:
        uint8 array of shape ``(len(manifest), image_size, image_size, 1)``.

    Raises:
        ImageError: a file is missing or cannot be decoded (the message names it; run
            ``data.scrub`` to set such files aside).
    """
    _check_manifest(manifest)
    image_size = _check_size(image_size)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    shape = (len(manifest), image_size, image_size, 1)
    target = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir).expanduser()
        target = cache_dir / f"images-{image_size}px-{cache_key(manifest, image_size)[:24]}.npy"
        if target.is_file():
            try:
                cached = np.load(target)
                if cached.shape == shape and cached.dtype == np.uint8:
                    return cached
            except (OSError, ValueError):
                pass  # a truncated or foreign file: rebuild it below
    images = _decode_all(list(map(str, manifest["path"])), image_size, workers, progress)
    if target is not None:
        _write_atomically(images, target)
    return images


def _write_atomically(images: np.ndarray, target: Path) -> None:
    """Save ``images`` to ``target`` via a temp file and a rename, so another process reading
    the cache never sees half a file. A cache that cannot be written only costs speed: warn."""
    try:
        with files.atomic_write(target, "wb") as handle:
            np.save(handle, images)
    except OSError as exc:
        warnings.warn(f"could not write the image cache {target} ({exc}); images will be "
                      "decoded again next time — pass a writable cache_dir", stacklevel=3)


# --- Augmentation ---------------------------------------------------------------------------

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
        mixup: alpha of mixup (Zhang et al. 2018): each training image is blended with
            another image of its batch, ``lam * x_i + (1 - lam) * x_j`` with
            ``lam ~ Beta(alpha, alpha)`` per image, and so is its label, which becomes soft.
            0 (default) turns it off; a batch step applied by :func:`make_dataset` after the
            per-image changes, from a third random stream (other draws unchanged).
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
    mixup: float = 0.0

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
            images: ``(B, H, W, C)`` with 1 to 4 channels, either uint8 (``0..255``, the
                fastest: the pipeline passes its cached pixels) or float in ``[0, 1]``; a numpy
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
                or not (images.dtype == np.uint8 or images.dtype.kind == "f"):
            raise ValueError("Augment expects a batch (B, H, W, C) with 1 to 4 channels, "
                             f"uint8 or float in [0, 1]; got dtype {images.dtype} and shape "
                             f"{images.shape}")
        # SeedSequence wants non-negative words; tf.data's random seeds are signed int64.
        words = np.atleast_1d(np.asarray(seed)).astype(np.int64).view(np.uint64)
        # One draw per image and parameter, in [-1, 1) (see _N_DRAWS).
        draws = np.random.default_rng(words).uniform(-1.0, 1.0, (len(images), _N_DRAWS))
        return self._apply(images, draws, words)

    def mix(self, x: np.ndarray, y: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray]:
        """Mixup of a batch: float32 images ``x`` (B, H, W, C) and labels ``y`` (B,) blended
        with a permutation of themselves (see ``mixup``); unchanged when ``mixup`` is 0."""
        if not self.mixup:
            return x, y
        words = np.atleast_1d(np.asarray(seed)).astype(np.int64).view(np.uint64)
        rng = np.random.default_rng([*words.tolist(), 2])
        lam = rng.beta(self.mixup, self.mixup, len(x)).astype(np.float32)
        partner = rng.permutation(len(x))
        mixed = lam[:, None, None, None] * x + (1.0 - lam[:, None, None, None]) * x[partner]
        return mixed.astype(np.float32), (lam * y + (1.0 - lam) * y[partner]).astype(np.float32)

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
        """Augment ``images`` (uint8 or float ``(B, H, W, C)``) with ``(B, _N_DRAWS)`` draws.

        Warps and blurs uint8 as uint8 (where OpenCV is fastest); gamma, brightness, contrast,
        clipping and the conversion to float32 are then one pass: a 256-entry lookup table per
        image.
        """
        images = np.ascontiguousarray(images, None if images.dtype == np.uint8 else np.float32)
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
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        if self.contrast:
            # One OpenCV call for all the means (per-image Python calls cost more than this).
            means = cv2.reduce(warped.reshape(n, -1), 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
            offsets = offsets + (means[:, 0] / scale) ** gammas * (1.0 - factors)
        if scale == 1.0:
            curved = warped if not self.gamma else np.power(
                np.clip(warped, 0.0, 1.0), gammas[:, None, None, None].astype(np.float32))
            out = curved * factors[:, None, None, None].astype(np.float32) \
                + offsets[:, None, None, None].astype(np.float32)
            return np.clip(out, 0.0, 1.0, out=out)
        levels = (np.arange(256) / 255.0)[None, :] ** gammas[:, None]
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


# Named augmentation recipes, chosen by RunConfig.augment.
AUGMENTATIONS: dict[str, Augment] = {
    # Mild geometry and intensity (the defaults): the recipe of the first shipped models.
    "mild": Augment(),
    # Framing as wide as the stress range of pneumo_helpers.shifts (zoom 0.55x-1.45x: a 1.45x
    # zoom cuts 15 % per side; shifts up to 10 %; black fill) plus random blanking of an edge
    # strip and a corner, where markers and collimation edges sit. Over three seeds on one
    # validation split it kept specificity 0.943 +- 0.005 under 15 % border crops, against
    # 0.359 +- 0.061 for "mild", at 0.003 of unshifted ROC AUC (docs/generalisation.md).
    "framing": Augment(zoom=0.45, shift=0.1, erase=0.15, fill_mode="constant"),
    # Framing plus the exposure curve (gamma 0.74-1.35) and detector sharpness (blur up to
    # 1 px) of other X-ray systems: the shipped recipe, with a consistency term between two
    # draws of each film (RunConfig.consistency). Without that term these changes cost framing
    # robustness (15 % crop specificity 0.891 +- 0.018 over three seeds); with it, 0.957 +-
    # 0.017, and specificity under CLAHE 0.948 +- 0.029 against 0.856 +- 0.017 for "framing"
    # (docs/generalisation.md).
    "framing-acq": Augment(zoom=0.45, shift=0.1, erase=0.15, fill_mode="constant", gamma=0.3,
                           blur=1.0),
}


# The seed word that separates the second view's draws from the first's (erasing uses 1 and
# mixup 2 after the batch seed, see Augment).
_SECOND_VIEW = 3


def _plane(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` as OpenCV wants it: ``(H, W)`` when there is one channel (a view)."""
    return image[:, :, 0] if image.shape[-1] == 1 else image


# --- The dataset ----------------------------------------------------------------------------

def make_dataset(manifest: pd.DataFrame, *, image_size: int, batch_size: int = 32,
                 channels: int = 1, training: bool = False,
                 augment: Augment | bool | None = None, indices=None, seed: int = 42,
                 cache_dir: str | Path | None = None, workers: int = 4,
                 views: int = 1) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(x, y)`` batches for ``model.fit`` / ``predict``.

    Images come from :func:`load_images` (decoded once, cached in ``cache_dir``).

    Args:
        manifest: DataFrame with ``path`` and ``label`` (``"NORMAL"``/``"PNEUMONIA"``) columns,
            e.g. one split of ``data.scrub(...).clean``.
        image_size: side of the square images, in pixels.
        batch_size: images per batch (the last batch may be smaller).
        channels: 1 (gray) or 3 (the gray channel repeated, for ImageNet-style backbones).
        training: ``True`` reshuffles the rows every epoch and augments; ``False`` keeps the
            order of ``indices`` (manifest order by default) untouched, so predictions line up
            with manifest rows.
        augment: an :class:`Augment`; ``None`` means ``Augment()`` when training; ``False``
            turns augmentation off. Ignored when not training, so one set of keyword arguments
            serves every split.
        indices: row positions (int array, repeats allowed) selecting and oversampling rows,
            e.g. ``balance.rebalance(...).indices``; default every row once.
        seed: seed of the shuffle and the augmentation.
        cache_dir: image cache folder (see :func:`load_images`).
        workers: decoding threads for a cold cache.
        views: 2 gives every film of a training batch twice, as two independent draws of
            ``augment`` on adjacent rows (``2i``, ``2i + 1``), so batches hold
            ``2 * batch_size`` rows: the input of a model trained with a consistency term
            (:class:`pneumo_helpers.models.ViewConsistency`). Needs augmentation; not with
            mixup (which would blend the pairs apart).

    Returns:
        Dataset of ``x`` float32 ``(B, image_size, image_size, channels)`` in ``[0, 1]`` and
        ``y`` float32 ``(B,)`` with NORMAL = 0, PNEUMONIA = 1; known cardinality; prefetched.
        When augmenting it calls Python (``tf.numpy_function``), so it runs in this process
        only (not in a tf.data service or a ``tf.function`` saved to disk).

    Raises:
        ValueError: bad argument (message names it); ImageError: an unreadable image.
    """
    _check_manifest(manifest, ("path", "label"))
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (gray repeated), got {channels!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if augment is not None and not isinstance(augment, (Augment, bool)):
        raise TypeError(f"augment must be an Augment, True/False or None, got "
                        f"{type(augment).__name__}")
    labels = encode_labels(manifest["label"]).astype(np.float32)
    indices = _check_indices(indices, len(manifest))
    if training and (augment is None or augment is True):
        augment = Augment()
    augment = augment if training and isinstance(augment, Augment) else None
    if views not in (1, 2):
        raise ValueError(f"views must be 1 or 2, got {views!r}")
    if views == 2 and (augment is None or augment.mixup):
        raise ValueError("views=2 needs training=True with augmentation and without mixup: "
                         "two views of a film differ only by their augmentation")

    pixels = load_images(manifest, image_size=image_size, cache_dir=cache_dir, workers=workers)
    targets = tf.constant(labels)
    # Work on row indices, not pixels: shuffling and batching integers is free, and one call
    # per batch gathers, converts (and augments) 32 images.
    ds = tf.data.Dataset.from_tensor_slices(indices)
    if training:
        ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is None:
        pixel_tensor = tf.constant(pixels)

        def to_batch(rows):
            x = tf.cast(tf.gather(pixel_tensor, rows), tf.float32) / 255.0
            return _repeat_channels(x, channels), tf.gather(targets, rows)
    else:
        # A fresh (2,) seed per batch and per epoch, reproducible from `seed`.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds)

        def gather_and_augment(rows, batch_seed):
            x = augment(pixels[rows], batch_seed)  # uint8 in, float32 out
            if views == 2:  # a second, independent draw; the pairs on adjacent rows
                second = augment(pixels[rows], [*batch_seed, _SECOND_VIEW])
                return (np.stack([x, second], 1).reshape(-1, *x.shape[1:]),
                        np.repeat(labels[rows], 2))
            return augment.mix(x, labels[rows], batch_seed)

        def to_batch(rows, batch_seed):
            # OpenCV releases the GIL while warping, so parallel calls use every core.
            x, y = tf.numpy_function(gather_and_augment, [rows, batch_seed],
                                     (tf.float32, tf.float32), stateful=False)
            x = tf.ensure_shape(x, (None, image_size, image_size, 1))
            return _repeat_channels(x, channels), tf.ensure_shape(y, (None,))

    # One batch call per usable core (the work is CPU-bound) and a fixed prefetch, with the
    # autotuner off: with it on, augmented epochs on 2 cores now and then settled into a
    # lock-step of ~8 ms per batch (~4,000 images/s; 8 of 28 epochs measured, at any map
    # parallelism); with it off, 0 of 28.
    ds = ds.map(to_batch, num_parallel_calls=_usable_cores(), deterministic=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _repeat_channels(x: tf.Tensor, channels: int) -> tf.Tensor:
    return tf.repeat(x, 3, axis=-1) if channels == 3 else x


def _check_indices(indices, n_rows: int) -> np.ndarray:
    if indices is None:
        return np.arange(n_rows, dtype=np.int64)
    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.size == 0 or indices.dtype.kind not in "iu":
        raise ValueError("indices must be a non-empty 1-D array of int row positions "
                         f"(e.g. balance.rebalance(...).indices), got dtype {indices.dtype} "
                         f"and shape {indices.shape}")
    if indices.min() < 0 or indices.max() >= n_rows:
        raise ValueError(f"indices must be row positions in [0, {n_rows}) of the manifest "
                         f"given; found values from {indices.min()} to {indices.max()}")
    return indices.astype(np.int64)
