"""Tests of pneumo_helpers.explain: LIME and Grad-CAM must find what decides the class.

A tiny CNN is trained (a few seconds) on synthetic 32x32 gray images whose class is decided
by a bright 8x8 square at a random place: present -> PNEUMONIA. Both explainers must then
put their weight on the square.
"""

import keras
import numpy as np
import pytest
from keras import layers
from lime import lime_image
from skimage.segmentation import find_boundaries

from pneumo_helpers import explain, models

SIZE, PATCH = 32, 8


def make_images(n: int, seed: int):
    """Images float32 (n, SIZE, SIZE) in [0, 1], labels (n,), patch masks bool (n, SIZE, SIZE)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.3, 0.05, (n, SIZE, SIZE)).clip(0, 1).astype(np.float32)
    labels = rng.integers(0, 2, n)
    masks = np.zeros((n, SIZE, SIZE), bool)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, SIZE - PATCH, 2)
        masks[i, r:r + PATCH, c:c + PATCH] = True
    images[masks] = 0.9
    return images, labels, masks


def tiny_cnn(channels: int = 1, size: int = SIZE) -> keras.Model:
    inputs = keras.Input((size, size, channels))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    x = layers.GlobalMaxPooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="pneumonia")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    images, labels, _ = make_images(600, seed=0)
    model = tiny_cnn()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(images[..., None], labels, epochs=6, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def test_set(trained):
    images, labels, masks = make_images(40, seed=1)
    p = trained.predict(images[..., None], verbose=0).ravel()
    assert ((p >= 0.5) == labels).mean() >= 0.95, "the tiny CNN did not learn the patch"
    return images, labels, masks


@pytest.fixture(scope="module")
def lime(trained):
    return explain.LimeExplainer(trained, num_samples=300, n_segments=30, random_state=0)


def positives(test_set, k: int):
    images, labels, masks = test_set
    index = np.flatnonzero(labels == 1)[:k]
    return images[index], masks[index]


def test_gradcam_weight_is_on_the_patch(trained, test_set):
    images, masks = positives(test_set, 8)
    maps = explain.grad_cam(trained, images)
    assert maps.shape == images.shape and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    for heat, mask in zip(maps, masks):
        assert heat[mask].mean() > 2 * heat[~mask].mean()


def test_lime_weight_is_on_the_patch(lime, test_set):
    images, masks = positives(test_set, 3)
    for image, mask in zip(images, masks):
        e = lime.explain(image)
        assert e.label == "PNEUMONIA" and e.probability > 0.5
        assert e.heatmap[mask].mean() > e.heatmap[~mask].mean() + 0.05
        top = e.segments == e.top_segments(1)[0]
        # The strongest superpixel lies mostly on the patch.
        assert (top & mask).sum() > 0.5 * top.sum()


def test_explanation_shapes_and_fields(lime, test_set):
    image = test_set[0][0]
    e = lime.explain(image[..., None])  # (H, W, 1) is accepted too
    k = e.segments.max() + 1
    assert e.image.shape == e.segments.shape == e.heatmap.shape == (SIZE, SIZE)
    assert e.weights.shape == (k,) and set(np.unique(e.segments)) == set(range(k))
    np.testing.assert_array_equal(e.heatmap, e.weights[e.segments])
    assert 10 <= k <= 45  # about n_segments=30 SLIC superpixels
    assert 0 <= e.probability <= 1 and e.label in ("NORMAL", "PNEUMONIA")
    pos = e.top_segments(3)
    assert (e.weights[pos] > 0).all() and (np.diff(e.weights[pos]) <= 0).all()
    assert (e.weights[e.top_segments(3, sign=-1)] < 0).all()


def test_explain_batch_and_uint8(lime, test_set):
    images = test_set[0][:3]
    batch = lime.explain_batch(images)
    assert len(batch) == 3 and all(isinstance(e, explain.Explanation) for e in batch)
    as_uint8 = lime.explain((images[0] * 255).round().astype(np.uint8))
    assert as_uint8.segments.shape == (SIZE, SIZE)


def test_lime_is_deterministic_with_a_seed(trained, test_set):
    image = positives(test_set, 1)[0][0]
    def make(seed):
        return explain.LimeExplainer(trained, num_samples=200, n_segments=30,
                                     random_state=seed)
    first, again, other = make(3).explain(image), make(3).explain(image), make(4).explain(image)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.allclose(first.weights, other.weights)


def test_fast_neighbourhood_matches_plain_lime(trained, test_set):
    """The array-indexing override gives exactly lime's own result for the same seed."""
    image = positives(test_set, 1)[0][0][..., None].astype(np.float64)
    def segmentation(img):
        return explain.segment_xray(img, n_segments=30)
    ours_explainer = explain.LimeExplainer(trained)
    results = []
    for cls in (explain._ArrayLimeImageExplainer, lime_image.LimeImageExplainer):
        result = cls(feature_selection="none", random_state=5).explain_instance(
            image, ours_explainer.predict_fn, labels=(1,), top_labels=None, hide_color=0.0,
            num_samples=100, batch_size=50, segmentation_fn=segmentation, random_seed=5)
        results.append(dict(result.local_exp[1]))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == pytest.approx(results[1][key], abs=1e-6)


