"""The project's look and how figures are saved, and the figures of the data (notebooks 01-03).

``style`` sets one theme and ``CLASS_COLORS`` one colour per class for every figure of the
project; ``save`` writes a figure into the run folder. The figures here show the dataset:
counts per split and class, films, pixel intensities, mean images and original sizes. Each draws
on a new matplotlib figure, returns it, and saves it when ``path`` is given. Figures of a
model's outputs are in :mod:`.model_plots`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .images import to_unit
from .files import atomic_write
from .labels import CLASSES, encode_labels

CLASS_COLORS = dict(zip(CLASSES, ("#4C72B0", "#DD8452")))
DPI = 80        # figure size in notebooks
SAVE_DPI = 200  # files in the run folder


def style(*, notebook: bool = False) -> None:
    """Give every figure the project's look (seaborn's whitegrid theme): called once by
    notebooks and commands, never on import, so importing the package changes no global state.

    Args:
        notebook: also show figures inline as JPEG, as X-ray grids stored as PNG make the
            executed notebooks large in git; needs IPython.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    if notebook:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("jpeg", pil_kwargs={"quality": 85})


def save(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    """Save ``fig`` when ``path`` is given (parents created); return it.

    At 200 dpi: the reviewer deck shows these files at full slide width, where labels must stay
    readable at 100 % zoom (inline notebook figures are drawn separately, as small JPEGs).
    """
    if path is not None:
        path = Path(path)
        with atomic_write(path, "wb") as handle:  # a reader never sees half a picture
            fig.savefig(handle, format=path.suffix.lstrip(".").lower() or "png", dpi=SAVE_DPI,
                        bbox_inches="tight")
    return fig


def show_film(ax, film) -> None:
    """Draw a film (H, W[, 1]) in gray on ``ax``: uint8 as read, or float32 in [0, 1] as a
    model takes it (e.g. an augmented batch); black = 0."""
    film = np.squeeze(film)
    ax.imshow(to_unit(film) if film.dtype == np.uint8 else film, cmap="gray", vmin=0, vmax=1)


def class_counts(table: pd.DataFrame, *, title: str = "Images per split and class",
                 path=None) -> plt.Figure:
    """Grouped bars of a count table (rows = splits or strategies, columns NORMAL/PNEUMONIA)."""
    long = (table[list(CLASSES)].rename_axis("group").reset_index()
            .melt(id_vars="group", var_name="class", value_name="images"))
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=DPI)
    sns.barplot(long, x="group", y="images", hue="class", palette=CLASS_COLORS, ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fontsize=8)
    ax.set(title=title, xlabel="", ylabel="images")
    ax.legend(title=None, frameon=False)
    fig.tight_layout()
    return save(fig, path)


def image_grid(images: list[np.ndarray], titles: list[str], *, ncols: int = 6,
               title: str | None = None, path=None) -> plt.Figure:
    """Grayscale images in a grid, one title each. ``images``: arrays (H, W) or (H, W, 1)."""
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.75 * nrows), dpi=DPI,
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, label in zip(axes.flat, images, titles):
        show_film(ax, img)
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


# --- Explore figures (notebook 03): what the pixels of each class look like ---------------

def _class_names(labels) -> np.ndarray:

    return np.asarray(CLASSES)[encode_labels(labels)]


def intensity_histograms(images: np.ndarray, labels, *, bins: int = 64,
                         title: str = "Pixel intensities by class", path=None) -> plt.Figure:
    """Left: pooled pixel-intensity histogram per class (density). Right: per-image mean
    intensity per class. ``images``: uint8 ``(N, H, W)`` or ``(N, H, W, 1)``, 0..255;
    ``labels``: ``N`` class names or 0/1."""
    names = _class_names(labels)
    pixels = np.asarray(images).reshape(len(names), -1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=DPI)
    edges = np.linspace(0, 255, bins + 1)
    for name, color in CLASS_COLORS.items():
        rows = pixels[names == name]
        if not len(rows):
            continue
        density, _ = np.histogram(rows, bins=edges, density=True)
        left.plot((edges[:-1] + edges[1:]) / 2, density, color=color, label=name)
        right.hist(rows.mean(axis=1), bins=30, color=color, alpha=0.6, label=name,
                   density=True)
    left.set(xlabel="intensity (0-255)", ylabel="density", title="all pixels")
    right.set(xlabel="mean intensity of an image", ylabel="density", title="per image")
    left.legend(frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def mean_images(images: np.ndarray, labels, *, title: str = "Mean image per class",
                path=None) -> plt.Figure:
    """Mean image of each class and their difference (PNEUMONIA - NORMAL, red = brighter in
    pneumonia). ``images``: uint8 or float ``(N, H, W[, 1])``; ``labels``: class names or 0/1."""
    names = _class_names(labels)
    stack = np.asarray(images, dtype=np.float32).reshape(len(names), *np.shape(images)[1:3])
    means = {name: stack[names == name].mean(axis=0) for name in CLASS_COLORS
             if (names == name).any()}
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), dpi=DPI)
    for ax in axes:
        ax.axis("off")
    for ax, (name, mean) in zip(axes, means.items()):
        ax.imshow(mean, cmap="gray")
        ax.set_title(f"{name} (n={int((names == name).sum())})", fontsize=9)
    if len(means) == 2:
        diff = means["PNEUMONIA"] - means["NORMAL"]
        limit = float(np.abs(diff).max()) or 1.0
        shown = axes[2].imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[2].set_title("PNEUMONIA - NORMAL", fontsize=9)
        bar = fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.04)
        bar.set_label("mean difference (pixel value)", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def size_stats(manifest: pd.DataFrame, *, title: str = "Original image sizes",
               path=None) -> plt.Figure:
    """Width against height of every original file, and the aspect-ratio histogram, by class.
    ``manifest``: DataFrame with ``width``, ``height`` and ``label`` (from build_manifest)."""
    data = manifest.dropna(subset=["width", "height"]).astype({"width": float,
                                                              "height": float})
    data = data.assign(aspect=data["width"] / data["height"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=DPI)
    sns.scatterplot(data, x="width", y="height", hue="label", palette=CLASS_COLORS, s=10,
                    alpha=0.5, linewidth=0, ax=left)
    sns.histplot(data, x="aspect", hue="label", palette=CLASS_COLORS, bins=40,
                 element="step", stat="density", common_norm=False, ax=right)
    left.set(xlabel="width (px)", ylabel="height (px)")
    left.legend(title=None, frameon=False, markerscale=2)
    if data[["width", "height"]].nunique().max() == 1:  # e.g. a pre-resized dataset
        left.text(0.5, 0.15, f"all {len(data)} images are {data['width'].iat[0]:.0f} x "
                  f"{data['height'].iat[0]:.0f} px", transform=left.transAxes, ha="center")
    if right.get_legend() is not None:
        sns.move_legend(right, "best", title=None, frameon=False)
    right.set(xlabel="width / height")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def image_panel(image: np.ndarray, *, title: str = "", path=None) -> plt.Figure:
    """One image (gray (H, W) or RGB (H, W, 3), floats in [0, 1]) with a title."""
    fig, ax = plt.subplots(figsize=(4.2, 4.5), dpi=DPI)
    ax.imshow(np.squeeze(image), cmap="gray" if np.ndim(np.squeeze(image)) == 2 else None,
              vmin=0, vmax=1)
    ax.set_title(title, fontsize=9, parse_math=False)  # a file name's "$" is text, not maths
    ax.axis("off")
    fig.tight_layout()
    return save(fig, path)
