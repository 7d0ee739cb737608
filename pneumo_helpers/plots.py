"""Every figure of the project, with one look: same colours for NORMAL and PNEUMONIA everywhere.

Each function draws on a new (or given) matplotlib figure, returns it, and saves it when
``path`` is given. Figures are sized for a notebook column and a PDF page; ``save`` writes PNG
at a modest DPI so executed notebooks stay small in git.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .images import to_unit
from .labels import CLASSES, call, encode_labels
from .files import atomic_write

CLASS_COLORS = dict(zip(CLASSES, ("#4C72B0", "#DD8452")))
DPI = 80        # figure size in notebooks
SAVE_DPI = 200  # files in the run folder


def style(*, notebook: bool = False) -> None:
    """Give every figure the project's look (seaborn's whitegrid theme): called once by
    notebooks and commands, never on import, so importing the package changes no global state.

    Args:
        notebook: also show figures inline as JPEG (X-ray grids in PNG made the stored
            notebooks ~1 MB each); needs IPython.
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


# --- Evaluation and explanation figures (notebooks 04-05) ---------------------------------

def _binary(y_true) -> np.ndarray:
    """Labels as int 0 (NORMAL) / 1 (PNEUMONIA), from 0/1 or the class names."""

    return encode_labels(np.asarray(y_true).ravel())


