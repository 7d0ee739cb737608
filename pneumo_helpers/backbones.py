"""The ImageNet backbones of ``keras.applications`` the project can build on, and the layer that
applies a backbone's own input preprocessing inside a model.

This is the description only: where the weights come from and how a transfer model is built
and fine-tuned are in :mod:`pneumo_helpers.transfer`. It sits below :mod:`pneumo_helpers.models`,
which needs it to load a saved transfer model and to find its Grad-CAM layer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
from keras import layers, ops

__all__ = ["BACKBONES", "BackbonePreprocessing", "backbone_spec", "transfer_backbone"]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How to build one ``keras.applications`` backbone and where Keras caches its weights."""

    constructor: Callable
    preprocess: Callable  # the application's own preprocess_input, inputs in [0, 255]
    weights_file: str  # file name of the ImageNet "notop" weights in ~/.keras/models
    md5: str  # the hash keras.applications checks the file against
    url: str  # where keras.applications downloads it from
    feature_layer: str  # the last activation of the backbone: what Grad-CAM weighs


_KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"
BACKBONES: dict[str, Backbone] = {
    "EfficientNetB0": Backbone(keras.applications.EfficientNetB0,
                                keras.applications.efficientnet.preprocess_input,
                                "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d",
                                "https://storage.googleapis.com/keras-applications/"
                                "efficientnetb0_notop.h5", "top_activation"),
    "ResNet50V2": Backbone(keras.applications.ResNet50V2,
                            keras.applications.resnet_v2.preprocess_input,
                            "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                            "fac2f116257151a9d068a22e544a4917",
                            _KERAS_WEIGHTS + "resnet/"
                            "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", "post_relu"),
    "DenseNet121": Backbone(keras.applications.DenseNet121,
                             keras.applications.densenet.preprocess_input,
                             "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             "30ee3e1110167f948a6b9946edeeb738",
                             _KERAS_WEIGHTS + "densenet/"
                             "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", "relu"),
}


def backbone_spec(backbone: str) -> Backbone:
    """The :data:`BACKBONES` entry of ``backbone``; ``ValueError`` naming the choices."""
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
        backbone_spec(backbone)
        self.backbone = backbone

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype) * 255.0
        return BACKBONES[self.backbone].preprocess(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}



def transfer_backbone(model: keras.Model) -> str | None:
    """The :data:`BACKBONES` key of a model built on a backbone, else ``None``."""
    found = [layer.backbone for layer in model.layers
             if isinstance(layer, BackbonePreprocessing)]
    return found[0] if found else None