def test_predict_fn_turns_rgb_into_gray(trained, test_set):
    lime = explain.LimeExplainer(trained)
    gray = test_set[0][:4]
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    tinted = rgb * np.array([0.5, 1.0, 1.5])  # mean of RGB is still the gray image
    expected = trained.predict(gray[..., None], verbose=0).ravel()
    for batch in (rgb, tinted, gray[..., None]):
        probs = lime.predict_fn(batch)
        assert probs.shape == (4, 2)
        np.testing.assert_allclose(probs[:, 1], expected, atol=1e-5)
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)


def test_three_channel_model_takes_gray_images(test_set):
    model = tiny_cnn(channels=3)
    image = test_set[0][0]
    e = explain.LimeExplainer(model, num_samples=50, n_segments=10).explain(image)
    assert e.heatmap.shape == (SIZE, SIZE)
    assert explain.grad_cam(model, image[None]).shape == (1, SIZE, SIZE)


def test_thorough_settings_use_more_samples_and_segments(trained):
    default = explain.LimeExplainer(trained)
    thorough = explain.LimeExplainer(trained, settings="thorough")
    assert thorough.num_samples > default.num_samples
    assert thorough.n_segments > default.n_segments
    assert explain.LimeExplainer(trained, settings="thorough", num_samples=7 * 10).num_samples == 70


def test_bad_inputs_raise_clear_errors(trained, lime):
    with pytest.raises(ValueError, match="expects 32x32"):
        lime.explain(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lime.explain(np.full((SIZE, SIZE), 3.0, np.float32))
    with pytest.raises(ValueError, match="one image"):
        lime.explain(np.zeros((2, 2, SIZE, SIZE)))
    with pytest.raises(ValueError, match="settings"):
        explain.LimeExplainer(trained, settings="fast")
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        explain.grad_cam(trained, np.zeros((1, SIZE, SIZE)), layer_name="conv9")
    dense_only = keras.Sequential([keras.Input((SIZE, SIZE, 1)), layers.Flatten(),
                                   layers.Dense(1, activation="sigmoid")])
    with pytest.raises(ValueError, match="layer_name"):
        explain.grad_cam(dense_only, np.zeros((1, SIZE, SIZE)))


def test_gradcam_layer_choice(trained):
    assert explain.gradcam_layer(trained).name == "last_conv"
    assert explain.gradcam_layer(trained, trained.layers[1].name) is trained.layers[1]
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), layers.Conv2D(2, 3, name="a"),
                              layers.SeparableConv2D(2, 3, name="b"), layers.Flatten(),
                              layers.Dense(1, activation="sigmoid")])
    assert explain.gradcam_layer(model).name == "b"


