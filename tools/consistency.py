"""Experiment: teach the network that two framings of one film are the same film (issue 17).

Framing augmentation shows the network many framings, one at a time; nothing asks it to give
one film the same answer however it is framed. Here every training batch is augmented twice
with the shipped recipe (two independent draws of `generators.AUGMENTATIONS["framing"]`) and
the loss adds, to the cross-entropy of both views, the squared difference of their logits:

    loss = (BCE(y, p1) + BCE(y, p2)) / 2 + weight * mean((logit(p1) - logit(p2)) ** 2)

(a Pi-model / "consistency regularisation" objective; no labels needed for the second term).
Everything else is the full profile's recipe: five-block CNN at 112 px, oversampling, Adam,
15 epochs at most with early stopping on validation ROC AUC, the same patient split as
`tools/sweep.py`. Each seed's classifier is saved as an ordinary model folder and scored like
the sweep's models, so its rows can be compared with the sweep's:

    python tools/consistency.py --data ../shared/data/chest_xray --seeds 42 7 1

Writes ``runs/sweep/consistency-s<seed>/`` (model folder + ``stress.csv``) and prints the mean
and spread over seeds. An experiment, not a user's step: nothing in the package uses it.
"""

import argparse
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))
import sweep  # noqa: E402  (the sweep's split, work folder and settings)

from pneumo_helpers import (balance, evaluate, generators, inference, models,  # noqa: E402
                            shifts, train)
from pneumo_helpers.runs import ModelLayout  # noqa: E402


class TwoViews(keras.Model):
    """Trains ``classifier`` on pairs of views with the consistency objective above;
    validates it on plain batches. Save ``classifier``, not this wrapper."""

    def __init__(self, classifier: keras.Model, weight: float):
        super().__init__()
        self.classifier, self.weight = classifier, weight
        self.bce = keras.losses.BinaryCrossentropy()
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "consistency")}
        self.auc = keras.metrics.AUC(name="auc")  # validation only

    def call(self, x, training=False):
        return self.classifier(x, training=training)

    def train_step(self, data):
        (first, second), y = data
        with tf.GradientTape() as tape:
            p1 = self.classifier(first, training=True)
            p2 = self.classifier(second, training=True)
            logit = lambda p: tf.math.log(tf.clip_by_value(p, 1e-6, 1 - 1e-6)) \
                - tf.math.log(tf.clip_by_value(1 - p, 1e-6, 1 - 1e-6))  # noqa: E731
            consistency = tf.reduce_mean(tf.square(logit(p1) - logit(p2)))
            loss = (self.bce(y, p1) + self.bce(y, p2)) / 2 + self.weight * consistency
        variables = self.classifier.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.trackers["loss"].update_state(loss)
        self.trackers["consistency"].update_state(consistency)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        x, y = data
        self.auc.update_state(y, self.classifier(x, training=False))
        return {"auc": self.auc.result()}

    @property
    def metrics(self):
        return [*self.trackers.values(), self.auc]


def two_view_stream(rows: pd.DataFrame, indices: np.ndarray, *, seed: int, cache: Path):
    """Batches ``((view1, view2), y)`` of the framing recipe, two independent draws per film."""
    size, batch = sweep.BASE["image_size"], sweep.BASE["batch_size"]
    pixels = generators.load_images(rows, image_size=size, cache_dir=cache)
    labels = balance.encode_labels(rows["label"]).astype(np.float32)
    augment = generators.AUGMENTATIONS["framing"]

    def views(picked, batch_seed):
        images = pixels[picked]
        return (augment(images, batch_seed), augment(images, batch_seed + 1_000_003),
                labels[picked])

    def to_batch(picked, batch_seed):
        first, second, y = tf.numpy_function(views, [picked, batch_seed],
                                             (tf.float32, tf.float32, tf.float32))
        shape = (None, size, size, 1)
        return (tf.ensure_shape(first, shape), tf.ensure_shape(second, shape)), \
            tf.ensure_shape(y, (None,))

    ds = tf.data.Dataset.from_tensor_slices(indices).shuffle(len(indices), seed=seed)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds.batch(batch), seeds).map(to_batch, num_parallel_calls=2) \
        .prefetch(2)


def train_one(train_rows, val_rows, *, seed: int, weight: float, out: Path, cache: Path):
    train.set_seed(seed)
    chosen = balance.rebalance(train_rows["label"], sweep.BASE["strategy"], seed=seed)
    stream = two_view_stream(train_rows, chosen.indices, seed=seed, cache=cache)
    val_ds = generators.make_dataset(val_rows, image_size=sweep.BASE["image_size"],
                                     batch_size=sweep.BASE["batch_size"], cache_dir=cache)
    classifier = models.build_five_block_cnn(image_size=sweep.BASE["image_size"])
    wrapper = TwoViews(classifier, weight)
    wrapper.compile(optimizer=keras.optimizers.Adam(1e-3))
    wrapper.fit(stream, validation_data=val_ds, epochs=sweep.BASE["epochs"], verbose=2,
                callbacks=[keras.callbacks.EarlyStopping("val_auc", mode="max", patience=4,
                                                         restore_best_weights=True),
                           keras.callbacks.ReduceLROnPlateau("val_auc", mode="max",
                                                             factor=0.5, patience=2)])
    # The classifier alone, in the folder shape pneumo and the sweep read.
    layout = ModelLayout(out)
    out.mkdir(parents=True, exist_ok=True)
    classifier.save(layout.model)
    y_val = balance.encode_labels(val_rows["label"])
    p_val = evaluate.predict_proba(classifier, val_ds)
    threshold = evaluate.choose_threshold(y_val, p_val, rule=sweep.BASE["threshold_rule"])
    table = evaluate.evaluate(y_val, p_val, threshold=threshold, groups=val_rows["patient"],
                              n_boot=200, seed=seed)
    evaluate.to_report(table, threshold=threshold, rule=sweep.BASE["threshold_rule"],
                       split="val", model=out.name).write(layout.val_metrics)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7, 1])
    parser.add_argument("--weight", type=float, default=0.1,
                        help="weight of the consistency term (default 0.1)")
    parser.add_argument("--work", type=Path, default=sweep.WORK)
    args = parser.parse_args(argv)
    train_rows, val_rows = sweep.split(args.data, 42, args.work)
    cache = args.work / "cache"
    images = generators.load_images(val_rows, image_size=sweep.BASE["image_size"],
                                    cache_dir=cache)[..., 0]
    rows = []
    for seed in args.seeds:
        out = args.work / f"consistency-s{seed}"
        if not ModelLayout(out).val_metrics.is_file():
            train_one(train_rows, val_rows, seed=seed, weight=args.weight, out=out,
                      cache=cache)
        loaded = inference.load_model(out, runtime="keras")
        stress = shifts.stress_test(loaded.predict, images, val_rows["label"],
                                    threshold=loaded.threshold)
        stress.to_csv(out / "stress.csv", index=False)
        stress = stress.set_index("shift")
        rows.append(dict(seed=seed, val_auc=stress.loc["none", "roc_auc"],
                         val_spec=stress.loc["none", "specificity"],
                         crop15_spec=stress.loc["crop 15% per side", "specificity"],
                         crop20_spec=stress.loc["crop 20% per side", "specificity"],
                         clahe_spec=stress.loc["CLAHE", "specificity"],
                         sharpen_spec=stress.loc["sharpen (unsharp mask)", "specificity"]))
        print(pd.DataFrame(rows).tail(1).round(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).drop(columns="seed")
    print(table.agg(["mean", "std"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
