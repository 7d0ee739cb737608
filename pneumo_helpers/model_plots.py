"""Figures of a model's outputs (notebooks 04-05): how well it separates the classes, where it
errs, how it trained, and what its explainers show.

Each function draws on a new matplotlib figure, returns it, and saves it when ``path`` is
given, with the look, class colours and saving of :mod:`.plots`. Probabilities are
P(PNEUMONIA); labels are 0 (NORMAL) / 1 (PNEUMONIA) or the class names.
"""

from __future__ import annotations

import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .labels import CLASSES, call, encode_labels
from .metrics_report import METRIC_LABELS
from .recipe import model_words
from .plots import CLASS_COLORS, DPI, save, show_film


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
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.4), dpi=DPI, sharex=True,
                                      gridspec_kw={"height_ratios": (3, 1)})
    top.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="perfectly calibrated")
    top.plot(predicted, observed, "o-", color=CLASS_COLORS["PNEUMONIA"],
             label=f"model (Brier {brier_score_loss(y, p):.3f})")
    top.set(ylabel="observed share of PNEUMONIA", title=title, ylim=(-0.02, 1.02))
    # "best": a reliability curve can run through any corner; the legend must not hide it.
    top.legend(loc="best", fontsize=9.5, frameon=True, framealpha=0.9)
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
    ax.legend(fontsize=10, frameon=False)
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


def _true_class_key(fig, what: str, *, fontsize: float = 12) -> None:
    """A legend under the figure: which colour is which true class."""
    handles = [mpatches.Patch(facecolor="white", edgecolor=color, linewidth=2.5,
                              label=f"{what}: true {name}")
               for name, color in CLASS_COLORS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=fontsize)


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
        label = METRIC_LABELS.get(name, name)
        # The title names the metric; a short axis label keeps neighbouring panels apart.
        ax.set(title=label, xlabel="estimate, 95 % CI", ylim=(-0.7, len(models) - 0.3))
        ax.set_yticks(ypos, [model_words(m) for m in models])
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
    _true_class_key(fig, "heading", fontsize=16)  # the panel is printed small
    fig.tight_layout(rect=(0, 0.05, 1, 1))
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
                ax.plot(epochs, history[metric], color=color, label=model_words(name))
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
    for column, label, fmt in (("roc_auc", "ROC AUC", "-o"), ("recall", "sensitivity", "-s"),
                               ("specificity", "specificity", "-^")):
        ax.plot(percent, curve[column], fmt, label=label)
    ax.set(xlabel="border cropped per side (% of the side), then resized back",
           ylabel=f"value at threshold {threshold:.3f}", ylim=(0, 1.02),
           xticks=percent.tolist())
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="lower left")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)
