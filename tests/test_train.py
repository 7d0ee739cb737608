"""Tests of pneumo_helpers.train: run folder, early stopping, a real kill-and-resume, model card."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pneumo_helpers import models, train  # noqa: E402

SMALL = dict(image_size=32, filters=(8, 8, 16, 16, 16), dense_units=8)


def tiny_data(n=32, size=32, seed=0):
    """A batched tf.data.Dataset of random images; label-1 images have a bright square."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.6, (n, size, size, 1)).astype("float32")
    y = np.tile([0.0, 1.0], n // 2).astype("float32")
    x[y == 1, 8:16, 8:16] = 1.0
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def test_set_seed_makes_initialisation_repeat():
    train.set_seed(3)
    a = models.build_five_block_cnn(**SMALL).get_weights()
    train.set_seed(3)
    b = models.build_five_block_cnn(**SMALL).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_run_folder_is_complete_and_loads_back(tmp_path):
    train.set_seed(0)
    model = models.build_five_block_cnn(**SMALL)
    ds = tiny_data()
    history = train.train_model(model, ds, ds, out_dir=tmp_path, epochs=2, verbose=0,
                                class_weight={0: 1.0, 1: 2.0},
                                config={"seed": 0, "image_size": 32})
    assert list(history["epoch"]) == [0, 1]
    assert {"loss", "val_loss", "val_auc", "val_recall", "learning_rate",
            "epoch_seconds"} <= set(history.columns)
    for name in ("model.keras", "history.csv", "config.json"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "backup").exists()  # deleted after a finished training
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["seed"] == 0 and config["image_size"] == 32
    assert {"python", "tensorflow", "keras", "numpy"} <= set(config["versions"])
    assert config["versions"]["keras"] == keras.__version__
    assert config["epochs_run"] == 2 and len(config["seconds_per_epoch"]) == 2
    assert config["class_weight"] == {"0": 1.0, "1": 2.0}
    assert len(pd.read_csv(tmp_path / "history.csv")) == 2

    loaded = keras.models.load_model(tmp_path / "model.keras",
                                     custom_objects=models.CUSTOM_OBJECTS)
    x = next(iter(ds))[0]  # model.keras holds the weights train_model left in the model
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)

    # A fresh run in the same folder replaces the earlier history instead of appending to it.
    again = train.train_model(model, ds, ds, out_dir=tmp_path, epochs=1, verbose=0)
    assert list(again["epoch"]) == [0]
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1


class Sabotage(keras.callbacks.Callback):
    """From epoch ``start`` on, push the output bias so every prediction is ~1 (val_loss soars)."""

    def __init__(self, start):
        super().__init__()
        self.start = start

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.start:
            layer = self.model.get_layer("pneumonia")
            kernel, _ = layer.get_weights()
            layer.set_weights([kernel, np.array([20.0], dtype="float32")])


def test_early_stopping_stops_and_keeps_the_best_epoch(tmp_path):
    train.set_seed(0)
    model = models.build_five_block_cnn(**SMALL)
    ds = tiny_data()
    history = train.train_model(model, ds, ds, out_dir=tmp_path, epochs=10, patience=1,
                                monitor="val_loss", mode="min", verbose=0,
                                callbacks=[Sabotage(start=1)])
    assert list(history["epoch"]) == [0, 1]  # stopped after 1 epoch without progress
    best = history["val_loss"].iloc[0]
    assert history["val_loss"].iloc[1] > 2 * best
    assert model.evaluate(ds, verbose=0, return_dict=True)["loss"] == pytest.approx(best,
                                                                                   rel=1e-4)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["stopped_early"] and config["best_epoch"] == 0