def confusion_matrix_plot(cm_df: pd.DataFrame, *, title: str = "Confusion matrix",
                          path=None) -> plt.Figure:
    """Counts (left) and row rates (right: share of each true class, so the diagonal reads
    specificity and sensitivity). ``cm_df``: 2x2 DataFrame from ``evaluate.confusion``
    (rows = true, columns = predicted)."""
    counts = cm_df.astype(int)
    rates = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.6), dpi=DPI)
    for ax, table, fmt, name in ((axes[0], counts, "d", "counts"),
                                 (axes[1], rates, ".1%", "row rates (recall per class)")):
        sns.heatmap(table, annot=True, fmt=fmt, cmap="Blues", cbar=False, square=True,
                    vmin=0, linewidths=0.5, annot_kws={"fontsize": 14}, ax=ax)
        ax.set(title=name, xlabel="predicted", ylabel="true")
        ax.tick_params(axis="y", rotation=0)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def roc_pr_curves(y_true, y_prob, *, threshold: float, title: str | None = None,
                  path=None) -> plt.Figure:
    """ROC (left) and precision-recall (right) curves of P(PNEUMONIA), with the operating
    point at ``threshold`` marked. ``y_true``: (N,) 0/1 or class names; ``y_prob``: (N,)."""
    from sklearn import metrics as skm

    y, p = _binary(y_true), np.asarray(y_prob, dtype=float).ravel()
    pred = call(p, threshold).astype(bool)
    color = CLASS_COLORS["PNEUMONIA"]
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(8.5, 3.8), dpi=DPI)
    fpr, tpr, _ = skm.roc_curve(y, p)
    roc.plot(fpr, tpr, color=color, label=f"AUC = {skm.roc_auc_score(y, p):.3f}")
    roc.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance")
    sens, fp_rate = pred[y == 1].mean(), pred[y == 0].mean()
    roc.plot(fp_rate, sens, "o", color="black", ms=7,
             label=f"threshold {threshold:.2f}: sens {sens:.2f}, spec {1 - fp_rate:.2f}")
    roc.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (recall)",
            title="ROC", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    precision, recall, _ = skm.precision_recall_curve(y, p)
    pr.plot(recall, precision, color=color,
            label=f"PR AUC = {skm.average_precision_score(y, p):.3f}")
    pr.axhline(y.mean(), ls="--", color="0.6", lw=1, label=f"prevalence {y.mean():.2f}")
    point_precision = y[pred].mean() if pred.any() else 1.0
    pr.plot(sens, point_precision, "o", color="black", ms=7,
            label=f"threshold {threshold:.2f}: prec {point_precision:.2f}")
    pr.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    for ax in (roc, pr):
        ax.legend(loc="lower left" if ax is pr else "lower right", fontsize=10, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def reliability_diagram(y_true, y_prob, *, n_bins: int = 10,
                        title: str = "Calibration (reliability diagram)",
                        path=None) -> plt.Figure:
    """Observed share of PNEUMONIA against mean predicted probability in ``n_bins`` equal-width
    bins (``sklearn.calibration.calibration_curve``), with the Brier score; below, how many
    images fall in each bin."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    y, p = _binary(y_true), np.asarray(y_prob, dtype=float).ravel()
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.6, 5), dpi=DPI, sharex=True,
                                      gridspec_kw={"height_ratios": (3, 1)})
    top.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="perfectly calibrated")
    top.plot(predicted, observed, "o-", color=CLASS_COLORS["PNEUMONIA"],
             label=f"model (Brier {brier_score_loss(y, p):.3f})")
    top.set(ylabel="observed share of PNEUMONIA", title=title, ylim=(-0.02, 1.02))
    # "best": a reliability curve can run through any corner; the legend must not hide it.
    top.legend(loc="best", fontsize=8, frameon=True, framealpha=0.9)
    bottom.hist(p, bins=np.linspace(0, 1, n_bins + 1), color="0.5")
    bottom.set(xlabel="predicted P(PNEUMONIA)", ylabel="images", xlim=(0, 1))
    fig.tight_layout()
    return save(fig, path)


def probability_histogram(y_true, y_prob, *, threshold: float, bins: int = 25,
                          title: str = "Predicted P(PNEUMONIA) by true class",
                          path=None) -> plt.Figure:
    """Histogram of P(PNEUMONIA) for each true class, with the decision threshold."""
    y, p = _binary(y_true), np.asarray(y_prob, dtype=float).ravel()
    fig, ax = plt.subplots(figsize=(6, 3.3), dpi=DPI)
    edges = np.linspace(0, 1, bins + 1)
    for code, (name, color) in enumerate(CLASS_COLORS.items()):
        ax.hist(p[y == code], bins=edges, color=color, alpha=0.6,
                label=f"true {name} (n={(y == code).sum()})")
    ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"threshold {threshold:.2f}")
    ax.set(xlabel="predicted P(PNEUMONIA)", ylabel="images", title=title, xlim=(0, 1))
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, path)


def error_gallery(images, y_true, y_prob, *, threshold: float, n: int = 6,
                  title: str = "Most confident mistakes", path=None) -> plt.Figure:
    """The ``n`` most confident false positives (NORMAL called PNEUMONIA, highest P first)
    and false negatives (PNEUMONIA called NORMAL, lowest P first), one row each.
    ``images``: uint8 films (N, H, W[, 1])."""
    images = np.asarray(images)
    y, p = _binary(y_true), np.asarray(y_prob, dtype=float).ravel()
    pred = call(p, threshold).astype(bool)
    fp = np.flatnonzero((y == 0) & pred)
    fn = np.flatnonzero((y == 1) & ~pred)
    rows = {"false positives (true NORMAL)": fp[np.argsort(-p[fp])][:n],
            "false negatives (true PNEUMONIA)": fn[np.argsort(p[fn])][:n]}
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 4.0), dpi=DPI, squeeze=False)
    for axes_row, ((name, index), true_name) in zip(axes, zip(rows.items(), CLASS_COLORS)):
        for ax in axes_row:
            ax.set_xticks([])
            ax.set_yticks([])
        axes_row[0].set_ylabel(name.split(" (")[0], fontsize=9)
        if not len(index):
            axes_row[0].text(0.5, 0.5, "none", ha="center", va="center",
                             transform=axes_row[0].transAxes)
        for ax, i in zip(axes_row, index):
            show_film(ax, images[i])
            ax.set_title(f"P = {p[i]:.3f}", fontsize=8)
            for spine in ax.spines.values():  # frame in the colour of the true class
                spine.set(color=CLASS_COLORS[true_name], linewidth=2.5)
        for ax in axes_row[max(len(index), 1):]:  # the first keeps the row label
            ax.axis("off")
    fig.suptitle(f"{title} at threshold {threshold:.3f}; P = P(PNEUMONIA)", fontsize=10)
    _true_class_key(fig, "frame")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save(fig, path)


def _true_class_key(fig, what: str) -> None:
    """A legend under the figure: which colour is which true class."""
    handles = [mpatches.Patch(facecolor="white", edgecolor=color, linewidth=2.5,
                              label=f"{what}: true {name}")
               for name, color in CLASS_COLORS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=9)


def model_comparison(df: pd.DataFrame, *, metric="roc_auc", title: str | None = None,
                     path=None) -> plt.Figure:
    """Point estimates with 95 % CI bars of several models, one panel per metric.

    ``df``: tidy table with columns ``model, metric, value, ci_low, ci_high``, e.g.
    ``pd.concat({name: evaluate(...) for ...}, names=["model"]).reset_index(0)``;
    ``metric``: one metric name or a list of them.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    missing = {"model", "metric", "value", "ci_low", "ci_high"} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}; concatenate evaluate() tables "
                         "with a 'model' column")
    unknown = set(metrics) - set(df["metric"])
    if unknown:
        raise ValueError(f"metric {sorted(unknown)} not in df; available: "
                         f"{sorted(df['metric'].unique())}")
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.2 + 3.4 * len(metrics),
                                                      0.9 + 0.45 * len(models)),
                             dpi=DPI, squeeze=False, sharey=True)
    for ax, name in zip(axes[0], metrics):
        rows = df[df["metric"] == name].set_index("model").reindex(models)
        ypos = np.arange(len(models))
        for y_, (_, row) in zip(ypos, rows.iterrows()):
            err = [[row["value"] - row["ci_low"]], [row["ci_high"] - row["value"]]]
            ax.errorbar(row["value"], y_, xerr=np.nan_to_num(np.abs(err)), fmt="o",
                        color="0.25", capsize=4, ms=6)  # not a class colour
            ax.annotate(f"{row['value']:.3f}", (row["value"], y_), xytext=(0, 7),
                        textcoords="offset points", ha="center", fontsize=8)
        ax.set(title=name, xlabel=f"{name} (95% CI)", ylim=(-0.7, len(models) - 0.3))
        ax.set_yticks(ypos, models)
        ax.invert_yaxis()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def explanation_panel(rows, *, k: int = 5, title: str | None = None,
                      path=None) -> plt.Figure:
    """One column per image; rows: the film | LIME superpixels | Grad-CAM overlay.

    ``rows``: iterable of ``(image, explanation, gradcam_heatmap, title)`` where ``image`` is
    a uint8 film (H, W[, 1]), ``explanation`` a ``lime_explain.Explanation`` (or None),
    ``gradcam_heatmap`` (H, W) in [0, 1] (or None) and ``title`` a string (e.g. the kind of
    case). LIME shows the ``k`` superpixels pushing most towards PNEUMONIA in green and
    towards NORMAL in red; the model's P(PNEUMONIA) is in the column title. Cases side by side
    keep the figure landscape, as a slide or a page is.
    """
    from .explain import overlay
    from .lime_explain import lime_overlay

    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty; pass (image, explanation, gradcam, title) tuples")
    fig, axes = plt.subplots(3, len(rows), figsize=(2.7 * len(rows) + 1.2, 8.4), dpi=DPI,
                             squeeze=False)
    for column, (image, explanation, heatmap, name) in zip(axes.T, rows):
        for ax in column:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        gray = np.squeeze(np.asarray(image))
        show_film(column[0], gray)
        label = name or ""
        color = CLASS_COLORS.get(_true_class(name), "black")
        if explanation is not None:
            label = f"{label}\nP(PNEUMONIA) = {explanation.probability:.3f}"
            column[1].imshow(lime_overlay(explanation, k=k))
        else:
            column[1].text(0.5, 0.5, "no LIME", ha="center", va="center")
        column[0].set_title(label.strip(), fontsize=14, color=color)
        if heatmap is not None:
            column[2].imshow(overlay(gray, heatmap, 0.4))
        else:
            column[2].text(0.5, 0.5, "no Grad-CAM", ha="center", va="center")
    for ax, text in zip(axes[:, 0], ("film", "LIME: green → PNEUMONIA,\nred → NORMAL",
                                     "Grad-CAM\n(predicted class)")):
        ax.set_ylabel(text, fontsize=13)
    if title:
        fig.suptitle(title, fontsize=12)
    _true_class_key(fig, "heading")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, path)


