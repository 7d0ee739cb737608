"""Tests of pneumo_helpers.lime_explain: LIME must find what decides the class."""

import numpy as np
import pytest
from lime import lime_image

from patch_cnn import SIZE, positives, test_set, tiny_cnn, trained  # noqa: F401 (fixtures)
from pneumo_helpers import lime_explain
from pneumo_helpers.images import to_unit


@pytest.fixture(scope="module")
def lime(trained):
    return lime_explain.LimeExplainer(trained, num_samples=300, n_segments=30, random_state=0)


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


def test_explain_batch_explains_each_film_as_alone(lime, test_set):
    images = test_set[0][:3]
    batch = lime.explain_batch(images)
    assert len(batch) == 3 and all(isinstance(e, lime_explain.Explanation) for e in batch)
    np.testing.assert_array_equal(batch[0].weights, lime.explain(images[0]).weights)
    np.testing.assert_array_equal(batch[0].image, images[0])  # the film as given, uint8


def test_lime_is_deterministic_with_a_seed(trained, test_set):
    image = positives(test_set, 1)[0][0]
    def make(seed):
        return lime_explain.LimeExplainer(trained, num_samples=200, n_segments=30,
                                     random_state=seed)
    first, again, other = make(3).explain(image), make(3).explain(image), make(4).explain(image)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.allclose(first.weights, other.weights)


def test_fast_neighbourhood_matches_plain_lime(trained, test_set):
    """The array-indexing override gives exactly lime's own result for the same seed."""
    image = to_unit(positives(test_set, 1)[0][0])[..., None].astype(np.float64)
    def segmentation(img):
        return lime_explain.segment_xray(img, n_segments=30)
    ours_explainer = lime_explain.LimeExplainer(trained)
    results = []
    for cls in (lime_explain._ArrayLimeImageExplainer, lime_image.LimeImageExplainer):
        result = cls(feature_selection="none", random_state=5).explain_instance(
            image, ours_explainer.predict_fn, labels=(1,), top_labels=None, hide_color=0.0,
            num_samples=100, batch_size=50, segmentation_fn=segmentation, random_seed=5)
        results.append(dict(result.local_exp[1]))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == pytest.approx(results[1][key], abs=1e-6)


def test_predict_fn_turns_rgb_into_gray(trained, test_set):
    lime = lime_explain.LimeExplainer(trained)
    gray = to_unit(test_set[0][:4])
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    tinted = rgb * np.array([0.5, 1.0, 1.5])  # mean of RGB is still the gray image
    expected = trained.predict(gray[..., None], verbose=0).ravel()
    for batch in (rgb, tinted, gray[..., None]):
        probs = lime.predict_fn(batch)
        assert probs.shape == (4, 2)
        np.testing.assert_allclose(probs[:, 1], expected, atol=1e-5)
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)


def test_thorough_settings_use_more_samples_and_segments(trained):
    default = lime_explain.LimeExplainer(trained)
    thorough = lime_explain.LimeExplainer(trained, settings="thorough")
    assert thorough.num_samples > default.num_samples
    assert thorough.n_segments > default.n_segments
    assert lime_explain.LimeExplainer(trained, settings="thorough", num_samples=7 * 10).num_samples == 70


def test_three_channel_model_takes_gray_films(test_set):
    e = lime_explain.LimeExplainer(tiny_cnn(channels=3), num_samples=50,
                                   n_segments=10).explain(test_set[0][0])
    assert e.heatmap.shape == (SIZE, SIZE)


def test_bad_inputs_raise_clear_errors(trained, lime):
    with pytest.raises(ValueError, match="expects 32x32"):
        lime.explain(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        lime.explain(np.full((SIZE, SIZE), 0.5, np.float32))  # maybe scaled already
    with pytest.raises(ValueError, match="one film"):
        lime.explain(np.zeros((2, 2, SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match="settings"):
        lime_explain.LimeExplainer(trained, settings="fast")


def test_lime_overlay_tints_the_strongest_superpixels(lime, test_set):
    from skimage.segmentation import find_boundaries

    e = lime.explain(positives(test_set, 1)[0][0])
    tinted = lime_explain.lime_overlay(e, k=1)
    top = e.segments == e.top_segments(1)[0]
    assert tinted.shape == (SIZE, SIZE, 3) and tinted.max() <= 1
    inner = top & ~find_boundaries(e.segments, mode="inner")
    assert (tinted[inner][:, 1] > tinted[inner][:, 0]).all()  # green on the top superpixel
    untouched = ~np.isin(e.segments, np.r_[e.top_segments(1), e.top_segments(5, sign=-1)])
    untouched &= ~find_boundaries(e.segments, mode="inner")
    np.testing.assert_allclose(tinted[untouched][:, 0], to_unit(e.image)[untouched], atol=1e-6)
