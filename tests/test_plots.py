"""Tests of pneumo_helpers.plots: the shared look, saving, and the figures of the data."""

import colorsys

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pneumo_helpers import plots
from pneumo_helpers.labels import CLASSES

from figure_checks import PNG_SIGNATURE, assert_saved_png, hex_color, texts


def hue(color) -> float:
    return colorsys.rgb_to_hls(*matplotlib.colors.to_rgb(color))[0]


def films(n, seed=0, size=16):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_class_colours_follow_the_classes_and_differ():
    assert list(plots.CLASS_COLORS) == list(CLASSES)
    assert len(set(plots.CLASS_COLORS.values())) == len(CLASSES)


def test_style_sets_the_whitegrid_theme():
    with matplotlib.rc_context():  # style() changes global state; keep it in here
        matplotlib.rcParams["axes.grid"] = False
        plots.style()
        assert matplotlib.rcParams["axes.grid"] is True
        assert hex_color(matplotlib.rcParams["axes.facecolor"]) == "#ffffff"


def test_save_writes_a_png_and_creates_folders(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "figures" / "line.png"
    assert plots.save(fig, path) is fig
    assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]  # no temporary left
    assert plots.save(fig, None) is fig
    plt.close(fig)


def test_show_film_scales_uint8_and_keeps_floats():
    fig, (left, right) = plt.subplots(1, 2)
    plots.show_film(left, np.full((4, 4, 1), 255, np.uint8))
    plots.show_film(right, np.full((4, 4), 0.25, np.float32))
    assert left.images[0].get_array().shape == (4, 4)
    assert float(left.images[0].get_array().max()) == pytest.approx(1.0)
    assert float(right.images[0].get_array().max()) == pytest.approx(0.25)
    assert left.images[0].get_cmap().name == "gray"
    plt.close(fig)


def test_class_counts_labels_each_bar_in_its_class_colour(tmp_path):
    table = pd.DataFrame({"NORMAL": [10, 3], "PNEUMONIA": [20, 5]}, index=["train", "test"])
    fig = plots.class_counts(table, title="counts", path=tmp_path / "counts.png")
    ax = fig.axes[0]
    assert ax.get_title() == "counts"
    assert [list(bars.datavalues) for bars in ax.containers] == [[10, 3], [20, 5]]
    assert [t.get_text() for t in ax.texts] == ["10", "3", "20", "5"]  # the bar labels
    assert texts(ax.get_legend()) == list(CLASSES)
    # seaborn desaturates bars, so the class colour's hue is what must match.
    assert [hue(bars.patches[0].get_facecolor()) for bars in ax.containers] == pytest.approx(
        [hue(plots.CLASS_COLORS[name]) for name in CLASSES], abs=0.01)
    assert_saved_png(fig, tmp_path / "counts.png")


def test_image_grid_one_title_per_image(tmp_path):
    fig = plots.image_grid(list(films(5)), list("abcde"), ncols=3, title="grid",
                           path=tmp_path / "grid.png")
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d", "e", ""]
    assert [len(ax.images) for ax in fig.axes] == [1, 1, 1, 1, 1, 0]
    assert fig.get_suptitle() == "grid"
    assert_saved_png(fig, tmp_path / "grid.png")


def test_intensity_histograms_one_curve_per_class_present(tmp_path):
    fig = plots.intensity_histograms(films(4), ["NORMAL", "PNEUMONIA", "PNEUMONIA", "NORMAL"],
                                     path=tmp_path / "intensity.png")
    left, right = fig.axes
    assert [line.get_label() for line in left.lines] == list(CLASSES)
    assert [hex_color(line.get_color()) for line in left.lines] == [
        plots.CLASS_COLORS[name].lower() for name in CLASSES]
    assert (left.get_title(), right.get_title()) == ("all pixels", "per image")
    assert_saved_png(fig, tmp_path / "intensity.png")
    only_normal = plots.intensity_histograms(films(2), [0, 0])
    assert [line.get_label() for line in only_normal.axes[0].lines] == ["NORMAL"]
    plt.close(only_normal)


def test_mean_images_and_their_difference(tmp_path):
    images = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 30, 100, 200)])
    fig = plots.mean_images(images, [0, 0, 1, 1], path=tmp_path / "means.png")
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "NORMAL (n=2)", "PNEUMONIA (n=2)", "PNEUMONIA - NORMAL"]
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), np.full((4, 4), 130.0))
    assert_saved_png(fig, tmp_path / "means.png")
    one_class = plots.mean_images(images[:2], [0, 0])
    assert [ax.get_title() for ax in one_class.axes] == ["NORMAL (n=2)", "", ""]
    plt.close(one_class)


def test_size_stats_says_when_every_image_has_one_size(tmp_path):
    manifest = pd.DataFrame({"width": [100, 100, 100, None], "height": [120, 120, 120, 5],
                             "label": ["NORMAL", "PNEUMONIA", "PNEUMONIA", "NORMAL"]})
    fig = plots.size_stats(manifest, path=tmp_path / "sizes.png")
    left, right = fig.axes[:2]
    assert (left.get_xlabel(), left.get_ylabel(), right.get_xlabel()) == (
        "width (px)", "height (px)", "width / height")
    assert [t.get_text() for t in left.texts] == ["all 3 images are 100 x 120 px"]
    assert texts(left.get_legend()) == list(CLASSES)
    assert_saved_png(fig, tmp_path / "sizes.png")


def test_image_panel_keeps_a_dollar_in_the_title(tmp_path):
    fig = plots.image_panel(np.full((8, 8), 0.5), title="scan $1.png",
                            path=tmp_path / "panel.png")
    ax = fig.axes[0]
    assert ax.get_title() == "scan $1.png"
    assert ax.images[0].get_cmap().name == "gray"
    assert_saved_png(fig, tmp_path / "panel.png")
    rgb = plots.image_panel(np.zeros((8, 8, 3)))
    assert rgb.axes[0].images[0].get_array().shape == (8, 8, 3)
    plt.close(rgb)
