"""Tests of pneumo_helpers.explain: the cases explained, the films' input, the overlay."""

import numpy as np
import pytest

from patch_cnn import SIZE, tiny_cnn
from pneumo_helpers import explain
from pneumo_helpers.images import to_unit


def test_pick_cases_takes_the_first_of_each_kind_that_occurs():
    y = [0, 1, 0, 1, 1]
    p = [0.9, 0.8, 0.1, 0.2, 0.95]
    assert explain.pick_cases(y, p, threshold=0.5) == {
        "true positive": 1, "true negative": 2, "false positive": 0, "false negative": 3}
    assert list(explain.pick_cases([1, 1], [0.9, 0.9], threshold=0.5)) == ["true positive"]
    # A probability exactly at the threshold is a positive call.
    assert list(explain.pick_cases([0], [0.5], threshold=0.5)) == ["false positive"]


def test_model_input_scales_films_once_and_checks_their_shape():
    model = tiny_cnn()
    films = np.arange(3 * SIZE * SIZE).reshape(3, SIZE, SIZE).astype(np.uint8)
    x = explain.model_input(films, model, single=False)
    assert x.dtype == np.float32 and x.shape == (3, SIZE, SIZE)
    np.testing.assert_array_equal(x, to_unit(films))
    np.testing.assert_array_equal(explain.model_input(films[..., None], model, single=False), x)
    assert explain.model_input(films[0], model, single=True).shape == (1, SIZE, SIZE)
    with pytest.raises(ValueError, match="uint8"):
        explain.model_input(x, model, single=False)  # scaled already: refused, not rescaled
    with pytest.raises(ValueError, match="expects 32x32"):
        explain.model_input(np.zeros((1, 16, 16), np.uint8), model, single=False)


def test_overlay_blends_the_heat_over_the_film():
    film = np.linspace(0, 255, SIZE * SIZE).reshape(SIZE, SIZE).astype(np.uint8)
    heat = np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE)
    rgb = explain.overlay(film, heat, alpha=0.5)
    assert rgb.shape == (SIZE, SIZE, 3) and 0 <= rgb.min() and rgb.max() <= 1
    np.testing.assert_allclose(explain.overlay(film, heat, alpha=0.0)[..., 1], to_unit(film),
                               atol=1e-6)
    with pytest.raises(ValueError, match="heatmap shape"):
        explain.overlay(film, heat[:10])
