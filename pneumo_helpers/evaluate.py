"""How good is a model: metrics with bootstrap confidence intervals, threshold rules, reports.

Point estimates come from scikit-learn. Their 95 % intervals come from a percentile bootstrap
that resamples *patients* when patient ids are given: images of one child are correlated (same
lungs, sometimes the same day), so resampling images alone would give intervals that are too
narrow. A bootstrap resample is expressed as a weight per image (how many times its patient was
drawn), which turns every metric of all resamples into a few matrix products: 1,000 resamples of
1,000 images take ~0.3 s here instead of ~30 s of scikit-learn calls in a loop. The
weighted formulas are checked against scikit-learn's ``sample_weight`` in the tests.

Label encoding: NORMAL = 0, PNEUMONIA = 1; ``y_prob`` is P(PNEUMONIA); an image is called
PNEUMONIA when ``y_prob >= threshold`` (the convention of :func:`sklearn.metrics.roc_curve`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .labels import CLASSES, call, encode_labels
from .recipe import THRESHOLD_RULE
from .metrics_report import Estimate, MetricsReport

__all__ = ["METRICS", "THRESHOLD_RULES", "predict_proba", "choose_threshold",
           "evaluate", "bootstrap", "pneumonia_column", "confusion", "report", "to_report",
           "write_run_metrics", "floor_check"]

METRICS = ("accuracy", "precision", "recall", "specificity", "f1_pneumonia", "f1_normal",
           "roc_auc", "pr_auc", "brier")
THRESHOLD_RULES = ("youden", "sens>=X (e.g. sens>=0.95)", "f1", "0.5")


# --------------------------------------------------------------------------- inputs

def _labels(y_true, name: str = "y_true") -> np.ndarray:
    """``y_true`` as int 0/1; accepts 0/1, booleans or the class names."""
    try:
        return encode_labels(np.asarray(y_true).ravel())
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def _probabilities(y_prob, n: int) -> np.ndarray:
    p = np.asarray(y_prob, dtype=float).ravel()
    if p.shape != (n,):
        raise ValueError(f"y_prob has {p.size} values but y_true has {n}; pass one "
                         "probability per image")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("y_prob must be finite probabilities in [0, 1] (P(PNEUMONIA)); "
                         "apply a sigmoid to logits first")
    return p


def _check_threshold(threshold) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


# --------------------------------------------------------------------------- prediction

def predict_proba(model, x_or_dataset, *, batch_size: int = 64) -> np.ndarray:
    """P(PNEUMONIA) for every image, shape (N,), float64.

    Args:
        model: a Keras model whose output is (N, 1) sigmoid or (N, 2) softmax.
        x_or_dataset: images as an array (N, H, W) or (N, H, W, C) scaled as the model was
            trained, or a ``tf.data.Dataset`` / ``keras.utils.PyDataset`` yielding batches of
            images or ``(images, labels)``.
        batch_size: images per forward pass, for arrays only (datasets are already batched).
    """
    if isinstance(x_or_dataset, (np.ndarray, list, tuple)):
        x = np.asarray(x_or_dataset, dtype="float32")
        channels = model.inputs[0].shape[-1]
        if x.ndim == 3 and channels is not None:
            x = x[..., None]  # (N, H, W) -> (N, H, W, 1), then repeat for an RGB model
            if channels != 1:
                x = np.repeat(x, channels, axis=-1)
        if x.ndim != 4:
            raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C); got {x.shape}")
        out = model.predict(x, batch_size=batch_size, verbose=0)
    else:
        out = model.predict(x_or_dataset, verbose=0)
    return pneumonia_column(out)


def pneumonia_column(output) -> np.ndarray:
    """P(PNEUMONIA) (N,) float64 from a model output (N,), (N, 1) sigmoid or (N, 2) softmax."""
    out = np.asarray(output, dtype=float)
    if out.ndim == 2 and out.shape[1] == 2:
        return out[:, 1]
    if out.ndim > 2 or (out.ndim == 2 and out.shape[1] != 1):
        raise ValueError(f"model output has shape {out.shape}; expected (N, 1) P(PNEUMONIA) "
                         "or (N, 2) class probabilities")
    return out.ravel()


# --------------------------------------------------------------------------- thresholds

def choose_threshold(y_true, y_prob, *, rule: str = THRESHOLD_RULE) -> float:
    """The decision threshold on P(PNEUMONIA) chosen by ``rule`` (usually on validation data).

    Rules:
        ``"youden"``: maximise sensitivity + specificity - 1 (Youden's J).
        ``"sens>=X"`` (e.g. ``"sens>=0.95"``): the highest specificity among thresholds with
            sensitivity >= X; a screening setting where missing pneumonia costs most.
        ``"f1"``: maximise F1 of the PNEUMONIA class.
        ``"0.5"``: the plain 0.5 (or any number given as a string, e.g. ``"0.3"``).

    Ties keep the highest threshold. Returns a float in [0, 1]; an image is positive when
    ``y_prob >= threshold``.
    """
    y = _labels(y_true)
    p = _probabilities(y_prob, y.size)
    rule = str(rule).strip().lower().replace(" ", "")
    if rule in ("youden", "f1") or rule.startswith("sens>="):
        if y.min() == y.max():
            raise ValueError(f"rule {rule!r} needs both classes in y_true; got only "
                             f"{CLASSES[y[0]]}")
    if rule == "youden":
        fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
        best = thr[np.argmax(tpr - fpr)]
    elif rule.startswith("sens>="):
        try:
            target = float(rule.split(">=", 1)[1])
        except ValueError:
            raise ValueError(f"rule {rule!r}: write the sensitivity as a number, "
                             "e.g. 'sens>=0.95'") from None
        fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
        # fpr only grows as the threshold falls: the first point reaching the target
        # sensitivity has the best specificity.
        best = thr[np.argmax(tpr >= target - 1e-12)]
    elif rule == "f1":
        precision, recall, thr = skm.precision_recall_curve(y, p)
        f1 = np.divide(2 * precision * recall, precision + recall,
                       out=np.zeros_like(precision), where=(precision + recall) > 0)[:-1]
        best = thr[::-1][np.argmax(f1[::-1])]  # scan from the top: ties keep the highest
    else:
        try:
            best = float(rule)
        except ValueError:
            raise ValueError(f"unknown threshold rule {rule!r}; use one of "
                             f"{THRESHOLD_RULES}") from None
        best = _check_threshold(best)
    return float(min(best, 1.0))  # roc_curve's first threshold is +inf (nothing positive)


# --------------------------------------------------------------------------- bootstrap

def _weighted_metrics(y: np.ndarray, p: np.ndarray, y_pred: np.ndarray,
                      w: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of METRICS for each row of image weights ``w`` (B, N) at once.

    Same definitions as scikit-learn with ``sample_weight``; undefined values (e.g. no
    positive in a resample) are NaN.
    """
    def ratio(a, b):
        return np.divide(a, b, out=np.full_like(a, np.nan), where=b > 0)

    pos, pred = y == 1, y_pred == 1
    tp, fn = w @ (pos & pred), w @ (pos & ~pred)
    fp, tn = w @ (~pos & pred), w @ (~pos & ~pred)
    total = w.sum(axis=1)
    out = {
        "accuracy": ratio(tp + tn, total),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "f1_pneumonia": ratio(2 * tp, 2 * tp + fp + fn),
        "f1_normal": ratio(2 * tn, 2 * tn + fn + fp),
        "brier": ratio(w @ (p - y) ** 2, total),
    }
    # ROC and PR curves at every distinct score, highest first: cumulative weighted
    # true/false positives at the last image of each run of equal scores.
    order = np.argsort(-p, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(p[order])), p.size - 1]
    ws = w[:, order]
    tps = np.cumsum(ws * pos[order], axis=1)[:, last]
    fps = np.cumsum(ws * ~pos[order], axis=1)[:, last]
    n_pos, n_neg = tps[:, -1:], fps[:, -1:]
    tps0 = np.pad(tps, ((0, 0), (1, 0)))
    fps0 = np.pad(fps, ((0, 0), (1, 0)))
    auc_area = (np.diff(fps0, axis=1) * (tps0[:, 1:] + tps0[:, :-1]) / 2).sum(axis=1)
    out["roc_auc"] = ratio(auc_area, (n_pos * n_neg).ravel())
    step_precision = np.divide(tps, tps + fps, out=np.zeros_like(tps), where=(tps + fps) > 0)
    out["pr_auc"] = ratio((np.diff(tps0, axis=1) * step_precision).sum(axis=1), n_pos.ravel())
    return out


