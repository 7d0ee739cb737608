"""The classifiers trained from scratch: a small five-block CNN (the main model) and a baseline.

Every model of the project takes images ``float32 (B, H, W, C)`` with values in ``[0, 1]`` and
outputs ``P(PNEUMONIA)`` as ``float32 (B, 1)`` (NORMAL = 0, PNEUMONIA = 1), and is compiled by
:func:`compile_binary`, so notebooks can swap them. The five-block CNN is built to train on two
CPU cores within minutes and to stay well under 15 MB: depthwise-separable convolutions after
the first block and a global-average-pooling head instead of a large dense layer. Only
``keras.layers`` and ``keras.ops`` are used, so the models run on any Keras 3 backend, and the
custom layers are registered so ``keras.models.load_model`` restores them without arguments.

Also here: what every model shares once built — the output layer, the Grad-CAM layer. Transfer models are built in :mod:`pneumo_helpers.transfer`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from .backbones import BACKBONES, BackbonePreprocessing, transfer_backbone

__all__ = [
    "PerImageStandardization", "ViewConsistency", "CUSTOM_OBJECTS", "compile_binary",
    "check_input_size", "finish_model", "build_five_block_cnn", "build_baseline_cnn",
    "output_layer", "last_conv_layer_name",
]

LAST_CONV = "last_conv"


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


# Every layer a saved model of the project may hold, transfer models included, for
# ``keras.models.load_model(custom_objects=...)``.
CUSTOM_OBJECTS = {cls.__name__: cls for cls in (PerImageStandardization, ViewConsistency,
                                                BackbonePreprocessing)}


def compile_binary(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Compile ``model`` for binary classification with the project's loss and metrics.

    Adam at ``learning_rate``; binary cross-entropy on ``P(PNEUMONIA)``; metrics named
    ``accuracy``, ``precision``, ``recall`` and ``auc`` (so logs read ``val_auc`` etc.).
    Returns the same model.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                 keras.metrics.Precision(name="precision"),
                 keras.metrics.Recall(name="recall"),
                 keras.metrics.AUC(name="auc")],
    )
    return model


def check_input_size(image_size: int, channels: int, min_size: int) -> None:
    """``ValueError`` unless a builder's input is a square of at least ``min_size`` pixels
    with 1 or 3 channels."""
    if not isinstance(image_size, int) or image_size < min_size:
        raise ValueError(f"image_size must be an integer >= {min_size}, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def build_five_block_cnn(*, image_size: int = 128, channels: int = 1,
                         filters: tuple[int, ...] = (16, 32, 64, 128, 256),
                         dropout: float = 0.3, dense_units: int = 64,
                         learning_rate: float = 1e-3, consistency: float = 0.0,
                         name: str = "five_block_cnn") -> keras.Model:
    """The main classifier: per-image standardisation, five conv blocks and a
    global-average-pooling head.

    Each block is conv 3x3 -> 2x2 max-pooling -> BatchNormalization -> ReLU (pooling before
    the normalisation; see the comment in the code), except block 1, which halves the image
    with a stride-2 convolution instead of a full-resolution convolution and a pooling, as in
    ResNet's stem, so the largest tensor of the network is never made. Blocks 2 on use
    ``SeparableConv2D``. The conv of the last block is named ``"last_conv"`` for Grad-CAM.

    Args:
        image_size: side of the square input, in pixels (at least ``2 ** len(filters)``).
        channels: 1 (grayscale) or 3.
        filters: output channels of each block; one entry per block.
        dropout: dropout rate before and after the hidden dense layer.
        dense_units: width of the hidden dense layer.
        learning_rate: Adam learning rate.
        consistency: weight of the two-view consistency term (:class:`ViewConsistency`,
            added at the output when above 0; train it on ``make_dataset(views=2)``).
        name: model name.

    Returns:
        A compiled ``keras.Model``: ``float32 (B, image_size, image_size, channels)`` in
        ``[0, 1]`` -> ``P(PNEUMONIA)`` ``float32 (B, 1)``.
    """
    if not filters:
        raise ValueError("filters must list at least one block width, e.g. (16, 32, 64, 128, 256)")
    check_input_size(image_size, channels, 2 ** len(filters))
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = PerImageStandardization(name="standardize")(inputs)
    for block, width in enumerate(filters, start=1):
        # A separable conv costs ~1/9 + 1/width of a full 3x3 conv in weights and FLOPs; from 32
        # channels on that is a 4-8x saving at little accuracy cost. Block 1 stays a plain conv:
        # on 1-3 input channels a depthwise step has almost nothing to factorise.
        conv = layers.Conv2D if block == 1 else layers.SeparableConv2D
        prefix = f"block{block}_conv1"
        # No bias: the BatchNormalization right after has its own offset.
        x = conv(width, 3, strides=2 if block == 1 else 1, padding="same", use_bias=False,
                 name=LAST_CONV if block == len(filters) else prefix)(x)
        if block > 1:
            # Pool before normalising: BatchNormalization and ReLU then touch a quarter of
            # the pixels. ReLU commutes with max-pooling exactly; BN learns the statistics
            # of the pooled maps instead (speed: docs/speed.md).
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        # Momentum 0.9, not Keras' 0.99, so the moving statistics keep up with the few
        # hundred steps of a CPU training (docs/speed.md).
        x = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn")(x)
        x = layers.ReLU(name=f"{prefix}_relu")(x)
    # Global average pooling instead of Flatten: the head stays a few thousand weights
    # whatever the image size, which keeps the model small and less prone to overfitting.
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout_1")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout_2")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="pneumonia")(x)
    return finish_model(inputs, outputs, name=name, learning_rate=learning_rate,
                        consistency=consistency)


def build_baseline_cnn(*, image_size: int = 128, channels: int = 1,
                       learning_rate: float = 1e-3, consistency: float = 0.0) -> keras.Model:
    """A plain three-block CNN with a Flatten head: the textbook baseline to beat.

    No BatchNormalization, no standardisation, no separable convs, so the gains of
    :func:`build_five_block_cnn` can be measured against it. ``consistency``: as there.

    Returns:
        A compiled ``keras.Model``: ``float32 (B, image_size, image_size, channels)`` in
        ``[0, 1]`` -> ``P(PNEUMONIA)`` ``float32 (B, 1)``.
    """
    check_input_size(image_size, channels, 8)
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
    return finish_model(inputs, outputs, name="baseline_cnn", learning_rate=learning_rate,
                        consistency=consistency)


def finish_model(inputs, outputs, *, name: str, learning_rate: float,
                 consistency: float = 0.0) -> keras.Model:
    """Every builder's last step: the optional consistency layer, then :func:`compile_binary`."""
    if not 0.0 <= consistency < 100.0:
        raise ValueError(f"consistency must be a weight in [0, 100), got {consistency!r}")
    if consistency:
        outputs = ViewConsistency(consistency, name="view_consistency")(outputs)
    return compile_binary(keras.Model(inputs, outputs, name=name), learning_rate)


def output_layer(model: keras.Model):
    """The layer that makes ``model``'s probabilities: its last layer, looking through a
    :class:`ViewConsistency` (a pass-through in inference)."""
    trained_with = [layer for layer in model.layers if isinstance(layer, ViewConsistency)]
    if trained_with and model.layers[-1] is trained_with[-1]:
        return model.layers[-2]
    return model.layers[-1]


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the layer whose feature maps Grad-CAM should use.

    ``"last_conv"`` for :func:`build_five_block_cnn`; the backbone's last activation for a
    transfer model (e.g. ``"relu"`` after DenseNet121's last BatchNorm); otherwise the last top-level ``Conv2D``/``SeparableConv2D`` (e.g. the baseline). Raises
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
