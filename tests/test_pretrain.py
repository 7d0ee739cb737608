"""Contrastive pretraining: the NT-Xent logits, and that it trains the encoder and nothing else."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pneumo_helpers import models, pretrain


def test_pair_similarity_masks_each_row_itself_and_scales_by_temperature():
    z = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -3.0]], np.float32)
    logits = np.asarray(pretrain.PairSimilarity(0.5)(z))
    assert logits.shape == (4, 4)
    assert (np.diag(logits) < -1e8).all()  # a view never picks itself
    assert logits[0, 1] == pytest.approx(1 / 0.5)  # same direction, any length: cosine 1
    assert logits[2, 3] == pytest.approx(-1 / 0.5) and logits[0, 2] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="temperature"):
        pretrain.PairSimilarity(0.0)


def test_the_loss_is_low_only_when_each_view_is_nearest_to_its_own_partner():
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    paired = np.repeat(np.eye(4, dtype=np.float32), 2, axis=0)  # rows 2i, 2i+1 identical
    partners = np.arange(8) ^ 1  # the two views of a film are adjacent rows: 2i <-> 2i + 1
    good = float(loss(partners, pretrain.PairSimilarity(0.2)(paired)))
    shuffled = float(loss(partners, pretrain.PairSimilarity(0.2)(paired[[0, 2, 1, 4, 3, 6, 5, 7]])))
    # log(1 + 6 exp(-1 / 0.2)) = 0.04 with six orthogonal negatives; chance is log(7).
    assert good < 0.05 and shuffled > np.log(7)


def test_pretraining_moves_the_encoder_and_leaves_the_classifier_head_alone():
    net = models.build_five_block_cnn(image_size=32, filters=(8, 8, 8, 8, 8), dense_units=4)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in net.layers}
    rng = np.random.default_rng(0)
    films = rng.uniform(size=(8, 32, 32, 1)).astype(np.float32)
    views = np.repeat(films, 2, axis=0) + rng.normal(0, 0.05, (16, 32, 32, 1)).astype(np.float32)
    stream = tf.data.Dataset.from_tensor_slices((views, np.zeros(16, np.float32))).batch(16)
    history = pretrain.pretrain(net, stream, epochs=3, verbose=0)
    assert list(history["epoch"]) == [0, 1, 2]
    assert {"loss", "accuracy", "epoch_seconds"} <= set(history.columns)
    assert (history["loss"] < 2 * np.log(15)).all() and np.isfinite(history["loss"]).all()

    def moved(name):
        return any(not np.array_equal(a, b) for a, b in
                   zip(before[name], net.get_layer(name).get_weights()))

    assert moved("block1_conv1") and moved("last_conv")
    assert not moved("dense") and not moved("pneumonia")
    # The classifier is still whole and predicts as a classifier.
    assert net.predict(films, verbose=0).shape == (8, 1)


def test_pretraining_pairs_the_views_as_the_stream_holds_them():
    """Adjacent rows are a film's two views: with identical views most rows find their own
    partner (wrongly paired targets would score near 1/15, the chance level)."""
    net = models.build_five_block_cnn(image_size=32, filters=(8, 8, 8, 8, 8), dense_units=4)
    films = np.random.default_rng(0).uniform(size=(8, 32, 32, 1)).astype(np.float32)
    stream = tf.data.Dataset.from_tensor_slices(
        (np.repeat(films, 2, axis=0), np.zeros(16, np.float32))).batch(16)
    assert pretrain.pretrain(net, stream, epochs=1, verbose=0)["accuracy"].iloc[0] >= 0.5


def test_pretraining_needs_pooled_features():
    with pytest.raises(ValueError, match="gap"):
        pretrain.contrastive_model(models.build_baseline_cnn(image_size=32))

