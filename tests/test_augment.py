"""Tests for pneumo_helpers.augment: what Augment does to a batch, through its call."""

import numpy as np
import pytest
import tensorflow as tf

from pneumo_helpers.augment import AUGMENTATIONS, Augment
from pneumo_helpers.images import to_unit
from synthetic_dataset import smooth_film

SIZE = 32
OFF = dict(rotation=0, shift=0, zoom=0, brightness=0, contrast=0)  # every change off


def test_named_recipes_are_augments_and_mild_is_the_default():
    assert set(AUGMENTATIONS) >= {"mild", "framing", "framing-acq"}
    assert AUGMENTATIONS["mild"] == Augment()
    assert all(isinstance(a, Augment) for a in AUGMENTATIONS.values())


def test_everything_off_is_the_identity_in_float():
    images = np.stack([smooth_film(i, SIZE) for i in range(3)])[..., None]
    out = Augment(**OFF)(images, 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, to_unit(images), atol=1e-6)


def test_rotation_keeps_the_centre_and_moves_the_ends():
    bar = np.zeros((8, 41, 41, 1), np.uint8)
    bar[:, 20, 5:36] = 255
    rotated = Augment(**{**OFF, "rotation": 30})(bar, 7)[..., 0]
    assert (rotated[:, 20, 20] > 0.9).all()  # the centre maps onto itself
    assert (rotated[:, 20, 35] < 0.99).any()  # some bar end moved off its row


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant", "wrap"])
def test_fill_modes_fill_what_a_shift_uncovers(fill_mode):
    image = np.tile(np.arange(1, 21, dtype=np.uint8).reshape(1, 4, 5, 1), (16, 1, 1, 1))
    out = Augment(**{**OFF, "shift": 0.4}, fill_mode=fill_mode)(image, 2) * 255
    assert not np.allclose(out, image)  # something moved
    if fill_mode == "constant":
        assert (out.min((1, 2, 3)) < 1e-3).any()  # black fill where the image left
    else:
        assert out.min() > 0.5  # the fill repeats image pixels: nothing black


def test_brightness_and_contrast_stay_within_their_limits():
    images = np.stack([smooth_film(i, SIZE) for i in range(8)])[..., None]
    x = to_unit(images)
    bright = Augment(**{**OFF, "brightness": 0.1})(images, 3)
    delta = (bright - x).reshape(8, -1)
    unclipped = (x.reshape(8, -1) > 0.1) & (x.reshape(8, -1) < 0.9)
    for d, keep in zip(delta, unclipped):  # one offset per image, at most 0.1
        assert np.ptp(d[keep]) < 1e-5 and abs(d[keep][0]) <= 0.1 + 1e-6
    contrast = Augment(**{**OFF, "contrast": 0.5})(images, 3)
    assert contrast.dtype == np.float32 and 0 <= contrast.min() and contrast.max() <= 1
    spread = contrast.std((1, 2, 3)) / x.std((1, 2, 3))
    assert (spread > 0.45).all() and (spread < 1.55).all() and np.ptp(spread) > 0.01


def test_gamma_bends_the_exposure_curve_within_its_limit_and_blur_smooths():
    images = np.stack([smooth_film(i, SIZE) for i in range(8)])[..., None]
    before = images.copy()
    x = np.clip(to_unit(images), 1e-3, 1 - 1e-3)
    out = Augment(**OFF, gamma=0.3)(images, 5)
    exponents = np.log(np.clip(out, 1e-3, 1 - 1e-3)) / np.log(x)
    mid = (x > 0.2) & (x < 0.8)
    per_image = [e[m].mean() for e, m in zip(exponents, mid)]
    assert all(np.exp(-0.3) - 0.02 <= g <= np.exp(0.3) + 0.02 for g in per_image)
    assert np.ptp(per_image) > 0.01
    blurred = Augment(**OFF, blur=2.0)(images, 5)
    assert np.abs(blurred.mean((1, 2, 3)) - (to_unit(images)).mean((1, 2, 3))).max() < 0.01
    assert (np.abs(np.diff(blurred, axis=1)).mean() <
            np.abs(np.diff(to_unit(images), axis=1)).mean())
    assert np.array_equal(images, before)  # the input is left alone
    with pytest.raises(ValueError, match="gamma"):
        Augment(gamma=-0.1)


def test_flips_are_off_by_default_and_exact_when_on():
    assert Augment().horizontal_flip is False and Augment().vertical_flip is False
    pixels = np.stack([smooth_film(i, SIZE) for i in range(16)])[..., None]
    flip_only = Augment(**OFF, horizontal_flip=True)
    # A tensor in -> a tensor out; numpy in -> numpy out; both flip the same images.
    out = flip_only(tf.constant(pixels), tf.constant([1, 2])).numpy()
    assert np.array_equal(out, flip_only(pixels, np.array([1, 2])))
    expected = to_unit(pixels)
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-6) for o, i in zip(out, expected)]
    same = [np.allclose(o, i, atol=1e-6) for o, i in zip(out, expected)]
    assert all(m or s for m, s in zip(mirrored, same))
    assert 0 < sum(mirrored) < 16
    # Defaults never mirror: a geometry-only Augment keeps the bright corner on the left.
    geometry = Augment(brightness=0, contrast=0)(pixels, 3)
    assert (geometry[:, :8, :6].mean((1, 2, 3)) > geometry[:, :8, -6:].mean((1, 2, 3))).all()


def test_augment_is_seeded_and_validated():
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (4, SIZE, SIZE, 1), np.uint8))
    aug = Augment()
    assert np.array_equal(aug(images, tf.constant([1, 2])), aug(images, tf.constant([1, 2])))
    assert not np.array_equal(aug(images, tf.constant([1, 2])), aug(images, tf.constant([1, 3])))
    # Inside a tf.function (as in Dataset.map) it gives the same values as eagerly.
    in_graph = tf.function(aug)(images, tf.constant([1, 2]))
    assert in_graph.shape == (4, SIZE, SIZE, 1)
    assert np.array_equal(in_graph, aug(images, tf.constant([1, 2])))
    # Signed int64 seeds, as tf.data draws them, are fine.
    assert aug(images.numpy(), np.array([-7, 2**62])).shape == (4, SIZE, SIZE, 1)
    with pytest.raises(ValueError, match="rotation"):
        Augment(rotation=400)
    with pytest.raises(ValueError, match="fill_mode"):
        Augment(fill_mode="mirror")
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        aug(np.zeros((SIZE, SIZE), np.uint8), 0)
    with pytest.raises(ValueError, match="int16"):
        aug(np.zeros((1, SIZE, SIZE, 1), np.int16), 0)
    with pytest.raises(ValueError, match="uint8"):  # scaled already: refused, not rescaled
        aug(np.zeros((1, SIZE, SIZE, 1), np.float32), 0)


def test_erase_blanks_edges_or_corners_only_and_leaves_other_draws_alone():
    x = np.full((16, 64, 64, 1), 200, np.uint8)
    x[:, 24:40, 24:40] = 40
    plain = Augment(**OFF)(x, 5)
    erased = Augment(**OFF, erase=0.2)(x, 5)
    changed = np.abs(erased - plain)[..., 0] > 1e-6
    assert changed.any()
    # Only within 20 % of an edge: the centre (where the lungs are) is never blanked.
    assert not changed[:, 13:51, 13:51].any()
    # Same seed, same result; erase off, the pixels are those of the plain recipe.
    np.testing.assert_array_equal(
        erased, Augment(**OFF, erase=0.2)(x, 5))