def bootstrap(y_true, y_prob, *, threshold: float = 0.5, groups=None, n_boot: int = 1000,
              seed: int = 0) -> pd.DataFrame:
    """Every metric on ``n_boot`` bootstrap resamples: DataFrame (n_boot, len(METRICS)).

    With ``groups`` (one patient id per image) patients are drawn with replacement and each
    drawn patient brings all of their images; otherwise images are drawn. Resamples where a
    metric is undefined (e.g. no PNEUMONIA drawn, for recall) hold NaN.
    """
    y = _labels(y_true)
    p = _probabilities(y_prob, y.size)
    threshold = _check_threshold(threshold)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if groups is None:
        codes, n_groups = np.arange(y.size), y.size
    else:
        groups = np.asarray(groups).ravel()
        if groups.size != y.size:
            raise ValueError(f"groups has {groups.size} patient ids for {y.size} images; "
                             "pass one id per image")
        codes, uniques = pd.factorize(groups)
        n_groups = len(uniques)
    rng = np.random.default_rng(seed)
    # How often each patient is drawn in each resample = a multinomial draw.
    draws = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    weights = draws[:, codes].astype(float)
    values = _weighted_metrics(y, p, call(p, threshold), weights)
    return pd.DataFrame(values, columns=list(METRICS))