def _true_class(case: str | None) -> str | None:
    """The true class of a kind of case (``"false positive"`` -> NORMAL), else None."""
    case = (case or "").lower()
    positive = "positive" in case
    if "true" in case or "false" in case:
        return CLASSES[int(positive == case.startswith("true"))]
    return None


def training_curves(histories: dict, *, metrics=("loss", "accuracy", "auc"),
                    title: str = "Training curves (solid: train, dashed: validation)",
                    path=None) -> plt.Figure:
    """Per-epoch curves of several trainings, one panel per metric.

    ``histories``: ``{name: DataFrame}`` with one row per epoch and columns ``<metric>`` and
    ``val_<metric>`` (``train.train_model``'s history); epochs are counted from 1.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.4), dpi=DPI,
                             squeeze=False)
    palette = sns.color_palette("tab10", len(histories))
    names = {"auc": "ROC AUC", "loss": "loss", "accuracy": "accuracy"}
    for ax, metric in zip(axes.flat, metrics):
        for color, (name, history) in zip(palette, histories.items()):
            epochs = np.arange(1, len(history) + 1)
            if metric in history:
                ax.plot(epochs, history[metric], color=color, label=name)
            if f"val_{metric}" in history:
                ax.plot(epochs, history[f"val_{metric}"], color=color, linestyle="--")
        ax.set(title=names.get(metric, metric), xlabel="epoch")
    # One legend under the panels, large enough to read on a printed page.
    handles, labels = axes.flat[0].get_legend_handles_labels()
    rows = -(-len(labels) // 3)
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=10,
               frameon=False)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.07 * rows + 0.02, 1, 1))
    return save(fig, path)


def crop_curve(curve: pd.DataFrame, *, threshold: float,
               title: str = "Border crops of the validation films", path=None) -> plt.Figure:
    """ROC AUC, sensitivity and specificity against the share of the side cut from every edge.

    ``curve``: :func:`pneumo_helpers.shifts.crop_curve` of a stress test (columns ``crop``,
    ``roc_auc``, ``recall``, ``specificity``), scored at the unchanged ``threshold``.
    """
    fig, ax = plt.subplots(figsize=(5.4, 3.4), dpi=DPI)
    percent = 100 * curve["crop"]
    for column, label, style in (("roc_auc", "ROC AUC", "-o"), ("recall", "sensitivity", "-s"),
                                 ("specificity", "specificity", "-^")):
        ax.plot(percent, curve[column], style, label=label)
    ax.set(xlabel="border cropped per side (% of the side), then resized back",
           ylabel=f"value at threshold {threshold:.3f}", ylim=(0, 1.02),
           xticks=percent.tolist())
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="lower left")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)