def test_gradcam_single_equals_batched_and_targets_differ(trained, test_set):
    images = positives(test_set, 4)[0]
    cam = explain.GradCam(trained, batch_size=3)
    batched = cam(images)
    single = np.concatenate([cam(image) for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(cam(images[0][..., None]), single[:1], atol=1e-5)
    with pytest.raises(ValueError, match="expects 32x32"):
        cam(np.zeros((2, 16, 16), np.float32))
    normal = explain.GradCam(trained, target="normal")(images)
    assert not np.allclose(normal, batched)


def test_gradcam_of_an_average_of_models(trained, test_set):
    """An average of models gets the mean of its members' maps, for the average's class."""
    images = positives(test_set, 3)[0]
    twins = [keras.models.clone_model(trained) for _ in range(2)]
    for twin in twins:
        twin.set_weights(trained.get_weights())
    average = models.average_models(twins)  # renames its members: never the fixture itself
    for target in ("predicted", "normal"):
        np.testing.assert_allclose(explain.GradCam(average, target=target)(images),
                                   explain.GradCam(trained, target=target)(images), atol=1e-5)
    # Members that disagree: every map is for the class the average predicts.
    blank = keras.models.clone_model(trained)
    blank.set_weights([np.zeros_like(w) for w in trained.get_weights()])  # P = 0.5 everywhere
    mixed = models.average_models([keras.models.clone_model(trained), blank])
    mixed.layers[1].set_weights(trained.get_weights())
    p = mixed.predict_on_batch(images[..., None]).ravel()
    threshold = float(np.median(p))
    maps = explain.GradCam(mixed, threshold=threshold)(images)
    for i, target in enumerate(np.where(p >= threshold, "pneumonia", "normal")):
        alone = explain.GradCam(mixed.layers[1], target=target)(images[i:i + 1])
        np.testing.assert_allclose(maps[i], alone[0], atol=1e-5)  # the blank member adds 0


def test_gradcam_survives_a_saturated_sigmoid(trained, test_set):
    """A confident model (P == 1.0 in float32) still gets a map, via the logit."""
    saturated = keras.models.clone_model(trained)
    weights = trained.get_weights()
    weights[-2], weights[-1] = weights[-2] * 200, weights[-1] * 200  # the output Dense
    saturated.set_weights(weights)
    images = positives(test_set, 2)[0]
    assert (saturated.predict(images[..., None], verbose=0) == 1.0).all()
    maps = explain.grad_cam(saturated, images)
    assert np.allclose(maps.max(axis=(1, 2)), 1)


def test_overlays(lime, test_set):
    image = test_set[0][0]
    heat = np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE)
    rgb = explain.overlay(image, heat, alpha=0.5)
    assert rgb.shape == (SIZE, SIZE, 3) and 0 <= rgb.min() and rgb.max() <= 1
    np.testing.assert_allclose(explain.overlay(image, heat, alpha=0.0)[..., 1], image,
                               atol=1e-6)
    with pytest.raises(ValueError, match="heatmap shape"):
        explain.overlay(image, heat[:10])
    e = lime.explain(positives(test_set, 1)[0][0])
    tinted = explain.lime_overlay(e, k=1)
    top = e.segments == e.top_segments(1)[0]
    assert tinted.shape == (SIZE, SIZE, 3) and tinted.max() <= 1
    inner = top & ~find_boundaries(e.segments, mode="inner")
    assert (tinted[inner][:, 1] > tinted[inner][:, 0]).all()  # green on the top superpixel
    untouched = ~np.isin(e.segments, np.r_[e.top_segments(1), e.top_segments(5, sign=-1)])
    untouched &= ~find_boundaries(e.segments, mode="inner")
    np.testing.assert_allclose(tinted[untouched][:, 0], e.image[untouched], atol=1e-6)


def test_pick_cases_takes_the_first_of_each_kind_that_occurs():
    from pneumo_helpers.explain import pick_cases

    y = [0, 1, 0, 1, 1]
    p = [0.9, 0.8, 0.1, 0.2, 0.95]
    assert pick_cases(y, p, threshold=0.5) == {"true positive": 1, "true negative": 2,
                                               "false positive": 0, "false negative": 3}
    assert list(pick_cases([1, 1], [0.9, 0.9], threshold=0.5)) == ["true positive"]


def test_gradcam_reads_the_rectified_maps_the_head_pools():
    """Not the raw last convolution: before its normalisation its maps can flip sign, and
    Grad-CAM's ReLU then blanks the map (seen on most PNEUMONIA calls of a full run)."""
    model = models.build_five_block_cnn(image_size=64)
    layer = explain.gradcam_layer(model)
    pool = next(l for l in model.layers if isinstance(l, layers.GlobalAveragePooling2D))
    assert layer.output is pool.input
    assert isinstance(layer, (layers.ReLU, layers.Activation)) and layer.name != "last_conv"
    assert explain.gradcam_layer(model, "last_conv").name == "last_conv"  # still choosable