RESUME_SCRIPT = """
import os, sys, time
from pathlib import Path
import numpy as np
import keras
import tensorflow as tf
from pneumo_helpers import models, train

out, log = Path(sys.argv[1]), Path(sys.argv[2])


class Mark(keras.callbacks.Callback):
    # Runs after train_model's own callbacks, so "end N" means epoch N is backed up.
    def _write(self, text):
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {text}\\n")

    def on_epoch_begin(self, epoch, logs=None):
        self._write(f"begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self._write(f"end {epoch}")
        time.sleep(0.5)  # a window in which the test kills this process


train.set_seed(0)
model = models.build_five_block_cnn(image_size=32, filters=(8, 8, 8, 8, 8), dense_units=8)
rng = np.random.default_rng(0)
x = rng.random((32, 32, 32, 1), dtype=np.float32)
y = np.tile([0.0, 1.0], 16).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
history = train.train_model(model, ds, ds, out_dir=out, epochs=6, patience=10, verbose=0,
                            callbacks=[Mark()])
print("DONE", list(history["epoch"]))
"""


def read_log(path):
    """[(pid, event, epoch)] from the marker file of the resume script."""
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(pid), event, int(epoch)) for pid, event, epoch in rows]


def test_killed_training_resumes_from_last_finished_epoch(tmp_path):
    script, out, log = tmp_path / "job.py", tmp_path / "run", tmp_path / "epochs.log"
    script.write_text(textwrap.dedent(RESUME_SCRIPT))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(script), str(out), str(log)]

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not any(e == "end" and n + 1 >= 2 for _, e, n in read_log(log)):
            assert first.poll() is None, "training script ended before it could be killed"
            assert time.monotonic() < deadline, "no second epoch within 120 s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = max(n for _, e, n in read_log(log) if e == "end")
    assert killed_at < 5 and (out / "backup").is_dir()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "DONE [0, 1, 2, 3, 4, 5]" in second.stdout

    second_run = [n for pid, e, n in read_log(log) if pid != first.pid and e == "begin"]
    # Resumed after the last backed-up epoch (+1 if the kill fell between backup and marker).
    assert second_run[0] >= 2 and killed_at + 1 <= second_run[0] <= killed_at + 2
    assert second_run == list(range(second_run[0], 6))
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == list(range(6))
    config = json.loads((out / "config.json").read_text())
    assert config["epochs_run"] == 6 and config["resumed_from_epoch"] == second_run[0]
    assert not (out / "backup").exists()


def test_train_model_rejects_bad_arguments(tmp_path):
    model = models.build_five_block_cnn(**SMALL)
    with pytest.raises(ValueError, match="mode"):
        train.train_model(model, tiny_data(), tiny_data(), out_dir=tmp_path, mode="best")
    with pytest.raises(ValueError, match="val_ds"):
        train.train_model(model, tiny_data(), None, out_dir=tmp_path)


def test_model_card_with_confidence_intervals(tmp_path):
    from pneumo_helpers.metrics_report import Estimate, MetricsReport

    metrics = MetricsReport(metrics={"auc": Estimate(0.93, 0.9, 0.95),
                                     "accuracy": Estimate(0.88)},
                            threshold=0.4123, rule="youden", split="val")
    path = train.save_model_card(tmp_path, config={"image_size": 128, "epochs": 12},
                                 val_metrics=metrics, data_description="512 sample images.",
                                 model=models.build_baseline_cnn(image_size=32),
                                 sections={"Robustness": "| shift | auc |\n|---|---|\n| blur | 0.8 |"})
    text = path.read_text()
    assert "Not for clinical use" in text
    assert "| auc | 0.93 | 0.9 – 0.95 |" in text
    assert "| accuracy | 0.88 |  |" in text
    assert "P(PNEUMONIA) >= 0.412, chosen on validation (youden)" in text
    assert "| image_size | 128 |" in text and "512 sample images." in text
    assert "baseline_cnn" in text
    # Extra sections come after the metrics, before the intended use.
    assert text.index("## Validation metrics") < text.index("## Robustness\n\n| shift | auc |") \
        < text.index("## Intended use")
    assert not (tmp_path / "val_metrics.json").exists()  # the card writes only the card
    with pytest.raises(TypeError, match="MetricsReport"):
        train.save_model_card(tmp_path, config={}, val_metrics={"auc": 0.9}, data_description="d")
