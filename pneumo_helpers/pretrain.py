"""Self-supervised pretraining: the network learns that two framings of a film are one film
before it sees a label.

Augmentation shows the classifier many framings of each film, and the consistency term
(:class:`pneumo_helpers.models.ViewConsistency`) asks for the same answer on two of them.
Contrastive pretraining (SimCLR, Chen et al. 2020) goes further back: before any label, the
encoder (the classifier up to its global-average-pooling features) is trained to pick, among
every other view in the batch, the other view of the same film. Features that change with the
framing, the exposure curve or the sharpness cannot do that, so the encoder starts its
supervised training from features that ignore them by construction.

    stream of two views per film -> encoder -> projection head -> cosine similarities of every
    pair of rows / temperature -> cross-entropy towards each row's partner (NT-Xent)

The projection head is thrown away afterwards; the encoder's weights stay in the classifier,
which then trains as usual (:func:`pneumo_helpers.experiment.run_candidate` with
``pretrain_epochs``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

from .train import EpochTimer

__all__ = ["PairSimilarity", "ENCODER_OUTPUT", "contrastive_model", "pretrain", "cached"]

#: The layer whose output is the encoder's feature vector in the five-block CNN.
ENCODER_OUTPUT = "gap"


@keras.saving.register_keras_serializable(package="pneumo")
class PairSimilarity(layers.Layer):
    """Scaled cosine similarity of every row of a batch with every other row.

    Rows ``2i`` and ``2i + 1`` are two views of one film (``generators.make_dataset(views=2)``);
    row ``r``'s partner is ``r ^ 1``. A row's similarity with itself is masked out, so a
    softmax over a row of the output is a choice among the ``B - 1`` other views, and
    cross-entropy towards the partner is SimCLR's NT-Xent loss.

    Args:
        temperature: divisor of the cosine similarities (lower: sharper; SimCLR uses 0.1-0.5).

    Input ``float (B, D)`` embeddings; output ``float32 (B, B)`` logits.
    """

    def __init__(self, temperature: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def call(self, embeddings):
        z = ops.cast(embeddings, "float32")
        z = z / ops.maximum(ops.norm(z, axis=-1, keepdims=True), 1e-6)
        logits = ops.matmul(z, ops.transpose(z)) / self.temperature
        # A large negative, not -inf: a softmax row stays finite.
        return logits - 1e9 * ops.eye(ops.shape(z)[0], dtype="float32")

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def _partners(x, y):
    """Each row's target: the index of its other view (``2i`` <-> ``2i + 1``)."""
    rows = tf.range(tf.shape(x)[0])
    return x, rows + 1 - 2 * (rows % 2)


def contrastive_model(model: keras.Model, *, projection_dim: int = 64, hidden: int = 128,
                      temperature: float = 0.2, learning_rate: float = 1e-3) -> keras.Model:
    """The pretraining model: ``model``'s encoder, a projection head and :class:`PairSimilarity`.

    The encoder's layers are ``model``'s own (not copies), so training this model trains them.

    Args:
        model: a classifier with a layer named :data:`ENCODER_OUTPUT` (the five-block CNN).
        projection_dim, hidden: widths of the two-layer projection head.
        temperature: see :class:`PairSimilarity`.
        learning_rate: Adam learning rate.

    Returns:
        A compiled model: ``float32 (B, H, W, C)`` (``B`` even, pairs on adjacent rows) ->
        logits ``(B, B)``; loss NT-Xent; metric ``accuracy``: the share of views whose
        partner is the most similar row.
    """
    try:
        features = model.get_layer(ENCODER_OUTPUT).output
    except ValueError:
        raise ValueError(f"{model.name} has no layer named {ENCODER_OUTPUT!r}: contrastive "
                         "pretraining needs the five-block CNN's pooled features") from None
    z = layers.Dense(hidden, activation="relu", name="projection_1")(features)
    z = layers.Dense(projection_dim, name="projection_2")(z)
    logits = PairSimilarity(temperature, name="pair_similarity")(z)
    net = keras.Model(model.inputs, logits, name=f"{model.name}_contrastive")
    net.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return net


def pretrain(model: keras.Model, dataset, *, epochs: int = 30, temperature: float = 0.2,
             learning_rate: float = 1e-3, verbose="auto") -> pd.DataFrame:
    """Train ``model``'s encoder contrastively on ``dataset``, in place; labels are not used.

    Args:
        model: the classifier to pretrain (see :func:`contrastive_model`); its head (after
            :data:`ENCODER_OUTPUT`) is left as built.
        dataset: batches ``(x, y)`` from ``generators.make_dataset(..., training=True,
            views=2)``; ``y`` is ignored.
        epochs: passes over ``dataset``.
        temperature, learning_rate: see :func:`contrastive_model`.
        verbose: passed to ``fit``.

    Returns:
        One row per epoch: ``epoch``, ``loss`` (NT-Xent, nats; ``log(B - 1)`` at chance),
        ``accuracy`` (partner found), ``epoch_seconds``.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    net = contrastive_model(model, temperature=temperature, learning_rate=learning_rate)
    fit = net.fit(dataset.map(_partners), epochs=epochs, callbacks=[EpochTimer()],
                  verbose=verbose, shuffle=False)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(len(history)))
    return history


def cached(cache_dir, recipe: dict) -> tuple[Path, Path]:
    """Where a pretraining is kept for reuse: ``(weights, history)`` in ``cache_dir``.

    A pretraining depends on the training films, the augmentation, the architecture, the
    seed and its epochs, but not on the rebalancing or the supervised settings, so the
    candidates notebook 04 compares share one. ``recipe``: every setting it depends on
    (JSON-serialisable); any difference gives other files.
    """
    text = json.dumps({**recipe, "keras": keras.__version__}, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = Path(cache_dir)
    return folder / f"pretrained-{key}.weights.h5", folder / f"pretrained-{key}.csv"