def _point_metrics(y: np.ndarray, p: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    both = y.min() != y.max()
    tn, fp, fn, tp = skm.confusion_matrix(y, y_pred, labels=[0, 1]).ravel()
    return {
        "accuracy": skm.accuracy_score(y, y_pred),
        "precision": skm.precision_score(y, y_pred, zero_division=np.nan),
        "recall": skm.recall_score(y, y_pred, zero_division=np.nan),
        "specificity": tn / (tn + fp) if tn + fp else np.nan,
        "f1_pneumonia": skm.f1_score(y, y_pred, pos_label=1, zero_division=np.nan),
        "f1_normal": skm.f1_score(y, y_pred, pos_label=0, zero_division=np.nan),
        "roc_auc": skm.roc_auc_score(y, p) if both else np.nan,
        "pr_auc": skm.average_precision_score(y, p) if y.max() == 1 else np.nan,
        "brier": skm.brier_score_loss(y, p, pos_label=1),
    }


def evaluate(y_true, y_prob, *, threshold: float = 0.5, groups=None, n_boot: int = 1000,
             seed: int = 0) -> pd.DataFrame:
    """Metrics of P(PNEUMONIA) scores at ``threshold``, each with a 95 % bootstrap interval.

    Args:
        y_true: (N,) labels, 0 = NORMAL, 1 = PNEUMONIA (or the class names).
        y_prob: (N,) P(PNEUMONIA) in [0, 1].
        threshold: images with ``y_prob >= threshold`` are called PNEUMONIA.
        groups: optional (N,) patient ids; the bootstrap then resamples patients.
        n_boot: bootstrap resamples (0 skips the intervals: ci columns are NaN).
        seed: seed of the resampling.

    Returns:
        Tidy DataFrame, one row per metric of METRICS (recall = sensitivity, pr_auc = average
        precision, brier = Brier score, lower is better), columns ``metric, value, ci_low,
        ci_high, n`` (n = images). ``df.attrs`` holds threshold, n_boot, n_patients.
    """
    y = _labels(y_true)
    p = _probabilities(y_prob, y.size)
    threshold = _check_threshold(threshold)
    values = _point_metrics(y, p, call(p, threshold))
    if n_boot:
        boot = bootstrap(y, p, threshold=threshold, groups=groups, n_boot=n_boot, seed=seed)
        # A metric undefined in every resample is NaN, not a warning.
        finite = boot.notna().any()
        ci = pd.DataFrame(np.nan, index=["low", "high"], columns=boot.columns)
        ci.loc[:, finite] = np.nanpercentile(boot.loc[:, finite], [2.5, 97.5], axis=0)
    else:
        ci = pd.DataFrame(np.nan, index=["low", "high"], columns=list(METRICS))
    df = pd.DataFrame({
        "metric": list(METRICS),
        "value": [float(values[m]) for m in METRICS],
        "ci_low": ci.loc["low", list(METRICS)].to_numpy(float),
        "ci_high": ci.loc["high", list(METRICS)].to_numpy(float),
        "n": y.size,
    })
    df.attrs.update(threshold=threshold, n_boot=n_boot,
                    n_patients=None if groups is None else int(pd.Series(groups).nunique()))
    return df


# --------------------------------------------------------------------------- reports

def confusion(y_true, y_pred) -> pd.DataFrame:
    """2x2 confusion counts: rows = true class, columns = predicted class (NORMAL, PNEUMONIA)."""
    y, yp = _labels(y_true), _labels(y_pred, "y_pred")
    if y.size != yp.size:
        raise ValueError(f"y_true has {y.size} labels but y_pred has {yp.size}")
    cm = skm.confusion_matrix(y, yp, labels=[0, 1])
    return pd.DataFrame(cm, index=pd.Index(CLASSES, name="true"),
                        columns=pd.Index(CLASSES, name="predicted"))


def report(y_true, y_pred) -> str:
    """scikit-learn's classification report with the class names NORMAL / PNEUMONIA."""
    return skm.classification_report(_labels(y_true), _labels(y_pred, "y_pred"), labels=[0, 1],
                                     target_names=list(CLASSES), digits=3,
                                     zero_division=0)


def to_report(df: pd.DataFrame, *, threshold: float | None = None, rule: str | None = None,
              split: str | None = None, model: str | None = None,
              **provenance) -> MetricsReport:
    """An :func:`evaluate` table as the run folder's typed record (write it with ``.write``).

    ``threshold`` defaults to ``df.attrs["threshold"]``; ``n`` is the table's image count;
    ``provenance``: other facts to keep with it (e.g. ``model_sha256=...``, ``data=...``).
    """
    missing = {"metric", "value", "ci_low", "ci_high"} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}; pass the table of evaluate()")
    threshold = df.attrs.get("threshold") if threshold is None else threshold
    metrics = {row.metric: Estimate(float(row.value), float(row.ci_low), float(row.ci_high))
               for row in df.itertuples(index=False)}
    return MetricsReport(metrics=metrics,
                         threshold=None if threshold is None else float(threshold), rule=rule,
                         n=int(df["n"].max()) if "n" in df else None, split=split, model=model,
                         provenance={k: v.item() if isinstance(v, np.generic) else v
                                     for k, v in provenance.items()})


