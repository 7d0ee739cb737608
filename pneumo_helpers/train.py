"""Training with everything a run needs to be resumable, reproducible and documented.

:func:`train_model` wraps ``model.fit`` with the usual callbacks (best-model checkpoint, early
stopping, learning-rate reduction, CSV log) plus ``BackupAndRestore``: a training that is
killed (notebook kernel restart, CI timeout) continues from its last finished epoch when run
again with the same ``out_dir``. Every run folder ends up with the best model, its history
(``history.csv``) and a ``config.json`` recording the settings, seed, library versions and
timing. :func:`save_model_card` writes a short model card next to them.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from pathlib import Path
from typing import Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from .metrics_report import MetricsReport

from .runs import ModelLayout, write_csv, write_json

__all__ = ["set_seed", "train_model", "resumable", "EpochTimer", "save_model_card",
           "library_versions"]



def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend so weight initialisation and shuffling repeat."""
    keras.utils.set_random_seed(int(seed))


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide a model's numbers."""
    versions = {"python": platform.python_version(), "keras": keras.__version__,
                "numpy": np.__version__, "pandas": pd.__version__,
                "backend": keras.backend.backend()}
    try:
        import tensorflow as tf  # the backend of this project; optional for the others
        versions["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return versions


def _as_dict(config) -> dict:
    if config is None:
        return {}
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config must be a dict or a dataclass such as RunConfig, got "
                    f"{type(config).__name__}")


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (wall time of the epoch, validation included) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


def _read_history(path: Path) -> pd.DataFrame:
    """The CSV log with one row per epoch: an epoch re-run after a kill keeps its last row."""
    history = pd.read_csv(path)
    return (history.drop_duplicates("epoch", keep="last").sort_values("epoch")
            .reset_index(drop=True))


def _best(history: pd.DataFrame, monitor: str, mode: str) -> tuple[int, float] | None:
    if history.empty or monitor not in history:
        return None
    values = history[monitor]
    index = values.idxmax() if mode == "max" else values.idxmin()
    return int(history.loc[index, "epoch"]), float(values[index])


def resumable(out_dir) -> bool:
    """Whether :func:`train_model` in ``out_dir`` resumes an interrupted training."""
    backup = ModelLayout(Path(out_dir).expanduser()).backup
    return backup.is_dir() and any(backup.iterdir())


