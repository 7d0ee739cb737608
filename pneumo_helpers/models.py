"""The classifiers: a small five-block CNN (the main model), a baseline CNN and transfer learning.

Every model takes images ``float32 (B, H, W, C)`` with values in ``[0, 1]`` and outputs
``P(PNEUMONIA)`` as ``float32 (B, 1)`` (NORMAL = 0, PNEUMONIA = 1). All of them are compiled the
same way (Adam, binary cross-entropy, accuracy/precision/recall/AUC) so notebooks can swap them.

Design: the five-block CNN is built to train on two CPU cores within minutes and to stay well
under 15 MB: depthwise-separable convolutions after the first block and a global-average-pooling
head instead of a large dense layer. A per-image standardisation layer at the input makes the
model less sensitive to exposure differences between X-ray devices. Only ``keras.layers`` and
``keras.ops`` are used, so the models run on any Keras 3 backend, and the custom layers are
registered so ``keras.models.load_model`` restores them without extra arguments.

Transfer models (:func:`build_transfer_model`: EfficientNetB0, ResNet50V2, DenseNet121 from
``keras.applications``) take their ImageNet weights from Keras' cache folder when it holds them,
download them there the way Keras does otherwise, and when neither works raise
:class:`WeightsUnavailable` with one line saying why and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import socket
from pathlib import Path
from typing import Callable

import keras
from keras import layers, ops

__all__ = [
    "PerImageStandardization",
    "ViewConsistency",
    "BackbonePreprocessing",
    "CUSTOM_OBJECTS",
    "WeightsUnavailable",
    "BACKBONES",
    "build_five_block_cnn",
    "build_baseline_cnn",
    "build_transfer_model",
    "build_efficientnetb0",
    "build_resnet50v2",
    "build_densenet121",
    "transfer_backbone",
    "imagenet_weights",
    "average_models",
    "ensemble_members",
    "compile_binary",
    "last_conv_layer_name",
    "output_layer",
    "imagenet_weights_available",
    "keras_cache_dir",
    "unfreeze_top",
]

LAST_CONV = "last_conv"


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


@keras.saving.register_keras_serializable(package="pneumo")
class PerImageStandardization(layers.Layer):
    """Standardise each image to zero mean and unit variance over all its pixels and channels.

    ``(x - mean(x)) / max(std(x), epsilon)`` per image: brightness and contrast differences
    between devices and exposures largely cancel, so the network learns anatomy, not exposure.

    Args:
        epsilon: lower bound of the divisor, in input units (inputs are in ``[0, 1]``), so a
            nearly uniform image is not blown up into amplified noise.

    Input/output: ``float (B, H, W, C)``, same shape.
    """

    def __init__(self, epsilon: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) / ops.maximum(std, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="pneumo")
class ViewConsistency(layers.Layer):
    """Teaches a classifier that two views of one film are the same film (training only).

    Placed on the output ``P(PNEUMONIA)``. In training, the batch holds each film twice, as
    two independent augmentations on adjacent rows (``generators.make_dataset(views=2)``:
    rows ``2i`` and ``2i + 1``), and the layer adds to the loss ``weight`` times the mean
    squared difference of the two views' logits: a consistency objective (the Pi-model of
    Laine & Aila 2017). Cross-entropy on every view keeps each one right; this term asks for
    the same answer however the film is framed or processed, which changes what the network
    represents rather than only what it is shown. In inference it passes its input through
    unchanged, so a saved model predicts like any other.

    Args:
        weight: weight of the squared logit difference (0.1: a logit gap of 1 costs 0.1,
            about a sixth of a confident mistake's cross-entropy).

    Input/output: ``float (B, 1)`` probabilities, unchanged; ``B`` even in training.
    """

    def __init__(self, weight: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, probabilities, training=False):
        if training and self.weight:
            p = ops.clip(ops.cast(probabilities, "float32"), 1e-6, 1.0 - 1e-6)
            logits = ops.log(p) - ops.log(1.0 - p)
            self.add_loss(self.weight * ops.mean(ops.square(logits[0::2] - logits[1::2])))
        return probabilities

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@dataclasses.dataclass(frozen=True)
class _Backbone:
    """How to build one ``keras.applications`` backbone and where Keras caches its weights."""

    constructor: Callable
    preprocess: Callable  # the application's own preprocess_input, inputs in [0, 255]
    weights_file: str  # file name of the ImageNet "notop" weights in ~/.keras/models
    md5: str  # the hash keras.applications checks the file against
    url: str  # where keras.applications downloads it from
    feature_layer: str  # the last activation of the backbone: what Grad-CAM weighs


_KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"
BACKBONES: dict[str, _Backbone] = {
    "EfficientNetB0": _Backbone(keras.applications.EfficientNetB0,
                                keras.applications.efficientnet.preprocess_input,
                                "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d",
                                "https://storage.googleapis.com/keras-applications/"
                                "efficientnetb0_notop.h5", "top_activation"),
    "ResNet50V2": _Backbone(keras.applications.ResNet50V2,
                            keras.applications.resnet_v2.preprocess_input,
                            "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                            "fac2f116257151a9d068a22e544a4917",
                            _KERAS_WEIGHTS + "resnet/"
                            "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", "post_relu"),
    "DenseNet121": _Backbone(keras.applications.DenseNet121,
                             keras.applications.densenet.preprocess_input,
                             "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             "30ee3e1110167f948a6b9946edeeb738",
                             _KERAS_WEIGHTS + "densenet/"
                             "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", "relu"),
}


def _backbone_spec(backbone: str) -> _Backbone:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    return BACKBONES[backbone]


@keras.saving.register_keras_serializable(package="pneumo")
class BackbonePreprocessing(layers.Layer):
    """Map images in ``[0, 1]`` to what an ImageNet backbone expects, inside the model.

    Scales to ``[0, 255]`` and applies the application's own ``preprocess_input`` (identity for
    EfficientNet, which rescales internally; "tf" scaling to ``[-1, 1]`` for ResNet50V2;
    "torch" normalisation for DenseNet). Keeping it in the model means a saved model takes the same
    ``[0, 1]`` input as every other model of the project.

    Input/output: ``float (B, H, W, 3)``.
    """

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        _backbone_spec(backbone)
        self.backbone = backbone

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype) * 255.0
        return BACKBONES[self.backbone].preprocess(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


# The layers saved models refer to, for ``keras.models.load_model(custom_objects=...)``.
CUSTOM_OBJECTS = {cls.__name__: cls for cls in (PerImageStandardization, ViewConsistency,
                                                BackbonePreprocessing)}


def compile_binary(model: keras.Model, learning_rate: float = 1e-3, *,
                   label_smoothing: float = 0.0) -> keras.Model:
    """Compile ``model`` for binary classification with the project's loss and metrics.

    Adam at ``learning_rate``; binary cross-entropy on ``P(PNEUMONIA)``, with targets moved
    ``label_smoothing / 2`` towards 0.5 (0.1: targets 0.05 and 0.95, so no film is pushed to
    full certainty); metrics named ``accuracy``, ``precision``, ``recall`` and ``auc`` (so
    logs read ``val_auc`` etc.). Returns the same model.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                 keras.metrics.Precision(name="precision"),
                 keras.metrics.Recall(name="recall"),
                 keras.metrics.AUC(name="auc")],
    )
    return model


