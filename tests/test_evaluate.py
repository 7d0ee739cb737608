"""Tests of pneumo_helpers.evaluate (its figures: tests/test_model_plots.py)."""

import json
import time

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pneumo_helpers import evaluate as ev


def scores(n: int, seed: int = 0, separation: float = 0.3):
    """Labels (n,) and noisy P(PNEUMONIA) (n,) of a decent classifier."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(separation * y + rng.random(n) * (1 - separation), 0, 1)
    return y, p


def row(df, metric):
    return df.set_index("metric").loc[metric]


# --------------------------------------------------------------------------- metrics

def test_hand_computed_small_case():
    # 4 NORMAL, 6 PNEUMONIA. At 0.5: TN=3, FP=1, FN=2, TP=4.
    y = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.7, 0.9, 0.8, 0.6, 0.55, 0.4, 0.2]
    df = ev.evaluate(y, p, threshold=0.5, n_boot=200)
    assert list(df.columns) == ["metric", "value", "ci_low", "ci_high", "n"]
    assert list(df["metric"]) == list(ev.METRICS)
    assert row(df, "accuracy")["value"] == pytest.approx(7 / 10)
    assert row(df, "specificity")["value"] == pytest.approx(3 / 4)
    assert row(df, "recall")["value"] == pytest.approx(4 / 6)
    assert row(df, "precision")["value"] == pytest.approx(4 / 5)
    assert row(df, "f1_pneumonia")["value"] == pytest.approx(8 / 11)
    assert row(df, "f1_normal")["value"] == pytest.approx(6 / 9)
    assert row(df, "brier")["value"] == pytest.approx(np.mean((np.array(p) - y) ** 2))
    assert (df["n"] == 10).all()
    # Threshold moves the calls: at 0.35, 0.4 becomes a TP and nothing else changes.
    assert row(ev.evaluate(y, p, threshold=0.35, n_boot=0), "recall")["value"] == \
        pytest.approx(5 / 6)


def test_class_names_are_accepted_and_bad_labels_named():
    names = np.array(["NORMAL", "PNEUMONIA", "PNEUMONIA"])
    df = ev.evaluate(names, [0.2, 0.9, 0.6], n_boot=0)
    assert row(df, "accuracy")["value"] == 1
    with pytest.raises(ValueError, match="y_true"):
        ev.evaluate([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="one probability per image"):
        ev.evaluate([0, 1], [0.1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.evaluate([0, 1], [0.1, 4.0])
    with pytest.raises(ValueError, match="one id per image"):
        ev.evaluate([0, 1], [0.1, 0.9], groups=["a"])


def test_ci_contains_point_estimate_and_narrows_with_more_data():
    widths = []
    for n in (100, 2000):
        y, p = scores(n)
        df = ev.evaluate(y, p, n_boot=500, seed=1)
        assert (df["ci_low"] <= df["value"] + 1e-12).all()
        assert (df["value"] <= df["ci_high"] + 1e-12).all()
        widths.append(df["ci_high"] - df["ci_low"])
    assert (widths[1] < widths[0]).all()


def test_perfect_classifier():
    y = np.array([0] * 20 + [1] * 30)
    p = np.r_[np.linspace(0, 0.4, 20), np.linspace(0.6, 1, 30)]
    df = ev.evaluate(y, p, n_boot=200)
    for metric in ("roc_auc", "pr_auc", "accuracy", "recall", "specificity"):
        assert row(df, metric)[["value", "ci_low", "ci_high"]].tolist() == \
            pytest.approx([1, 1, 1])


def test_bootstrap_by_patient_keeps_patients_whole():
    # Patient A: 50 images all right; patient B: 50 images all wrong. Drawing patients
    # can only give accuracy 0, 0.5 or 1; drawing images gives values near 0.5.
    y = np.ones(100, int)
    p = np.r_[np.full(50, 0.9), np.full(50, 0.1)]
    groups = np.repeat(["A", "B"], 50)
    by_patient = ev.bootstrap(y, p, groups=groups, n_boot=300)["accuracy"]
    assert set(np.round(by_patient, 6)) <= {0.0, 0.5, 1.0}
    assert {0.0, 1.0} <= set(np.round(by_patient, 6))
    by_image = ev.bootstrap(y, p, n_boot=300)["accuracy"]
    assert by_image.between(0.3, 0.7).all()
    df = ev.evaluate(y, p, groups=groups, n_boot=300)
    assert row(df, "accuracy")[["ci_low", "ci_high"]].tolist() == [0, 1]
    assert df.attrs["n_patients"] == 2


def test_every_bootstrap_resample_is_scikit_learns_metrics_of_a_resample():
    """Each row of the (vectorised) bootstrap equals scikit-learn's metrics, with
    sample_weight, of one way of drawing the images with replacement: all of them are
    enumerated here, on few images with tied scores (which ROC/PR curves must handle)."""
    import itertools

    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.2, 0.2, 0.6, 0.6, 0.9, 0.4])
    pred = (p >= 0.5).astype(int)

    def sklearn_metrics(w):
        return dict(
            accuracy=skm.accuracy_score(y, pred, sample_weight=w),
            brier=skm.brier_score_loss(y, p, sample_weight=w),
            roc_auc=skm.roc_auc_score(y, p, sample_weight=w),
            pr_auc=skm.average_precision_score(y, p, sample_weight=w),
            precision=skm.precision_score(y, pred, sample_weight=w, zero_division=np.nan),
            f1_normal=skm.f1_score(y, pred, pos_label=0, sample_weight=w,
                                   zero_division=np.nan))

    # The draws that hold both classes (where every metric is defined).
    draws = [w for w in (np.bincount(c, minlength=y.size).astype(float) for c in
                         itertools.combinations_with_replacement(range(y.size), y.size))
             if w[y == 0].sum() and w[y == 1].sum()]
    reference = pd.DataFrame([sklearn_metrics(w) for w in draws])
    boot = ev.bootstrap(y, p, n_boot=60, seed=1).dropna(subset=["roc_auc"])
    assert len(boot) > 40
    for _, resample in boot[list(reference.columns)].iterrows():
        close = np.isclose(reference.to_numpy(), resample.to_numpy(), atol=1e-9, equal_nan=True)
        assert close.all(axis=1).any(), f"no resample of the images gives {dict(resample)}"
    assert boot["roc_auc"].nunique() > 5  # the resamples differ


def test_bootstrap_is_seeded_and_fast():
    y, p = scores(1000, seed=4)
    groups = np.random.default_rng(0).integers(0, 400, 1000)
    start = time.perf_counter()
    first = ev.evaluate(y, p, groups=groups, n_boot=1000, seed=7)
    assert time.perf_counter() - start < 2.0
    pd.testing.assert_frame_equal(first, ev.evaluate(y, p, groups=groups, n_boot=1000, seed=7))
    assert not first.equals(ev.evaluate(y, p, groups=groups, n_boot=1000, seed=8))


def test_undefined_metric_is_nan_not_an_error():
    df = ev.evaluate([1, 1, 1], [0.9, 0.8, 0.2], n_boot=50)
    assert np.isnan(row(df, "roc_auc")["value"]) and np.isnan(row(df, "specificity")["value"])
    assert row(df, "recall")["value"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- thresholds

def test_threshold_rules_on_a_constructed_example():
    # 5 NORMAL, 10 PNEUMONIA; calls are "p >= threshold".
    y = np.array([0] * 5 + [1] * 10)
    p = np.array([.1, .2, .3, .4, .45] + [.42, .5, .55, .6, .65, .7, .75, .8, .85, .9])
    # At 0.5: TP 9, FP 0 -> sens 0.9, spec 1.0, J = 0.9, F1 = 18/19 = 0.947.
    # At 0.42: TP 10, FP 1 -> sens 1.0, spec 0.8, J = 0.8, F1 = 20/21 = 0.952.
    # Every other threshold is worse on both, so Youden and F1 disagree here.
    assert ev.choose_threshold(y, p, rule="youden") == pytest.approx(0.5)
    assert ev.choose_threshold(y, p, rule="f1") == pytest.approx(0.42)
    # Sensitivity >= 0.95 needs all ten PNEUMONIA: 0.42 (spec 0.8; 0.4 would give 0.6).
    assert ev.choose_threshold(y, p, rule="sens>=0.95") == pytest.approx(0.42)
    assert ev.choose_threshold(y, p, rule="sens >= 0.9") == pytest.approx(0.5)
    assert ev.choose_threshold(y, p, rule="0.5") == 0.5
    assert ev.choose_threshold(y, p, rule="0.3") == 0.3
    with pytest.raises(ValueError, match="unknown threshold rule"):
        ev.choose_threshold(y, p, rule="best")
    with pytest.raises(ValueError, match="both classes"):
        ev.choose_threshold(np.ones(3), [0.1, 0.5, 0.9])


def test_youden_threshold_of_a_perfect_classifier_separates_classes():
    y = np.array([0, 0, 1, 1])
    t = ev.choose_threshold(y, [0.1, 0.3, 0.7, 0.8])
    assert 0.3 < t <= 0.7


# --------------------------------------------------------------------------- reports, JSON

def test_confusion_and_report():
    cm = ev.confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    assert cm.loc["NORMAL", "NORMAL"] == 1 and cm.loc["NORMAL", "PNEUMONIA"] == 1
    assert cm.loc["PNEUMONIA", "PNEUMONIA"] == 2 and cm.loc["PNEUMONIA", "NORMAL"] == 1
    text = ev.report([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    assert "NORMAL" in text and "PNEUMONIA" in text and "0.667" in text


def test_metrics_report_round_trip(tmp_path):
    from pneumo_helpers.metrics_report import MetricsReport

    y, p = scores(200)
    df = ev.evaluate(y, p, threshold=0.4, n_boot=100)
    path = tmp_path / "out" / "test.json"
    ev.to_report(df, rule="youden", model="five_block", split="test",
                 model_sha256="ab" * 32).write(path)
    back = MetricsReport.read(path)
    assert back.threshold == 0.4 and back.rule == "youden" and back.n == 200
    assert back.model == "five_block" and back.split == "test"
    assert back.provenance == {"model_sha256": "ab" * 32}
    assert back["roc_auc"].value == pytest.approx(row(df, "roc_auc")["value"])
    assert back["recall"].ci_low <= back["recall"].value <= back["recall"].ci_high
    # Metrics and metadata never share a namespace: every metric sits under "metrics".
    stored = json.loads(path.read_text())
    assert set(stored["metrics"]) == set(df["metric"]) and "roc_auc" not in stored
    # NaN is written as null, so the file stays valid JSON for any reader, and reads back NaN.
    nan_df = ev.evaluate([1, 1], [0.9, 0.8], n_boot=0)
    ev.to_report(nan_df).write(path)
    assert json.loads(path.read_text())["metrics"]["roc_auc"]["value"] is None
    assert np.isnan(MetricsReport.read(path)["roc_auc"].value)
    with pytest.raises(FileNotFoundError, match="pneumo evaluate"):
        MetricsReport.read(tmp_path / "missing.json")


def test_predict_proba_with_arrays_and_datasets():
    import tensorflow as tf

    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).random((10, 8, 8)).astype("float32")
    p = ev.predict_proba(model, x, batch_size=4)
    assert p.shape == (10,) and ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(ev.predict_proba(model, x[..., None]), p, atol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices((x[..., None], np.zeros(10))).batch(3)
    np.testing.assert_allclose(ev.predict_proba(model, dataset), p, atol=1e-6)
    np.testing.assert_array_equal(ev.pneumonia_column([[0.3, 0.7], [0.9, 0.1]]), [0.7, 0.1])
    with pytest.raises(ValueError, match="expected"):
        ev.pneumonia_column(np.zeros((2, 3)))


def test_calibration_bins_and_the_sentence_that_quotes_them():
    p = np.r_[np.full(20, 0.45), np.full(30, 0.95), np.full(5, 0.05)]
    y = np.r_[np.ones(16), np.zeros(4), np.ones(29), np.zeros(1), np.zeros(5)]
    bins = ev.calibration_bins(y, p)
    assert list(bins["films"]) == [5, 20, 30]
    middle = bins.iloc[1]
    assert (middle["low"], middle["high"]) == pytest.approx((0.4, 0.5))
    assert middle["observed"] == pytest.approx(0.8) and middle["predicted"] == pytest.approx(0.45)
    sentence = ev.calibration_sentence(bins)
    assert "under-confident between P = 0.4 and 0.5 (20 films" in sentence
    assert "0.9" not in sentence.split("Elsewhere")[0]  # the top bin is on the diagonal
    calibrated = ev.calibration_bins(np.r_[np.zeros(50), np.ones(50)],
                                           np.r_[np.full(50, 0.02), np.full(50, 0.98)])
    assert ev.calibration_sentence(calibrated).startswith("Every bin")
