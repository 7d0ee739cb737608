"""Tests of pneumo_helpers.model_plots: the figures of a model's outputs."""

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pneumo_helpers import evaluate as ev
from pneumo_helpers import model_plots
from pneumo_helpers.labels import CLASSES
from pneumo_helpers.plots import CLASS_COLORS

from figure_checks import assert_saved_png, hex_color, texts

THRESHOLD = 0.5


@pytest.fixture
def scored():
    """8 NORMAL and 8 PNEUMONIA films' P(PNEUMONIA): at 0.5, 3 false positives (0.9, 0.7,
    0.6) and 2 false negatives (0.1, 0.35)."""
    y = np.r_[np.zeros(8, int), np.ones(8, int)]
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.9,
                  0.1, 0.35, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95])
    return y, p


def marker_point(ax):
    """(x, y) of the one line drawn as a lone marker: the operating point."""
    (point,) = [line for line in ax.lines if line.get_marker() == "o"]
    return float(point.get_xdata()[0]), float(point.get_ydata()[0])


def test_confusion_matrix_plot_shows_counts_and_row_rates(scored, tmp_path):
    y, p = scored
    fig = model_plots.confusion_matrix_plot(ev.confusion(y, p >= THRESHOLD),
                                            path=tmp_path / "cm.png")
    counts, rates = fig.axes
    assert [t.get_text() for t in counts.texts] == ["5", "3", "2", "6"]
    assert [t.get_text() for t in rates.texts] == ["62.5%", "37.5%", "25.0%", "75.0%"]
    assert (counts.get_title(), rates.get_xlabel(), rates.get_ylabel()) == (
        "counts", "predicted", "true")
    assert_saved_png(fig, tmp_path / "cm.png")


def test_roc_pr_curves_mark_the_operating_point_of_the_threshold(scored, tmp_path):
    y, p = scored
    fig = model_plots.roc_pr_curves(y, p, threshold=THRESHOLD, title="val",
                                    path=tmp_path / "roc.png")
    roc, pr = fig.axes
    assert (roc.get_title(), pr.get_title(), fig.get_suptitle()) == (
        "ROC", "Precision-recall", "val")
    # 3 of 8 NORMAL and 6 of 8 PNEUMONIA are called PNEUMONIA; 6 of those 9 calls are right.
    assert marker_point(roc) == pytest.approx((3 / 8, 6 / 8))
    assert marker_point(pr) == pytest.approx((6 / 8, 6 / 9))
    assert f"AUC = {skm.roc_auc_score(y, p):.3f}" in texts(roc.get_legend())
    assert "threshold 0.50: prec 0.67" in texts(pr.get_legend())
    assert_saved_png(fig, tmp_path / "roc.png")


def test_reliability_diagram_quotes_the_brier_score_and_counts_every_film(scored, tmp_path):
    y, p = scored
    fig = model_plots.reliability_diagram(y, p, n_bins=5, path=tmp_path / "rel.png")
    top, bottom = fig.axes
    assert texts(top.get_legend()) == [
        "perfectly calibrated", f"model (Brier {np.mean((p - y) ** 2):.3f})"]
    heights = [patch.get_height() for patch in bottom.patches]
    assert len(heights) == 5 and sum(heights) == len(y)
    assert_saved_png(fig, tmp_path / "rel.png")


def test_probability_histogram_draws_the_threshold_and_the_class_colours(scored, tmp_path):
    y, p = scored
    fig = model_plots.probability_histogram(y, p, threshold=0.42, bins=10,
                                            path=tmp_path / "hist.png")
    ax = fig.axes[0]
    (line,) = ax.lines
    assert list(line.get_xdata()) == [0.42, 0.42]
    legend = ax.get_legend()
    assert texts(legend) == ["true NORMAL (n=8)", "true PNEUMONIA (n=8)", "threshold 0.42"]
    assert [hex_color(h.get_facecolor()) for h in legend.legend_handles[:2]] == [
        CLASS_COLORS[name].lower() for name in CLASSES]
    assert_saved_png(fig, tmp_path / "hist.png")


def test_error_gallery_orders_mistakes_by_confidence(scored, tmp_path):
    y, p = scored
    fig = model_plots.error_gallery(np.zeros((len(y), 8, 8), np.uint8), y, p,
                                    threshold=THRESHOLD, n=4, path=tmp_path / "err.png")
    rows = [fig.axes[:4], fig.axes[4:]]
    assert [ax.get_title() for ax in rows[0]] == ["P = 0.900", "P = 0.700", "P = 0.600", ""]
    assert [ax.get_title() for ax in rows[1]] == ["P = 0.100", "P = 0.350", "", ""]
    # Each film is framed in its true class's colour.
    assert hex_color(rows[0][0].spines["top"].get_edgecolor()) == CLASS_COLORS["NORMAL"].lower()
    assert hex_color(rows[1][0].spines["top"].get_edgecolor()) == \
        CLASS_COLORS["PNEUMONIA"].lower()
    assert "threshold 0.500" in fig.get_suptitle()
    assert texts(fig.legends[0]) == ["frame: true NORMAL", "frame: true PNEUMONIA"]
    assert_saved_png(fig, tmp_path / "err.png")


