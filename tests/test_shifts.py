"""Acquisition-shift stress tests: each shift is deterministic and does what its name says, and
stress_test measures at the fixed validation threshold."""

import numpy as np
import pytest

from pneumo_helpers import evaluate, shifts


def _films(n: int = 40, size: int = 32, seed: int = 0):
    """Smooth gray 'films'; the PNEUMONIA half is brighter overall (a stand-in for opacity)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    base = np.where(y, rng.uniform(110, 150, n), rng.uniform(80, 105, n))[:, None, None]
    texture = rng.normal(0, 12, (n, size, size))
    return np.clip(base + texture, 0, 255).astype(np.uint8), y


def _mean_brightness(images):
    return images.reshape(len(images), -1).mean(1) / 255.0


@pytest.mark.parametrize("name", list(shifts.SHIFTS))
def test_each_shift_is_deterministic_keeps_shape_and_changes_pixels(name):
    images, _ = _films()
    out = shifts.apply_shift(images, name)
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert not np.array_equal(out, images)
    assert np.array_equal(out, shifts.apply_shift(images, name))
    # (N, S, S, 1) in, same shape out; the input is never modified.
    before = images.copy()
    assert shifts.apply_shift(images[..., None], name).shape == images[..., None].shape
    assert np.array_equal(images, before)
    # Any model size: OpenCV takes a last axis above 128 for too many channels.
    large, _ = _films(n=2, size=160)
    assert shifts.apply_shift(large, name).shape == large.shape


def test_shifts_do_what_their_names_say():
    images, _ = _films()
    brighter = shifts.apply_shift(images, "gamma 0.7 (brighter)")
    darker = shifts.apply_shift(images, "gamma 1.4 (darker)")
    assert darker.mean() < images.mean() < brighter.mean()
    roughness = lambda x: np.abs(np.diff(x.astype(float), axis=1)).mean()  # noqa: E731
    assert roughness(shifts.apply_shift(images, "blur (sigma 1 px)")) < 0.7 * roughness(images)
    assert roughness(shifts.apply_shift(images, "sharpen (unsharp mask)")) > roughness(images)
    assert np.array_equal(shifts.apply_shift(images, "none"), images)


def test_stress_test_keeps_the_threshold_and_reports_the_shift():
    images, y = _films()
    threshold = evaluate.choose_threshold(y, _mean_brightness(images), rule="youden")
    table = shifts.stress_test(_mean_brightness, images, y, threshold=threshold,
                               shifts=["gamma 0.7 (brighter)", "gamma 1.4 (darker)"])
    assert list(table["shift"]) == ["none", "gamma 0.7 (brighter)", "gamma 1.4 (darker)"]
    assert set(table.columns) == {"shift", "roc_auc", "brier", "recall", "specificity",
                                  "accuracy", "mean_p_normal"}
    none, brighter, darker = table.to_dict("records")
    # This "model" reads brightness as disease: a brighter exposure costs specificity at the
    # unchanged threshold, a darker one costs sensitivity, while ranking (ROC AUC) barely moves.
    assert none["specificity"] == 1.0 and none["recall"] == 1.0
    assert brighter["specificity"] < 0.5 and brighter["mean_p_normal"] > none["mean_p_normal"]
    assert darker["recall"] < 0.5
    assert brighter["roc_auc"] > 0.95
    # Class names work as labels, as in a manifest.
    named = shifts.stress_test(_mean_brightness, images, np.where(y, "PNEUMONIA", "NORMAL"),
                               threshold=threshold, shifts=["CLAHE"])
    assert len(named) == 2


def test_the_summary_quotes_named_shifts_and_the_worst_specificity():
    images, y = _films()
    threshold = evaluate.choose_threshold(y, _mean_brightness(images), rule="youden")
    table = shifts.stress_test(_mean_brightness, images, y, threshold=threshold)
    row = shifts.summarize(table)
    assert set(row) == {*shifts.SUMMARY, "worst_spec"}
    by_shift = table.set_index("shift")
    assert row["crop15_spec"] == by_shift.loc["crop 15% per side", "specificity"]
    assert row["val_auc"] == by_shift.loc["none", "roc_auc"]
    assert row["worst_spec"] == table["specificity"].min() < row["val_spec"]
    # Every summarised shift is one stress_test runs.
    assert {shift for shift, _, _ in shifts.SUMMARY.values()} <= {"none", *shifts.SHIFTS}


def test_bad_input_is_named():
    images, y = _films()
    with pytest.raises(ValueError, match="unknown shift 'sepia'"):
        shifts.apply_shift(images, "sepia")
    with pytest.raises(ValueError, match="uint8 gray"):
        shifts.apply_shift(images.astype(np.float32), "CLAHE")
    with pytest.raises(ValueError, match="40 images but 3 labels"):
        shifts.stress_test(_mean_brightness, images, y[:3], threshold=0.5)


def test_framing_shifts_move_the_film_as_named():
    image = np.zeros((1, 100, 100), np.uint8)
    image[0, 40:60, 40:60] = 255  # a bright square in the middle
    cropped = shifts.apply_shift(image, "crop 20% per side")[0]
    assert (cropped > 128).sum() > 2 * (image[0] > 128).sum()  # magnified
    padded = shifts.apply_shift(image, "zoom out, pad 10% per side")[0]
    assert (padded > 128).sum() < (image[0] > 128).sum() and padded[:10].max() == 0
    moved = shifts.apply_shift(image, "shift right 10%")[0]
    assert moved[:, :10].max() == 0 and moved[50, 55:65].min() > 200


def test_crop_curve_is_ordered_by_crop_and_starts_unshifted():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (20, 32, 32), np.uint8)
    y = np.array([0, 1] * 10)
    stress = shifts.stress_test(lambda x: x.reshape(len(x), -1).mean(1) / 255, images, y,
                                threshold=0.5)
    curve = shifts.crop_curve(stress)
    assert curve["crop"].tolist() == [0.0, 0.05, 0.10, 0.15, 0.20]
    assert curve.loc[0, "roc_auc"] == stress.loc[0, "roc_auc"]
