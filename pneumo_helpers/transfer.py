"""Transfer learning: an ImageNet backbone under a small head, and fine-tuning its top.

The backbones (EfficientNetB0, ResNet50V2, DenseNet121, :mod:`pneumo_helpers.backbones`) take
their ImageNet weights from Keras' cache folder when it holds them, download them there the
way Keras does otherwise, and when neither works raise :class:`WeightsUnavailable` with one
line saying why and what to do. The head is compiled like every other model
(:func:`pneumo_helpers.models.compile_binary`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
from pathlib import Path

import keras
from keras import layers

from .backbones import BACKBONES, BackbonePreprocessing, backbone_spec, transfer_backbone
from .models import check_input_size, compile_binary, finish_model

__all__ = [
    "WeightsUnavailable", "keras_cache_dir", "imagenet_weights_available", "imagenet_weights",
    "build_transfer_model", "build_efficientnetb0", "build_resnet50v2", "build_densenet121",
    "backbone_layers", "unfreeze_top",
]


class WeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for but could be neither found nor downloaded.

    ``str(err)`` is one line ending with what to do in a run of the notebooks (drop the
    backbone from ``PNEUMO_CANDIDATES``); :meth:`line` ends it with another remedy.
    """

    def __init__(self, message: str, remedy: str = "drop it from PNEUMO_CANDIDATES"):
        self.message, self.remedy = message, remedy
        super().__init__(self.line())

    def line(self, remedy: str | None = None) -> str:
        """The message, ending with ``remedy`` (default: the one given when raised)."""
        return f"{self.message}, or {remedy or self.remedy}" if remedy or self.remedy \
            else self.message


def keras_cache_dir() -> Path:
    """Folder where Keras keeps downloaded files: ``$KERAS_HOME``, else ``~/.keras``.

    Read at call time with the same rule as ``keras.utils.get_file`` (which falls back to
    ``/tmp/.keras`` when the folder is not writable).
    """
    return _writable_or_tmp(os.environ.get("KERAS_HOME") or "~/.keras")


def _writable_or_tmp(home) -> Path:
    home = Path(home).expanduser()
    return Path("/tmp/.keras") if home.exists() and not os.access(home, os.W_OK) else home


def _imagenet_weights_path(backbone: str) -> Path:
    return keras_cache_dir() / "models" / backbone_spec(backbone).weights_file