def test_error_gallery_says_none_when_a_row_has_no_mistakes(tmp_path):
    fig = model_plots.error_gallery(np.zeros((2, 8, 8), np.uint8), [0, 1], [0.1, 0.9],
                                    threshold=THRESHOLD, n=3)
    assert [[t.get_text() for t in ax.texts] for ax in (fig.axes[0], fig.axes[3])] == [
        ["none"], ["none"]]


@pytest.fixture
def comparison():
    return pd.DataFrame({"model": ["a", "a", "b", "b"],
                         "metric": ["roc_auc", "recall"] * 2,
                         "value": [0.9, 0.8, 0.7, 0.6],
                         "ci_low": [0.85, 0.7, 0.6, 0.5],
                         "ci_high": [0.95, 0.9, 0.8, 0.7]})


def test_model_comparison_one_panel_per_metric_one_row_per_model(comparison, tmp_path):
    fig = model_plots.model_comparison(comparison, metric=["roc_auc", "recall"],
                                       path=tmp_path / "cmp.png")
    assert [ax.get_title() for ax in fig.axes] == ["ROC AUC", "Recall (sensitivity)"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in fig.axes[1].texts] == ["0.800", "0.600"]
    assert_saved_png(fig, tmp_path / "cmp.png")


def test_model_comparison_names_what_is_missing(comparison):
    with pytest.raises(ValueError, match="not in df"):
        model_plots.model_comparison(comparison, metric="kappa")
    with pytest.raises(ValueError, match="ci_high"):
        model_plots.model_comparison(comparison.drop(columns="ci_high"))


def test_explanation_panel(tmp_path):
    from pneumo_helpers.lime_explain import Explanation

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 24), np.uint8)
    segments = np.repeat(np.arange(4), 144).reshape(24, 24)
    weights = np.array([0.3, -0.2, 0.05, -0.01])
    e = Explanation(image=image, segments=segments, weights=weights, heatmap=weights[segments],
                    probability=0.83, label="PNEUMONIA", score=0.9, intercept=0.1)
    heat = rng.random((24, 24))
    fig = model_plots.explanation_panel([(image, e, heat, "false positive"),
                                         (image, None, None, "no explainers")],
                                        path=tmp_path / "panel.png")
    assert fig.axes[0].get_title().endswith("P(PNEUMONIA) = 0.830")
    # Headings take the true class's colour (a false positive is a NORMAL film), as the
    # error gallery's frames do, whatever the model called it.
    assert hex_color(fig.axes[0].title.get_color()) == CLASS_COLORS["NORMAL"].lower()
    assert texts(fig.legends[0]) == ["heading: true NORMAL", "heading: true PNEUMONIA"]
    assert len(fig.axes) == 6
    assert_saved_png(fig, tmp_path / "panel.png")
    with pytest.raises(ValueError, match="rows is empty"):
        model_plots.explanation_panel([])


def test_training_curves_one_panel_per_metric_validation_dashed(tmp_path):
    def history(epochs):
        values = np.linspace(0.5, 0.9, epochs)
        return pd.DataFrame({f"{prefix}{metric}": values for prefix in ("", "val_")
                             for metric in ("loss", "accuracy", "auc")})

    fig = model_plots.training_curves({"cnn": history(3), "five_block-oversample": history(5)},
                                      path=tmp_path / "curves.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "ROC AUC"]
    assert texts(fig.legends[0]) == ["cnn", "five-block CNN, oversampling"]
    lines = fig.axes[2].lines
    assert [line.get_linestyle() for line in lines] == ["-", "--", "-", "--"]
    assert list(lines[2].get_xdata()) == [1, 2, 3, 4, 5]  # epochs counted from 1
    assert_saved_png(fig, tmp_path / "curves.png")


def test_crop_curve_plots_each_score_against_the_percent_cropped(tmp_path):
    curve = pd.DataFrame({"crop": [0.0, 0.05, 0.1], "roc_auc": [0.95, 0.9, 0.8],
                          "recall": [0.9, 0.85, 0.7], "specificity": [0.8, 0.75, 0.6]})
    fig = model_plots.crop_curve(curve, threshold=0.42, path=tmp_path / "crop.png")
    ax = fig.axes[0]
    assert texts(ax.get_legend()) == ["ROC AUC", "sensitivity", "specificity"]
    assert [list(line.get_ydata()) for line in ax.lines] == [
        list(curve[c]) for c in ("roc_auc", "recall", "specificity")]
    assert list(ax.get_xticks()) == pytest.approx([0, 5, 10])
    assert "threshold 0.420" in ax.get_ylabel()
    assert_saved_png(fig, tmp_path / "crop.png")
