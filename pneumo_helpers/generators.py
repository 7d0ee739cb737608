"""The input pipeline: images decoded once into a disk cache, then fed by ``tf.data``.

1. :func:`load_images` decodes and resizes every image of a manifest once (threads) and keeps
   the result as one ``.npy`` file in a cache folder, keyed by every image's hash, size and
   modification time plus the image size: reused across epochs, notebooks and processes,
   rebuilt when any of them changes.
2. :func:`make_dataset` serves batches from that uint8 array with ``tf.data``: shuffled row
   indices are batched, then one call per batch gathers the pixels and, when training, applies
   an :class:`~pneumo_helpers.augment.Augment`.

Why ``tf.data`` rather than ``keras.utils.PyDataset``: it runs one batch call per core in its
own threads, overlapped with training by ``prefetch``, instead of Python decoding per batch
every epoch. Speed figures: ``benchmarks/results/pipeline.json`` (docs/speed.md). Everything
random is seeded: the same seed gives the same batches, and each epoch differs from the last.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from . import files
from .augment import Augment
from .images import ImageError, read_gray, to_unit
from .labels import encode_labels

__all__ = ["cache_key", "load_images", "make_dataset"]

# Bump when read_gray's output changes for the same file, so old caches are not reused.
_CACHE_FORMAT = 2  # 2: OpenCV INTER_AREA resize (was PIL bilinear)
# Below this many images the cold pass takes a second or two: no progress bar.
_PROGRESS_MIN_IMAGES = 1000


# --- Decoding once, caching on disk -------------------------------------------------------

def _check_manifest(manifest: pd.DataFrame, columns=("path",)) -> None:
    if not isinstance(manifest, pd.DataFrame):
        raise TypeError(f"manifest must be a pandas DataFrame (from obtain.build_manifest), "
                        f"got {type(manifest).__name__}")
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks the column(s) {missing}; build it with "
                         "pneumo_helpers.obtain.build_manifest")
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
                             "rebuild it with obtain.build_manifest") from None
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
            ``scrub.scrub`` to set such files aside).
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



# The seed word that separates the second view's draws from the first's (erasing uses 1
# after the batch seed, see Augment).
_SECOND_VIEW = 3



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
            e.g. one split of ``scrub.scrub(...).clean``.
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
            (:class:`pneumo_helpers.models.ViewConsistency`). Needs augmentation.

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
    if views == 2 and augment is None:
        raise ValueError("views=2 needs training=True with augmentation: "
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
        def to_batch(rows):
            x = tf.numpy_function(lambda r: to_unit(pixels[r]), [rows], tf.float32,
                                  stateful=False)
            x = tf.ensure_shape(x, (None, image_size, image_size, 1))
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
            return x, labels[rows]

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