def write_run_metrics(tables: dict[str, pd.DataFrame], layout, *, threshold: float,
                      rule: str | None, model: str) -> dict[str, MetricsReport]:
    """05's results: one :class:`~pneumo_helpers.metrics_report.MetricsReport` per split, written to
    ``metrics/<split>.json``, which the report, the deck and the README table read.

    Args:
        tables: ``{split: evaluate() table}``. layout: the run's
            :class:`pneumo_helpers.runs.RunLayout`.
    """
    reports = {}
    for split, table in tables.items():
        reports[split] = to_report(table, threshold=threshold, rule=rule, split=split,
                                   model=model)
        reports[split].write(layout.split_metrics(split))
    return reports


def floor_check(what: str, value: float, floor: float) -> str:
    """One line saying whether ``value`` reaches ``floor``, the same on every healthy run.

    Notebooks print it in cells nbval compares: a decimal would differ between machines and
    seeds, a pass/fail against a floor learned from several healthy runs does not. The value
    itself is shown only on failure, where it explains the mismatch.

    >>> floor_check("validation ROC AUC", 0.93, 0.8)
    'validation ROC AUC >= 0.80: yes'
    """
    if not math.isfinite(float(value)) or value < floor:
        return f"{what} >= {floor:.2f}: NO ({float(value):.3f}; the model is not learning " \
               "what a healthy run learns)"
    return f"{what} >= {floor:.2f}: yes"


def calibration_bins(y_true, y_prob, *, n_bins: int = 10) -> pd.DataFrame:
    """Films, mean P(PNEUMONIA) and observed share of PNEUMONIA per equal-width bin of P.

    Returns one row per non-empty bin: ``low``, ``high`` (the bin's edges), ``films``,
    ``predicted`` (mean P) and ``observed`` (share of PNEUMONIA); what the reliability diagram
    draws, as numbers a sentence can quote.
    """
    y, p = _labels(y_true), _probabilities(y_prob, len(y_true))
    edges = np.linspace(0, 1, n_bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    rows = [dict(low=edges[i], high=edges[i + 1], films=int((index == i).sum()),
                 predicted=float(p[index == i].mean()), observed=float(y[index == i].mean()))
            for i in range(n_bins) if (index == i).any()]
    return pd.DataFrame(rows, columns=["low", "high", "films", "predicted", "observed"])


def calibration_sentence(bins: pd.DataFrame, *, min_films: int = 10, gap: float = 0.1) -> str:
    """One sentence on where the probabilities are over- or under-confident, from
    :func:`calibration_bins`: bins of at least ``min_films`` films whose observed share is more
    than ``gap`` away from their mean P."""
    solid = bins[bins["films"] >= min_films]
    off = solid[(solid["observed"] - solid["predicted"]).abs() > gap]
    if solid.empty:
        return "Too few films per bin to judge calibration."
    if off.empty:
        return (f"Every bin holding {min_films} films or more lies within {gap:.1f} of the "
                "diagonal: the probabilities can be read at face value there.")
    parts = []
    for row in off.itertuples():
        kind = "under-confident" if row.observed > row.predicted else "over-confident"
        parts.append(f"{kind} between P = {row.low:.1f} and {row.high:.1f} ({row.films} films: "
                     f"mean P {row.predicted:.2f}, observed share {row.observed:.2f})")
    return ("Off the diagonal: " + "; ".join(parts) + ". Elsewhere, in bins of "
            f"{min_films} films or more, within {gap:.1f}.")
