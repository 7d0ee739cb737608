"""Every figure of the project, with one look: same colours for NORMAL and PNEUMONIA everywhere.

Each function draws on a new (or given) matplotlib figure, returns it, and saves it when
``path`` is given. Figures are sized for a notebook column and a PDF page; ``save`` writes PNG
at a modest DPI so executed notebooks stay small in git.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

CLASS_COLORS = {"NORMAL": "#4C72B0", "PNEUMONIA": "#DD8452"}
SUBTYPE_COLORS = {"normal": "#4C72B0", "bacteria": "#DD8452", "virus": "#C44E52",
                  "unknown": "#8C8C8C"}
DPI = 80

sns.set_theme(style="whitegrid", context="notebook")


def save(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    """Save ``fig`` as PNG when ``path`` is given (parents created); return it."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def class_counts(table: pd.DataFrame, *, title: str = "Images per split and class",
                 path=None) -> plt.Figure:
    """Grouped bars of a count table (rows = splits or strategies, columns NORMAL/PNEUMONIA)."""
    long = (table[["NORMAL", "PNEUMONIA"]].rename_axis("group").reset_index()
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
        ax.imshow(np.squeeze(img), cmap="gray", vmin=0, vmax=255 if img.dtype == np.uint8
                  else 1)
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)
