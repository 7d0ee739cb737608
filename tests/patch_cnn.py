"""A tiny CNN that learned where a bright square is: what the explainer tests explain.

Synthetic 32x32 uint8 films whose class is decided by a bright 8x8 square at a random place
(present -> PNEUMONIA); the CNN learns it in a few seconds. Explainers must then put their
weight on the square. Test modules import the fixtures they use.
"""

import keras
import numpy as np
import pytest
from keras import layers

from pneumo_helpers.images import to_unit

SIZE, PATCH = 32, 8


def make_images(n: int, seed: int):
    """uint8 films (n, SIZE, SIZE), labels (n,), patch masks bool (n, SIZE, SIZE)."""
    rng = np.random.default_rng(seed)
    images = (rng.normal(0.3, 0.05, (n, SIZE, SIZE)).clip(0, 1) * 255).round().astype(np.uint8)
    labels = rng.integers(0, 2, n)
    masks = np.zeros((n, SIZE, SIZE), bool)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, SIZE - PATCH, 2)
        masks[i, r:r + PATCH, c:c + PATCH] = True
    images[masks] = 230
    return images, labels, masks


def tiny_cnn(channels: int = 1, size: int = SIZE) -> keras.Model:
    inputs = keras.Input((size, size, channels))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    x = layers.GlobalMaxPooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="pneumonia")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def trained():
    keras.utils.set_random_seed(0)
    images, labels, _ = make_images(600, seed=0)
    model = tiny_cnn()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(to_unit(images)[..., None], labels, epochs=6, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def test_set(trained):
    images, labels, masks = make_images(40, seed=1)
    p = trained.predict(to_unit(images)[..., None], verbose=0).ravel()
    assert ((p >= 0.5) == labels).mean() >= 0.95, "the tiny CNN did not learn the patch"
    return images, labels, masks


def positives(test_set, k: int):
    images, labels, masks = test_set
    index = np.flatnonzero(labels == 1)[:k]
    return images[index], masks[index]
