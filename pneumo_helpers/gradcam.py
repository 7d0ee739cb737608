"""Grad-CAM heatmaps: where in a film the network's evidence for its call sits.

:class:`GradCam` weights the feature maps the model's head pools by the gradient of the class
score (Selvaraju et al. 2017). It costs one forward and backward pass per batch, so it suits
whole test sets; :mod:`.attention` measures where the heat falls.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .evaluate import pneumonia_column
from .explain import input_shape, model_input
from .labels import call
from .models import last_conv_layer_name, output_layer

__all__ = ["GradCam", "grad_cam", "gradcam_layer"]


def gradcam_layer(model, layer_name: str | None = None):
    """The layer Grad-CAM reads: ``layer_name``; else the feature maps the head's global
    pooling reads (the last block's rectified output, as Grad-CAM intends: a raw convolution
    before its normalisation can flip sign, and the map then goes blank); else ``"last_conv"``
    or the last top-level Conv2D/SeparableConv2D. Raises ValueError naming what to pass."""
    names = [layer.name for layer in model.layers]
    if layer_name is not None:
        if layer_name not in names:
            raise ValueError(f"model {model.name!r} has no layer {layer_name!r}; "
                             f"convolution layers: {_conv_names(model)}")
        return model.get_layer(layer_name)
    pooled = _pooled_features(model)
    return pooled if pooled is not None else model.get_layer(last_conv_layer_name(model))


def _pooled_features(model):
    """The top-level layer whose 4-D output the head's global pooling (the last one: a
    backbone's squeeze-and-excite blocks pool too) reads, or None."""
    kinds = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    for layer in reversed(model.layers):
        if isinstance(layer, kinds):
            source = layer.input._keras_history[0]
            if source in model.layers and len(source.output.shape) == 4:
                return source
    return None


def _conv_names(model) -> list[str]:
    kinds = (keras.layers.Conv2D, keras.layers.SeparableConv2D)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)]


def _is_sigmoid(layer) -> bool:
    return getattr(getattr(layer, "activation", None), "__name__", "") == "sigmoid"


class GradCam:
    """Grad-CAM heatmaps of a Keras P(PNEUMONIA) model, traced once for fast repeated use.

    The class score is the *logit* of the output when the model ends in a sigmoid (a Dense
    or Activation layer): the gradient of a saturated sigmoid is exactly 0 in float32 for a
    confident prediction, which would give an empty map. Otherwise the output probability
    is used.

    Args:
        model: Keras functional model ``(B, H, W, C)`` -> P(PNEUMONIA) ``(B, 1)``.
        layer_name: layer whose feature maps are weighted (see :func:`gradcam_layer`).
        target: ``"predicted"`` (each image's predicted class at ``threshold``),
            ``"pneumonia"`` or ``"normal"``: the class whose evidence is shown.
        threshold: probability at which the predicted class becomes PNEUMONIA.
        batch_size: images per pass.
    """

    TARGETS = ("predicted", "pneumonia", "normal")

    def __init__(self, model, *, layer_name: str | None = None, target: str = "predicted",
                 threshold: float = 0.5, batch_size: int = 32):
        if target not in self.TARGETS:
            raise ValueError(f"target must be one of {self.TARGETS}, got {target!r}")
        self.model = model
        self.target = target
        self.batch_size = int(batch_size)
        self._threshold = float(threshold)
        self.layer = gradcam_layer(model, layer_name)
        head = output_layer(model)
        if isinstance(head, keras.layers.Activation) and _is_sigmoid(head):
            logit_source, self._dense = head.input, None
        elif isinstance(head, keras.layers.Dense) and _is_sigmoid(head) and head.units == 1:
            logit_source, self._dense = head.input, head
        else:
            logit_source, self._dense = None, None
        outputs = [self.layer.output, model.output]
        if logit_source is not None:
            outputs.append(logit_source)
        self._grad_model = keras.Model(model.inputs, outputs)
        height, width, channels = input_shape(model)
        self._maps = tf.function(self._compute, input_signature=[
            tf.TensorSpec((None, height, width, channels), tf.float32),
            tf.TensorSpec((None,), tf.float32)])

    def _compute(self, x, sign):
        """Maps (B, H, W) of images x for the class ``sign`` gives per image: +1 PNEUMONIA,
        -1 NORMAL."""
        with tf.GradientTape() as tape:
            outputs = self._grad_model(x, training=False)
            features, probability = outputs[0], outputs[1]
            if len(outputs) == 3:
                score = outputs[2]
                if self._dense is not None:  # the Dense pre-activation, i.e. the logit
                    score = tf.matmul(score, self._dense.kernel) + self._dense.bias
                score = tf.reshape(score, (-1,))
            else:
                score = tf.reshape(probability, (tf.shape(x)[0], -1))[:, -1]
            # Images are independent in inference mode, so one gradient of the sum gives
            # every image's own gradient.
            total = tf.reduce_sum(sign * tf.cast(score, tf.float32))
        features = tf.cast(features, tf.float32)
        grads = tape.gradient(total, features)
        channel_weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(channel_weights * features, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cam, peak)

    def _batch(self, x: np.ndarray) -> np.ndarray:
        if self.target == "predicted":
            p = pneumonia_column(np.asarray(self.model.predict_on_batch(x)))
            sign = np.where(call(p, self._threshold), 1.0, -1.0).astype(np.float32)
        else:
            sign = np.full(len(x), 1.0 if self.target == "pneumonia" else -1.0, np.float32)
        return self._maps(x, sign).numpy()

    def __call__(self, images) -> np.ndarray:
        """Heatmaps float32 (N, H, W) in [0, 1] (1 = strongest evidence, upsampled to the
        input size) of gray images (N, H, W) or (N, H, W, 1), or one image (H, W) or
        (H, W, 1), uint8 as read. Gray is repeated for a 3-channel model."""
        x = np.asarray(images)
        height, width, channels = input_shape(self.model)
        single = x.ndim == 2 or (x.ndim == 3 and x.shape[-1] in (1, 3)
                                 and x.shape[:2] == (height, width))
        gray = model_input(x, self.model, single=single)
        x = np.repeat(gray[..., None], channels, axis=-1)
        maps = [self._batch(x[i:i + self.batch_size])
                for i in range(0, len(x), self.batch_size)]
        return np.concatenate(maps).astype(np.float32)


def grad_cam(model, images, *, layer_name: str | None = None, target: str = "predicted",
             threshold: float = 0.5, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM heatmaps float32 (N, H, W) in [0, 1] of ``images`` (see :class:`GradCam`).

    Builds and traces a :class:`GradCam` on each call (~1 s); for repeated calls on the
    same model build one ``GradCam`` and call it.
    """
    return GradCam(model, layer_name=layer_name, target=target, threshold=threshold,
                   batch_size=batch_size)(images)