def train_model(model: keras.Model, train_ds, val_ds, *, out_dir, epochs: int = 10,
                class_weight: dict | None = None, patience: int = 4, monitor: str = "val_auc",
                mode: str = "max", config=None, callbacks: Sequence = (),
                verbose="auto") -> pd.DataFrame:
    """Train ``model`` and write the run folder; resume an interrupted run in the same folder.

    Args:
        model: a compiled Keras model (e.g. from :mod:`pneumo_helpers.models`).
        train_ds, val_ds: ``tf.data.Dataset`` (or anything ``fit`` takes) of batches
            ``(x float32 (B, H, W, C), y float32 (B,))``.
        out_dir: run folder; created if needed. Holds ``model.keras`` (best epoch),
            ``history.csv``, ``config.json`` and, while training, ``backup/``.
        epochs: maximum number of epochs, counting those of an interrupted earlier attempt.
        class_weight: ``{0: w_normal, 1: w_pneumonia}`` or ``None``.
        patience: epochs without improvement of ``monitor`` before stopping early; the
            learning rate is halved after ``max(1, patience // 2)`` such epochs.
        monitor, mode: metric that picks the best epoch (``"val_auc"``, ``"max"``) or e.g.
            (``"val_loss"``, ``"min"``).
        config: dict or ``RunConfig`` recorded in ``config.json`` (its ``seed`` too).
        callbacks: extra Keras callbacks, run after the built-in ones.
        verbose: passed to ``model.fit``.

    Returns:
        The history of all epochs of the run (an interrupted attempt included), one row per
        epoch: ``epoch``, ``loss``, metrics, ``val_*``, ``learning_rate``, ``epoch_seconds``.
        ``model`` holds the weights of the best epoch when this returns.

    A fresh run (no ``backup/`` in ``out_dir``) replaces any earlier history in ``out_dir``.
    On resume, the patience counters start again from the resumed epoch.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if val_ds is None and monitor.startswith("val_"):
        raise ValueError(f"monitor={monitor!r} needs validation data; pass val_ds")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    files = ModelLayout(out)
    model_path, csv_path, backup_dir = files.model, files.history_csv, files.backup
    resuming = resumable(out)
    best_so_far = None
    if not resuming:  # a fresh run: nothing of an earlier run in out_dir may leak into it
        csv_path.unlink(missing_ok=True)
        model_path.unlink(missing_ok=True)
    elif csv_path.is_file():
        best_so_far = _best(_read_history(csv_path), monitor, mode)

    builtin = [
        EpochTimer(),
        # Seeded with the best value of the interrupted attempt, so a resumed run only
        # replaces model.keras with a better epoch.
        keras.callbacks.ModelCheckpoint(model_path, monitor=monitor, mode=mode,
                                        save_best_only=True,
                                        initial_value_threshold=(best_so_far[1] if best_so_far
                                                                 else None)),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.5,
                                          patience=max(1, patience // 2), min_lr=1e-6),
        # Before the backup: a kill between the two repeats an epoch in the CSV (deduplicated
        # on reading) instead of losing it.
        keras.callbacks.CSVLogger(csv_path, append=True),
        # double_checkpoint keeps the previous state if a kill corrupts the file being written.
        keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True,
                                         delete_checkpoint=True),
    ]
    started = time.time()
    fit = model.fit(train_ds, validation_data=val_ds, epochs=epochs, class_weight=class_weight,
                    callbacks=[*builtin, *callbacks], verbose=verbose,
                    shuffle=False)  # datasets shuffle themselves (see generators.py)

    history = _read_history(csv_path) if csv_path.is_file() else pd.DataFrame(fit.history)
    if model_path.is_file():
        # The checkpoint holds the best epoch over all attempts; EarlyStopping only knows
        # the epochs of this attempt.
        model.load_weights(model_path)
    else:  # the monitored metric never appeared in the logs
        model.save(model_path)
    write_csv(csv_path, history)

    seconds = history["epoch_seconds"].tolist() if "epoch_seconds" in history else []
    best = _best(history, monitor, mode)
    record = _as_dict(config)
    record.update({
        "seed": record.get("seed"),
        "versions": library_versions(),
        "epochs_max": epochs,
        "epochs_run": int(len(history)),
        "resumed_from_epoch": fit.epoch[0] if resuming and fit.epoch else None,
        "stopped_early": len(history) < epochs,
        "monitor": monitor,
        "mode": mode,
        "best_epoch": best[0] if best else None,
        "best_value": best[1] if best else None,
        "class_weight": {str(k): float(v) for k, v in (class_weight or {}).items()} or None,
        "seconds_per_epoch": [round(s, 3) for s in seconds],
        "mean_seconds_per_epoch": round(float(np.mean(seconds)), 3) if seconds else None,
        "train_seconds_this_attempt": round(time.time() - started, 3),
        "parameters": int(model.count_params()),
    })
    write_json(files.config, record)
    return history


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def save_model_card(out_dir, *, config, val_metrics: MetricsReport, data_description: str,
                    model_name: str = "pneumo pneumonia classifier",
                    intended_use: str | None = None, limitations: str | None = None,
                    model: keras.Model | None = None,
                    sections: dict[str, str] | None = None) -> Path:
    """Write ``MODEL_CARD.md`` into ``out_dir``.

    Args:
        out_dir: the model folder (created if needed).
        config: dict or ``RunConfig`` of the run; shown as a settings table.
        val_metrics: the model's validation
            :class:`~pneumo_helpers.metrics_report.MetricsReport` (its ``val_metrics.json``);
            its threshold and rule are stated next to the metrics, which are computed at
            that threshold.
        data_description: a few sentences on the data (source, splits, counts).
        model_name: title of the card.
        intended_use, limitations: paragraphs replacing the defaults.
        model: when given, its architecture name and parameter count are listed.
        sections: extra ``{heading: markdown}`` sections, placed after the metrics (e.g. the
            acquisition-shift stress test of :mod:`pneumo_helpers.shifts`).

    Returns:
        Path of ``MODEL_CARD.md``.
    """
    if not isinstance(val_metrics, MetricsReport):
        raise TypeError("val_metrics must be a MetricsReport (MetricsReport.read of the "
                        f"model's val_metrics.json), got {type(val_metrics).__name__}")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    table = val_metrics.table()
    threshold, threshold_rule = val_metrics.threshold, val_metrics.rule
    has_ci = table[["ci_low", "ci_high"]].notna().any(axis=None)
    metric_lines = ["| metric | value | 95% CI |" if has_ci else "| metric | value |",
                    "|---|---|---|" if has_ci else "|---|---|"]
    for name, row in table.iterrows():
        ci = (f" | {_fmt(row.ci_low)} – {_fmt(row.ci_high)}" if not math.isnan(row.ci_low)
              else " | ") if has_ci else ""
        metric_lines.append(f"| {name} | {_fmt(row.value)}{ci} |")
    settings = _as_dict(config)
    setting_lines = ["| setting | value |", "|---|---|",
                     *(f"| {key} | {_fmt(value)} |" for key, value in settings.items())]
    model_lines = ([f"Architecture `{model.name}`, {model.count_params():,} parameters, input "
                    f"{tuple(model.input_shape[1:])} in [0, 1], output P(PNEUMONIA)."]
                   if model is not None else [])
    intended_use = intended_use or (
        "Teaching and research: showing how a convolutional network can separate pediatric "
        "chest X-rays with and without pneumonia, and how its decisions can be explained "
        "(Grad-CAM, LIME).")
    limitations = limitations or (
        "Trained on one public dataset of pediatric (age 1-5) chest X-rays from a single "
        "hospital; performance on other hospitals, devices, adults or other diseases is "
        "unknown. Labels are image-level and may be noisy. The decision threshold was chosen "
        "on validation data and the metrics above are estimates with the uncertainty shown.")
    text = "\n".join([
        f"# Model card: {model_name}",
        "",
        "> **Not for clinical use.** This model is a research and teaching prototype. It has "
        "not been validated clinically or approved by any regulator and must not be used to "
        "diagnose, triage or treat patients.",
        "",
        "## Model", "",
        *model_lines,
        "Binary classifier of chest X-rays: NORMAL (0) vs PNEUMONIA (1).", "",
        "## Data", "", data_description.strip(), "",
        "## Training configuration", "", *setting_lines, "",
        "## Validation metrics", "",
        *([f"At the decision threshold P(PNEUMONIA) >= {threshold:.3f}, chosen on validation "
           f"({threshold_rule or 'rule not recorded'}); 95% intervals resample patients.", ""]
          if threshold is not None else []),
        *metric_lines, "",
        *(line for heading, body in (sections or {}).items()
          for line in (f"## {heading}", "", body.strip(), "")),
        "## Intended use", "", intended_use, "",
        "## Limitations", "", limitations, "",
    ])
    path = ModelLayout(out).card
    path.write_text(text)
    return path