def _md5(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def imagenet_weights_available(backbone: str) -> bool:
    """True when the ImageNet weights (no top) of ``backbone`` are complete in Keras' cache."""
    path = _imagenet_weights_path(backbone)
    return path.is_file() and _md5(path) == BACKBONES[backbone].md5


def _download(backbone: str, *, timeout: float = 30.0) -> None:
    """Fetch ``backbone``'s ImageNet weights into :func:`keras_cache_dir` as Keras does
    (``keras.utils.get_file``, hash-checked; a file there that fails the check is fetched
    again). ``timeout``: seconds a connection may stall (urllib's default is to wait forever
    behind a firewall that drops packets). Keras' "Downloading data from ..." and progress
    bar are not shown, so that a failed fetch leaves only the caller's one line. Raises
    whatever the fetch raises (no network: Keras' ``Exception("URL fetch failure ...")``)."""
    spec = backbone_spec(backbone)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            keras.utils.get_file(spec.weights_file, spec.url, cache_subdir="models",
                                 cache_dir=str(keras_cache_dir()), file_hash=spec.md5)
    finally:
        socket.setdefaulttimeout(previous)


def _home_relative(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def imagenet_weights(backbone: str, *, download: bool = True) -> Path:
    """The ImageNet no-top weights file of ``backbone`` in Keras' cache, fetched if needed.

    Args:
        backbone: a key of :data:`~pneumo_helpers.backbones.BACKBONES`.
        download: fetch the file (:func:`_download`) when the cache lacks it or holds an
            incomplete copy; ``False``: only what is cached (tests, CI:
            ``PNEUMO_DOWNLOAD_WEIGHTS=0``).

    Returns:
        The path of the file, its md5 checked.

    Raises:
        WeightsUnavailable: one line, e.g. "no ImageNet weights for DenseNet121 in
            ~/.keras/models and no network: place densenet121_..._notop.h5 there, or drop it
            from PNEUMO_CANDIDATES".
    """
    path = _imagenet_weights_path(backbone)
    if imagenet_weights_available(backbone):
        return path
    partial = path.is_file()
    why = "downloads are off (PNEUMO_DOWNLOAD_WEIGHTS=0)"
    if download:
        try:
            _download(backbone)
        except Exception:  # noqa: BLE001 - urllib, DNS, proxies, hash: all mean "not fetched"
            why = "no network"
        if imagenet_weights_available(backbone):
            return path
    state = " (the file there is incomplete)" if partial else ""
    raise WeightsUnavailable(f"no ImageNet weights for {backbone} in "
                             f"{_home_relative(path.parent)}{state} and {why}: place "
                             f"{path.name} there")


def _resolve_weights(backbone: str, weights, download: bool) -> str | None:
    """``weights`` as ``keras.applications`` takes it, or :class:`WeightsUnavailable`."""
    if weights is None:
        return None
    if weights == "imagenet":
        path = imagenet_weights(backbone, download=download)
        if backbone != "EfficientNetB0":
            return str(path)  # a checked local file: Keras loads it, nothing is fetched
        # EfficientNet adds an input rescaling only for weights="imagenet", so it must go through
        # Keras' cache lookup; make sure Keras reads the folder just verified.
        if _writable_or_tmp(keras.src.backend.config.keras_home()) != keras_cache_dir():
            raise WeightsUnavailable(
                f"KERAS_HOME changed after Keras was imported, so Keras would look for the "
                f"{backbone} weights elsewhere and try to download them; set it before starting",
                remedy="")
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(
            f"weights file {path} for {backbone} does not exist; pass an existing file, "
            "weights='imagenet' or weights=None", remedy="")
    return str(path)


# The layers build_transfer_model puts around the backbone's own.
_INPUT_SIDE, _HEAD_SIDE = "backbone_preprocessing", "gap"


def build_transfer_model(*, backbone: str = "EfficientNetB0", image_size: int = 224,
                         channels: int = 1, weights: str | None = "imagenet",
                         download: bool = True, dropout: float = 0.2,
                         learning_rate: float = 1e-3, consistency: float = 0.0) -> keras.Model:
    """An ImageNet backbone, frozen, under a small sigmoid head (stage 1 of transfer learning).

    ``image (B, S, S, channels)`` in ``[0, 1]`` -> gray repeated to 3 channels (``gray_to_rgb``)
    -> the backbone's own ``preprocess_input`` (:class:`BackbonePreprocessing`) -> the
    ``keras.applications`` backbone without its classifier -> global average pooling (``gap``)
    -> dropout -> ``Dense(1, sigmoid)``. The backbone's layers are built into this model (not
    nested), so Grad-CAM can read their feature maps
    (:func:`pneumo_helpers.models.last_conv_layer_name`). Every
    backbone layer starts frozen; :func:`unfreeze_top` is stage 2. Frozen BatchNormalization
    layers run in inference mode, so their ImageNet statistics are kept.

    Args:
        backbone: a key of :data:`~pneumo_helpers.backbones.BACKBONES`.
        image_size: side of the square input, in pixels (at least 32).
        channels: 1 (grayscale) or 3.
        weights: ``"imagenet"`` (Keras' cache, downloaded there if missing and ``download``),
            a path to a no-top weights file of the same backbone (for EfficientNetB0, one saved
            from a backbone built here: the ImageNet file itself needs ``"imagenet"``, which
            adds a matching input rescaling), or ``None`` (random initialisation, for tests).
        download: see :func:`imagenet_weights`.
        dropout: dropout rate before the output layer.
        learning_rate: Adam learning rate of the head.
        consistency: see :func:`pneumo_helpers.models.build_five_block_cnn`.

    Returns:
        A compiled ``keras.Model`` named ``transfer_<backbone>``: ``float32 (B, image_size,
        image_size, channels)`` in ``[0, 1]`` -> ``P(PNEUMONIA)`` ``float32 (B, 1)``.

    Raises:
        WeightsUnavailable: the weights could be neither found nor fetched.
    """
    spec = backbone_spec(backbone)
    check_input_size(image_size, channels, 32)
    resolved = _resolve_weights(backbone, weights, download)
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Concatenate(name="gray_to_rgb")([inputs] * 3) if channels == 1 else inputs
    x = BackbonePreprocessing(backbone, name=_INPUT_SIDE)(x)
    try:
        base = spec.constructor(include_top=False, weights=resolved, input_tensor=x,
                                input_shape=(image_size, image_size, 3))
    except Exception as err:  # a corrupt file fails deep inside h5py/Keras in many ways
        raise WeightsUnavailable(f"could not load weights {weights!r} into {backbone}: "
                                 + " ".join(str(err).split()), remedy="") from err
    base.trainable = False
    x = layers.GlobalAveragePooling2D(name=_HEAD_SIDE)(base.output)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="pneumonia")(x)
    return finish_model(inputs, outputs, name=f"transfer_{backbone.lower()}",
                   learning_rate=learning_rate, consistency=consistency)


def build_efficientnetb0(**kwargs) -> keras.Model:
    """:func:`build_transfer_model` on EfficientNetB0 (4.0 M backbone weights)."""
    return build_transfer_model(backbone="EfficientNetB0", **kwargs)


def build_resnet50v2(**kwargs) -> keras.Model:
    """:func:`build_transfer_model` on ResNet50V2 (23.6 M backbone weights)."""
    return build_transfer_model(backbone="ResNet50V2", **kwargs)


def build_densenet121(**kwargs) -> keras.Model:
    """:func:`build_transfer_model` on DenseNet121 (7.0 M backbone weights), the chest X-ray
    community's usual backbone (CheXNet)."""
    return build_transfer_model(backbone="DenseNet121", **kwargs)


def backbone_layers(model: keras.Model) -> list:
    """The backbone's layers of a transfer model, in order (those between its preprocessing
    and its pooling: every backbone layer depends on the first and feeds the second)."""
    if transfer_backbone(model) is None:
        raise ValueError(f"model {model.name!r} is not a transfer model from "
                         "build_transfer_model")
    names = [layer.name for layer in model.layers]
    return model.layers[names.index(_INPUT_SIDE) + 1:names.index(_HEAD_SIDE)]


def unfreeze_top(model: keras.Model, n_layers: int = 20,
                 learning_rate: float = 1e-5) -> keras.Model:
    """Fine-tuning stage: make the top ``n_layers`` non-BatchNorm backbone layers trainable.

    The last ``n_layers`` layers of the backbone that are not BatchNormalization (20: about
    the last block or two of each backbone) become trainable; everything below stays frozen.
    BatchNormalization layers stay frozen (and so run in inference mode): updating their
    statistics from small X-ray batches would overwrite the ImageNet statistics the
    pretrained weights depend on. The model is recompiled at a low ``learning_rate`` so the
    pretrained weights move gently.

    Returns the same model, recompiled.
    """
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {n_layers}")
    backbone = backbone_layers(model)
    candidates = [layer for layer in backbone
                  if not isinstance(layer, layers.BatchNormalization)]
    chosen = {id(layer) for layer in candidates[max(0, len(candidates) - n_layers):]
              } if n_layers else set()
    for layer in backbone:
        layer.trainable = id(layer) in chosen
    return compile_binary(model, learning_rate)
