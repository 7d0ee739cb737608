"""Tests of pneumo_helpers.backbones: the backbones are Keras' own, preprocessed as Keras does."""

import keras
import numpy as np
import pytest

from pneumo_helpers.backbones import BACKBONES, BackbonePreprocessing, backbone_spec


@pytest.mark.parametrize("backbone", ["DenseNet121", "ResNet50V2"])
def test_backbone_preprocessing_matches_keras_applications(backbone):
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(BackbonePreprocessing(backbone)(x))
    module = {"DenseNet121": keras.applications.densenet,
              "ResNet50V2": keras.applications.resnet_v2}[backbone]
    np.testing.assert_allclose(ours, module.preprocess_input(x * 255.0), rtol=1e-5, atol=1e-4)


def test_urls_and_hashes_are_keras_own():
    from keras.src.applications import densenet, efficientnet, resnet

    assert BACKBONES["DenseNet121"].url == densenet.DENSENET121_WEIGHT_PATH_NO_TOP
    assert BACKBONES["EfficientNetB0"].url == (efficientnet.BASE_WEIGHTS_PATH
                                                      + "efficientnetb0_notop.h5")
    assert BACKBONES["EfficientNetB0"].md5 == efficientnet.WEIGHTS_HASHES["b0"][1]
    assert BACKBONES["ResNet50V2"].url == (resnet.BASE_WEIGHTS_PATH
                                                  + BACKBONES["ResNet50V2"].weights_file)
    assert BACKBONES["ResNet50V2"].md5 == resnet.WEIGHTS_HASHES["resnet50v2"][1]


def test_an_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match=r"backbone must be one of \['DenseNet121'"):
        backbone_spec("VGG16")