def _check_input(image_size: int, channels: int, min_size: int) -> None:
    if not isinstance(image_size, int) or image_size < min_size:
        raise ValueError(f"image_size must be an integer >= {min_size}, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def build_five_block_cnn(*, image_size: int = 128, channels: int = 1,
                         filters: tuple[int, ...] = (16, 32, 64, 128, 256),
                         dropout: float = 0.3, dense_units: int = 64, separable_from: int = 2,
                         convs_per_block: int = 1, stem_stride: int = 2,
                         bn_momentum: float = 0.9,
                         learning_rate: float = 1e-3, label_smoothing: float = 0.0,
                         consistency: float = 0.0, standardize: bool = True,
                         name: str = "five_block_cnn") -> keras.Model:
    """The main classifier: five conv blocks and a global-average-pooling head.

    Each block is ``convs_per_block`` x (conv 3x3 -> BatchNormalization -> ReLU), with the 2x2
    max-pooling moved before the last normalisation of the block (conv -> pool -> BN -> ReLU;
    see the comment in the code). Block 1 halves the image with a stride-2 convolution instead
    of a full-resolution convolution and a pooling (``stem_stride=2``, as in ResNet's stem).
    The conv of the last block is named ``"last_conv"`` for Grad-CAM.

    Args:
        image_size: side of the square input, in pixels (at least ``2 ** len(filters)``).
        channels: 1 (grayscale) or 3.
        filters: output channels of each block; one entry per block.
        dropout: dropout rate before and after the hidden dense layer.
        dense_units: width of the hidden dense layer.
        separable_from: first block (1-based) that uses ``SeparableConv2D``.
        convs_per_block: convolutions in each block.
        stem_stride: 2 (default): block 1's first convolution has stride 2 and the block has
            no pooling; 1: block 1 is conv -> pool like the others. The stride-2 stem skips
            the full-resolution convolution output, the largest tensor of the network, which
            makes inference faster (``benchmarks/bench_model.py``).
        bn_momentum: BatchNormalization momentum. 0.9, not Keras' 0.99: with the few hundred
            steps of a CPU training, 0.99 left the moving statistics so far behind the
            weights that the trained model predicted PNEUMONIA for every image in inference.
        learning_rate: Adam learning rate.
        label_smoothing: see :func:`compile_binary` (0: plain cross-entropy).
        consistency: weight of the two-view consistency term (:class:`ViewConsistency`,
            added at the output when above 0; train it on ``make_dataset(views=2)``).
        standardize: add :class:`PerImageStandardization` at the input.
        name: model name.

    Returns:
        A compiled ``keras.Model``: ``float32 (B, image_size, image_size, channels)`` in
        ``[0, 1]`` -> ``P(PNEUMONIA)`` ``float32 (B, 1)``.
    """
    if not filters:
        raise ValueError("filters must list at least one block width, e.g. (16, 32, 64, 128, 256)")
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    _check_input(image_size, channels, 2 ** len(filters))
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = PerImageStandardization(name="standardize")(inputs) if standardize else inputs
    for block, width in enumerate(filters, start=1):
        # A separable conv costs ~1/9 + 1/width of a full 3x3 conv in weights and FLOPs; from 32
        # channels on that is a 4-8x saving at little accuracy cost. Block 1 stays a plain conv:
        # on 1-3 input channels a depthwise step has almost nothing to factorise.
        conv = layers.SeparableConv2D if block >= separable_from else layers.Conv2D
        strided = block == 1 and stem_stride > 1
        for i in range(1, convs_per_block + 1):
            last = block == len(filters) and i == convs_per_block
            prefix = f"block{block}_conv{i}"
            # No bias: the BatchNormalization right after has its own offset.
            x = conv(width, 3, strides=stem_stride if strided and i == 1 else 1,
                     padding="same", use_bias=False, name=LAST_CONV if last else prefix)(x)
            if i == convs_per_block and not strided:
                # Pool before normalising: BatchNormalization and ReLU then touch a quarter of
                # the pixels. ReLU commutes with max-pooling exactly; BN learns the statistics
                # of the pooled maps instead. Measured here at 128 px: training 3.5x and
                # inference 1.7x faster than conv -> BN -> ReLU -> pool, same parameters.
                x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_bn")(x)
            x = layers.ReLU(name=f"{prefix}_relu")(x)
    # Global average pooling instead of Flatten: the head stays a few thousand weights
    # whatever the image size, which keeps the model small and less prone to overfitting.
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout_1")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout_2")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="pneumonia")(x)
    return _finish(inputs, outputs, name=name, learning_rate=learning_rate,
                   label_smoothing=label_smoothing, consistency=consistency)


