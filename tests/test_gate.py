"""Tests for pneumo_helpers.gate: which decoded images look like chest films."""

import numpy as np
import pytest

import hostile_files as make
from pneumo_helpers import gate
from pneumo_helpers.config import SAMPLE_DIR


@pytest.fixture(scope="module")
def films():
    """Some sample test films as decoded, uint8 gray (H, W)."""
    paths = sorted((SAMPLE_DIR / "test" / "NORMAL").glob("*.jpeg"))[:6] \
        + sorted((SAMPLE_DIR / "test" / "PNEUMONIA").glob("*.jpeg"))[:6]
    return [make.film(path) for path in paths]


@pytest.mark.parametrize("image, reason", [
    (np.zeros((1, 1), np.uint8), "too small"),
    (np.zeros((20, 400), np.uint8) + np.arange(400, dtype=np.uint8) % 200, "too small"),
    (np.full((300, 300), 117, np.uint8), "blank image"),
])
def test_images_that_cannot_be_chest_films_by_size_or_range_are_named(image, reason):
    assert reason in gate.implausible(image)
    assert reason in gate.film_reason(image)


def test_real_films_pass(films):
    assert [gate.film_reason(f) for f in films] == [None] * len(films)
    assert all(gate.implausible(f) is None for f in films)


def test_noise_and_patterns_do_not_have_a_chests_layout():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (128, 128)).astype(np.uint8)
    gradient = np.tile(np.linspace(0, 255, 128).astype(np.uint8), (128, 1))
    for image in (noise, gradient):
        assert "layout of a chest film" in gate.film_reason(image)


def test_a_colour_image_is_refused_by_its_channel_spread(films):
    stats = gate.load_stats()
    assert gate.film_reason(films[0], chroma=stats.max_chroma / 2) is None
    assert "colour" in gate.film_reason(films[0], chroma=stats.max_chroma + 1)


def test_a_two_level_film_has_too_few_grey_levels(films):
    two_level = np.where(films[0] > np.median(films[0]), 200, 40).astype(np.uint8)
    assert "grey levels" in gate.film_reason(two_level)


def test_an_inverted_film_is_named_as_such(films):
    assert "inverted" in gate.film_reason(255 - films[0])


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_film_is_asked_to_be_rotated_upright(films, turns):
    reasons = [gate.film_reason(np.rot90(f, turns).copy()) for f in films]
    assert sum(r is not None for r in reasons) >= len(films) - 1
    assert all("rotate" in r or "chest film" in r for r in reasons if r)


def test_features_of_an_upright_film_sit_inside_every_threshold(films):
    stats = gate.load_stats()
    f = gate.features(films[0])
    assert set(f) == {"chroma", "top2", "correlation", "residual", "upright_margin"}
    assert f["correlation"] >= stats.min_correlation and f["residual"] <= stats.max_residual
    assert f["upright_margin"] >= stats.min_upright_margin and f["top2"] <= stats.max_top2
    assert gate.features(255 - films[0])["correlation"] == pytest.approx(-f["correlation"],
                                                                          abs=1e-3)


def test_stats_survive_a_save_and_load(tmp_path):
    stats = gate.load_stats()
    stats.save(tmp_path / "stats.npz")
    again = gate.load_stats(tmp_path / "stats.npz")
    np.testing.assert_array_equal(again.components, stats.components)
    assert again.min_correlation == stats.min_correlation
    assert again.template.shape == (gate.THUMB, gate.THUMB)


def test_abstentions_name_the_films_of_a_stack_by_position(films):
    import cv2

    upright = [cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in films[:3]]
    stack = np.stack(upright + [255 - upright[0], np.full((64, 64), 9, np.uint8)])
    found = gate.abstentions(stack)
    assert sorted(found) == [3, 4]
    assert "inverted" in found[3] and "blank" in found[4]
