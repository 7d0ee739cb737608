"""Tests of pneumo_helpers.gradcam: Grad-CAM must find what decides the class."""

import keras
import numpy as np
import pytest
from keras import layers

from patch_cnn import SIZE, positives, test_set, tiny_cnn, trained  # noqa: F401 (fixtures)
from pneumo_helpers import gradcam, models
from pneumo_helpers.images import to_unit


def test_gradcam_weight_is_on_the_patch(trained, test_set):
    images, masks = positives(test_set, 8)
    maps = gradcam.grad_cam(trained, images)
    assert maps.shape == images.shape and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    for heat, mask in zip(maps, masks):
        assert heat[mask].mean() > 2 * heat[~mask].mean()


def test_gradcam_layer_choice(trained):
    assert gradcam.gradcam_layer(trained).name == "last_conv"
    assert gradcam.gradcam_layer(trained, trained.layers[1].name) is trained.layers[1]
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), layers.Conv2D(2, 3, name="a"),
                              layers.SeparableConv2D(2, 3, name="b"), layers.Flatten(),
                              layers.Dense(1, activation="sigmoid")])
    assert gradcam.gradcam_layer(model).name == "b"


def test_gradcam_single_equals_batched_and_targets_differ(trained, test_set):
    images = positives(test_set, 4)[0]
    cam = gradcam.GradCam(trained, batch_size=3)
    batched = cam(images)
    single = np.concatenate([cam(image) for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(cam(images[0][..., None]), single[:1], atol=1e-5)
    with pytest.raises(ValueError, match="expects 32x32"):
        cam(np.zeros((2, 16, 16), np.uint8))
    normal = gradcam.GradCam(trained, target="normal")(images)
    assert not np.allclose(normal, batched)


def test_gradcam_survives_a_saturated_sigmoid(trained, test_set):
    """A confident model (P == 1.0 in float32) still gets a map, via the logit."""
    saturated = keras.models.clone_model(trained)
    weights = trained.get_weights()
    weights[-2], weights[-1] = weights[-2] * 200, weights[-1] * 200  # the output Dense
    saturated.set_weights(weights)
    images = positives(test_set, 2)[0]
    assert (saturated.predict(to_unit(images)[..., None], verbose=0) == 1.0).all()
    maps = gradcam.grad_cam(saturated, images)
    assert np.allclose(maps.max(axis=(1, 2)), 1)


def test_gradcam_reads_the_rectified_maps_the_head_pools():
    """Not the raw last convolution: before its normalisation its maps can flip sign, and
    Grad-CAM's ReLU then blanks the map (seen on most PNEUMONIA calls of a full run)."""
    model = models.build_five_block_cnn(image_size=64)
    layer = gradcam.gradcam_layer(model)
    pool = next(l for l in model.layers if isinstance(l, layers.GlobalAveragePooling2D))
    assert layer is pool.input._keras_history[0]
    assert isinstance(layer, (layers.ReLU, layers.Activation)) and layer.name != "last_conv"
    assert gradcam.gradcam_layer(model, "last_conv").name == "last_conv"  # still choosable


def test_three_channel_model_takes_gray_films(test_set):
    assert gradcam.grad_cam(tiny_cnn(channels=3), test_set[0][:1]).shape == (1, SIZE, SIZE)


def test_bad_inputs_raise_clear_errors(trained):
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        gradcam.grad_cam(trained, np.zeros((1, SIZE, SIZE), np.uint8), layer_name="conv9")
    dense_only = keras.Sequential([keras.Input((SIZE, SIZE, 1)), layers.Flatten(),
                                   layers.Dense(1, activation="sigmoid")])
    with pytest.raises(ValueError, match="layer_name"):
        gradcam.grad_cam(dense_only, np.zeros((1, SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        gradcam.grad_cam(trained, np.zeros((1, SIZE, SIZE), np.float32))