def build_baseline_cnn(*, image_size: int = 128, channels: int = 1,
                       learning_rate: float = 1e-3, consistency: float = 0.0) -> keras.Model:
    """A plain three-block CNN with a Flatten head: the textbook baseline to beat.

    No BatchNormalization, no standardisation, no separable convs, so the gains of
    :func:`build_five_block_cnn` can be measured against it. ``consistency``: as there.

    Returns:
        A compiled ``keras.Model``: ``float32 (B, image_size, image_size, channels)`` in
        ``[0, 1]`` -> ``P(PNEUMONIA)`` ``float32 (B, 1)``.
    """
    _check_input(image_size, channels, 8)
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = inputs
    for block, width in enumerate((16, 32, 64), start=1):
        x = layers.Conv2D(width, 3, padding="same", activation="relu",
                          name=f"block{block}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="pneumonia")(x)
    return _finish(inputs, outputs, name="baseline_cnn", learning_rate=learning_rate,
                   consistency=consistency)


def _finish(inputs, outputs, *, name: str, learning_rate: float, label_smoothing: float = 0.0,
            consistency: float = 0.0) -> keras.Model:
    """The builders' last step: the optional consistency layer, then :func:`compile_binary`."""
    if not 0.0 <= consistency < 100.0:
        raise ValueError(f"consistency must be a weight in [0, 100), got {consistency!r}")
    if consistency:
        outputs = ViewConsistency(consistency, name="view_consistency")(outputs)
    return compile_binary(keras.Model(inputs, outputs, name=name), learning_rate,
                          label_smoothing=label_smoothing)


def average_models(members: list[keras.Model], *, name: str | None = None) -> keras.Model:
    """One model whose output is the mean of ``members``' P(PNEUMONIA).

    The members (same input shape, e.g. one recipe trained with several seeds) become nested
    layers ``member_1``, ``member_2``, ... of one functional model, so the average is saved,
    loaded, exported to LiteRT and applied as one model file, with the same input contract as
    each member. Averaging probabilities cancels part of what each seed learned by chance:
    on framing shifts the average of three seeds beat the mean of its members
    (``docs/generalisation.md``). Prediction costs one member call each.

    Returns:
        An uncompiled ``keras.Model`` ``float32 (B, S, S, C)`` -> ``float32 (B, 1)``, named
        ``name`` or ``average_of_<n>_<first member's name>``.
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"average_models needs at least two models, got {len(members)}")
    shapes = {tuple(m.input_shape[1:]) for m in members}
    if len(shapes) != 1:
        raise ValueError(f"the members take different inputs {sorted(shapes)}; train them at "
                         "one image size and channel count")
    name = name or f"average_of_{len(members)}_{members[0].name}"
    inputs = keras.Input(shapes.pop(), name="image")
    outputs = []
    for i, member in enumerate(members, start=1):
        member.name = f"member_{i}"  # nested models need distinct names to be saved
        outputs.append(member(inputs))
    mean = layers.Average(name="mean_probability")(outputs)
    return keras.Model(inputs, mean, name=name)


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The members of a model made by :func:`average_models` (empty for a single model)."""
    if not any(layer.name == "mean_probability" for layer in model.layers):
        return []
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def output_layer(model: keras.Model):
    """The layer that makes ``model``'s probabilities: its last layer, looking through a
    :class:`ViewConsistency` (a pass-through in inference)."""
    trained_with = [layer for layer in model.layers if isinstance(layer, ViewConsistency)]
    if trained_with and model.layers[-1] is trained_with[-1]:
        return model.layers[-2]
    return model.layers[-1]


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the layer whose feature maps Grad-CAM should use.

    ``"last_conv"`` for :func:`build_five_block_cnn`; the backbone's last activation for
    :func:`build_transfer_model` (e.g. ``"relu"`` after DenseNet121's last BatchNorm);
    otherwise the last top-level ``Conv2D``/``SeparableConv2D`` (e.g. the baseline). Raises
    ``ValueError`` when the model has none at top level.
    """
    names = [layer.name for layer in model.layers]
    if LAST_CONV in names:
        return LAST_CONV
    backbone = transfer_backbone(model)
    if backbone is not None:
        return BACKBONES[backbone].feature_layer
    convs = [layer.name for layer in model.layers
             if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D))]
    if not convs:
        raise ValueError(f"model {model.name!r} has no top-level convolution layer; pass "
                         "layer_name= the layer whose feature maps Grad-CAM should use")
    return convs[-1]


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
    return keras_cache_dir() / "models" / _backbone_spec(backbone).weights_file


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
    spec = _backbone_spec(backbone)
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
        backbone: a key of :data:`BACKBONES`.
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
    nested), so Grad-CAM can read their feature maps (:func:`last_conv_layer_name`). Every
    backbone layer starts frozen; :func:`unfreeze_top` is stage 2. Frozen BatchNormalization
    layers run in inference mode, so their ImageNet statistics are kept.

    Args:
        backbone: a key of :data:`BACKBONES`.
        image_size: side of the square input, in pixels (at least 32).
        channels: 1 (grayscale) or 3.
        weights: ``"imagenet"`` (Keras' cache, downloaded there if missing and ``download``),
            a path to a no-top weights file of the same backbone (for EfficientNetB0, one saved
            from a backbone built here: the ImageNet file itself needs ``"imagenet"``, which
            adds a matching input rescaling), or ``None`` (random initialisation, for tests).
        download: see :func:`imagenet_weights`.
        dropout: dropout rate before the output layer.
        learning_rate: Adam learning rate of the head.
        consistency: see :func:`build_five_block_cnn`.

    Returns:
        A compiled ``keras.Model`` named ``transfer_<backbone>``: ``float32 (B, image_size,
        image_size, channels)`` in ``[0, 1]`` -> ``P(PNEUMONIA)`` ``float32 (B, 1)``.

    Raises:
        WeightsUnavailable: the weights could be neither found nor fetched.
    """
    spec = _backbone_spec(backbone)
    _check_input(image_size, channels, 32)
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
    return _finish(inputs, outputs, name=f"transfer_{backbone.lower()}",
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


def transfer_backbone(model: keras.Model) -> str | None:
    """The :data:`BACKBONES` key of a model from :func:`build_transfer_model`, else ``None``."""
    found = [layer.backbone for layer in model.layers
             if isinstance(layer, BackbonePreprocessing)]
    return found[0] if found else None


def _backbone_layers(model: keras.Model) -> list:
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
    backbone = _backbone_layers(model)
    candidates = [layer for layer in backbone
                  if not isinstance(layer, layers.BatchNormalization)]
    chosen = {id(layer) for layer in candidates[max(0, len(candidates) - n_layers):]
              } if n_layers else set()
    for layer in backbone:
        layer.trainable = id(layer) in chosen
    return compile_binary(model, learning_rate)
