"""Tests of pneumo_helpers.models on tiny synthetic images (nothing is downloaded)."""

import numpy as np
import pytest

import keras  # noqa: E402

from pneumo_helpers import models  # noqa: E402

# Parameter count of build_five_block_cnn() with its defaults; printed by the test below.
DEFAULT_PARAMS = 64321


def pattern_batch(n=16, size=32, channels=1, seed=0):
    """Random images; label-1 images carry a bright square in the upper-left quadrant."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.6, (n, size, size, channels)).astype("float32")
    y = np.tile([0.0, 1.0], n // 2).astype("float32")
    q = size // 4
    x[y == 1, q:2 * q, q:2 * q, :] = 1.0
    return x, y


def infer(model, x):
    """Inference-mode predictions without tracing a predict function (faster in tests)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def infer_training(model, x):
    """Training-mode outputs (batch statistics), without an update."""
    return keras.ops.convert_to_numpy(model(x, training=True))


def test_default_parameter_count_and_size_on_disk(tmp_path):
    model = models.build_five_block_cnn()
    print("five_block_cnn default parameters:", model.count_params())
    assert model.count_params() == DEFAULT_PARAMS
    assert model.input_shape == (None, 128, 128, 1)
    model.save(tmp_path / "m.keras")
    assert (tmp_path / "m.keras").stat().st_size < 15 * 2**20


def test_architecture_choices():
    model = models.build_five_block_cnn(image_size=64)
    assert models.last_conv_layer_name(model) == "last_conv"
    assert isinstance(model.get_layer("last_conv"), keras.layers.SeparableConv2D)
    assert type(model.get_layer("block1_conv1")) is keras.layers.Conv2D
    assert isinstance(model.get_layer("standardize"), models.PerImageStandardization)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 5 and all(layer.momentum == 0.9 for layer in norms)
    assert model.get_layer("last_conv").output.shape[1:] == (4, 4, 256)
    # Block 1 halves the image with its stride-2 convolution, without a pooling layer.
    assert model.get_layer("block1_conv1").strides == (2, 2)
    assert model.get_layer("block1_conv1_relu").output.shape[1:3] == (32, 32)
    assert "block1_pool" not in [layer.name for layer in model.layers]


@pytest.mark.parametrize("build", [models.build_five_block_cnn, models.build_baseline_cnn])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_and_range(build, channels):
    model = build(image_size=64, channels=channels)
    x, y = pattern_batch(4, 64, channels)
    p = model.predict(x, verbose=0)
    assert p.shape == (4, 1) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy", "precision", "recall", "auc"}


def test_baseline_last_conv_is_found():
    assert models.last_conv_layer_name(models.build_baseline_cnn(image_size=32)) == "block3_conv"


@pytest.mark.parametrize("kwargs", [dict(image_size=16), dict(channels=2), dict(filters=())])
def test_bad_arguments_raise_clear_errors(kwargs):
    with pytest.raises(ValueError, match="image_size|channels|filters"):
        models.build_five_block_cnn(**kwargs)


def test_standardization_cancels_exposure():
    x, _ = pattern_batch(4, 32)
    layer = models.PerImageStandardization()
    z = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(z.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2, 3)), 1, atol=1e-4)
    # A darker, lower-contrast exposure of the same images gives the same model input.
    z2 = keras.ops.convert_to_numpy(layer(0.5 * x + 0.1))
    np.testing.assert_allclose(z, z2, atol=1e-4)
    # A blank image stays finite.
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(layer(np.zeros((1, 8, 8, 1))))))


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build_five_block_cnn(image_size=64)
    x, y = pattern_batch(16, 64)
    model.train_on_batch(x, y)  # non-trivial BN statistics
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("standardize"), models.PerImageStandardization)
    np.testing.assert_allclose(infer(loaded, x), infer(model, x),
                               atol=1e-6)


def test_overfits_tiny_batch_and_separates_classes_in_inference_mode():
    keras.utils.set_random_seed(1)
    model = models.build_five_block_cnn(image_size=64)
    x, y = pattern_batch(16, 64)
    # train_on_batch reports the loss before its update: the first one is the untrained loss.
    losses = [model.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(60)]
    first, last = losses[0], losses[-1]
    assert last < 0.5 * first, (first, last)
    # Inference mode uses the BN moving statistics. With Keras' default momentum 0.99 they lag
    # so far behind that every prediction is the same (separation 0.000 here after 60 steps);
    # 0.9 separates new images of the two classes by ~0.8.
    x_new, y_new = pattern_batch(16, 64, seed=5)
    p = infer(model, x_new).ravel()
    assert p[y_new == 1].mean() - p[y_new == 0].mean() > 0.3, p


def test_consistency_adds_the_weighted_logit_gap_of_paired_views_to_the_training_loss():
    def build(**kwargs):
        keras.utils.set_random_seed(0)  # the same initial weights either way
        return models.build_five_block_cnn(image_size=32, filters=(8, 16, 32), dropout=0.0,
                                           **kwargs)

    plain, paired = build(), build(consistency=0.5)
    x, y = pattern_batch(8, 32)
    x[1::2] = np.roll(x[0::2], 5, axis=2)  # rows 2i and 2i + 1: two views of one film
    y[1::2] = y[0::2]
    p = np.clip(infer_training(plain, x).ravel(), 1e-6, 1 - 1e-6)
    logits = np.log(p) - np.log1p(-p)
    gap = np.mean((logits[0::2] - logits[1::2]) ** 2)
    assert gap > 1e-4  # the views differ, so the term is not trivially zero
    loss_plain = plain.train_on_batch(x, y, return_dict=True)["loss"]
    loss_paired = paired.train_on_batch(x, y, return_dict=True)["loss"]
    assert loss_paired == pytest.approx(loss_plain + 0.5 * gap, rel=1e-4)
    # In inference the layer passes the probabilities through and adds nothing.
    head = keras.Model(paired.inputs, paired.get_layer("pneumonia").output)
    np.testing.assert_array_equal(infer(paired, x), infer(head, x))
    assert not paired.losses
    assert models.output_layer(paired).name == "pneumonia"
    assert models.output_layer(plain).name == "pneumonia"
    with pytest.raises(ValueError, match="consistency"):
        models.build_five_block_cnn(image_size=32, consistency=-1)


def test_a_consistency_model_saves_loads_and_predicts_like_its_weights_without_it(tmp_path):
    keras.utils.set_random_seed(3)
    paired = models.build_baseline_cnn(image_size=32, consistency=0.1)
    x, y = pattern_batch(8, 32)
    paired.train_on_batch(x, y)
    paired.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert isinstance(loaded.layers[-1], models.ViewConsistency)
    assert loaded.layers[-1].weight == pytest.approx(0.1)
    plain = models.build_baseline_cnn(image_size=32)
    plain.set_weights(loaded.get_weights())
    np.testing.assert_allclose(infer(loaded, x), infer(plain, x), atol=1e-6)


def test_custom_objects_name_every_layer_the_model_modules_register():
    """The loaders pass ``CUSTOM_OBJECTS``: every layer a saved model may hold is in it,
    transfer models' included."""
    from pneumo_helpers import backbones, transfer

    modules = {models.__name__, backbones.__name__, transfer.__name__}
    registered = {obj for obj in keras.saving.get_custom_objects().values()
                  if getattr(obj, "__module__", None) in modules}
    assert registered and registered == set(models.CUSTOM_OBJECTS.values())
