"""Using a trained model on image files: load it with its settings, check it, predict.

A saved model is a folder written by :func:`pneumo_helpers.train.train_model` — ``model.keras``
plus ``config.json`` (image size, channels, …) and, once chosen on validation,
``val_metrics.json`` holding the decision ``threshold``. The model shipped inside the package
(:data:`SHIPPED_MODEL_DIR`) is one such folder and the default everywhere.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import files
from .metrics_report import MetricsReport
from .runs import ModelLayout, SiteThreshold
from .image_files import collect_images
from .images import ImageError, read_gray, to_unit
from .litert import ExportChanged, LiteModel, matching_export
from .labels import CLASSES, call

__all__ = ["SHIPPED_MODEL_DIR", "MAX_BATCH", "RUNTIMES", "ModelError", "LoadedModel",
           "load_model", "export_litert", "predict_files"]

SHIPPED_MODEL_DIR = Path(__file__).parent / "shipped_model"
MAX_BATCH = 1024  # beyond this a batch only costs memory (64 is as fast on 2 cores)


class ModelError(RuntimeError):
    """A model path that cannot be used; the message names it and what to do."""


@dataclass
class LoadedModel:
    """A Keras model with what is needed to apply it to files.

    Attributes:
        model: Keras model, float32 (B, S, S, C) in [0, 1] -> P(PNEUMONIA) (B, 1).
        image_size: S, in pixels. channels: C.
        threshold: P(PNEUMONIA) at or above which an image is called PNEUMONIA: the site
            threshold when the folder holds one for this model file (``pneumo calibrate``),
            else the one chosen on validation (0.5 when the folder records none).
        threshold_rule: how the threshold was chosen, or ``None``.
        threshold_source: ``"site"``, ``"validation"`` or ``"default"``; with ``"site"``,
            ``site`` is its record (:class:`pneumo_helpers.runs.SiteThreshold`).
        path: where it was loaded from. config: the training config, if any.
        runtime: "keras" or "litert" (see :func:`load_model`).
        digests: sha256 of the files loaded, by name (``model.keras``, ``model.tflite``,
            ``manifest.json``), hashed when they were read.
    """

    model: object
    image_size: int
    channels: int
    threshold: float = 0.5
    threshold_rule: str | None = None
    path: Path | None = None
    config: dict = field(default_factory=dict)
    runtime: str = "keras"
    threshold_source: str = "validation"
    site: SiteThreshold | None = None
    digests: dict = field(default_factory=dict)

    def label(self, probability) -> np.ndarray:
        """``"PNEUMONIA"`` or ``"NORMAL"`` per P(PNEUMONIA) (N,), at :attr:`threshold`; the one
        place a probability becomes a call. NaN (no prediction) gives ``""``."""
        p = np.asarray(probability, dtype=float)
        return np.where(np.isnan(p), "", np.asarray(CLASSES)[call(p, self.threshold)])

    def threshold_note(self) -> str:
        """One line saying which threshold calls the films, for a command's output."""
        if self.threshold_source == "site":
            return (f"threshold {self.threshold:.3f}: site threshold ({self.site.rule} on "
                    f"{self.site.n_films} labelled films, sample {self.site.sample_sha256})")
        if self.threshold_source == "validation":
            return f"threshold {self.threshold:.3f}: validation ({self.threshold_rule})"
        return f"threshold {self.threshold:.3f}: default (the folder records none)"

    @property
    def sha256(self) -> str | None:
        """sha256 of ``model.keras`` as loaded: names the model an evaluation belongs to."""
        return self.digests.get("model.keras")

    def provenance(self) -> dict[str, str]:
        """What ran, for a report: the runtime, the file it read and that file's sha256 (taken
        from the bytes loaded), ``model.keras``'s sha256 and the folder manifest's, if any."""
        ran = "model.tflite" if self.runtime == "litert" else "model.keras"
        out = {"model_sha256": self.sha256, "runtime": self.runtime, "ran_file": ran,
               "ran_sha256": self.digests.get(ran)}
        if "manifest.json" in self.digests:
            out["manifest_sha256"] = self.digests["manifest.json"]
        return {k: v for k, v in out.items() if v is not None}

    def predict(self, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """P(PNEUMONIA) float (N,) of uint8 gray images (N, S, S).

        The one input contract of every prediction path: uint8 pixels as decoded, scaled to
        [0, 1] here and nowhere else. Float input is refused rather than guessed at (divided by
        255 a second time, a film becomes a near-blank image the model calls PNEUMONIA).
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 3 \
                or images.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(f"predict expects uint8 gray images (N, {self.image_size}, "
                             f"{self.image_size}) as read_gray gives them; got dtype "
                             f"{images.dtype} and shape {images.shape}")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be in 1..{MAX_BATCH}, got {batch_size}")
        out = np.zeros(len(images), np.float32)
        # Every call gets exactly batch_size images (the last batch padded with zeros): a new
        # input shape makes TensorFlow trace the model again, ~0.1 s — a sixth of the time of
        # predicting 624 files. predict_on_batch runs the compiled inference function (2-3x
        # faster than eager calls) without model.predict's per-call set-up.
        x = np.zeros((batch_size, self.image_size, self.image_size, self.channels), np.float32)
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x[:len(chunk)] = to_unit(chunk)[..., None]
            x[len(chunk):] = 0.0
            out[start:start + len(chunk)] = np.asarray(
                self.model.predict_on_batch(x)).reshape(-1)[:len(chunk)]
        if not np.all((out >= 0.0) & (out <= 1.0)):  # also catches NaN
            raise ModelError(f"{self.path}: the model returned values outside [0, 1] "
                             f"({out[~((out >= 0) & (out <= 1))][:3].tolist()}...): they are "
                             "not probabilities")
        return out


RUNTIMES = ("auto", "keras", "litert")


def export_litert(folder: str | Path, *, tolerance: float = 1e-4) -> Path:
    """Write ``model.tflite`` next to ``model.keras`` in a model folder, checked.

    The export's ``export.json`` records the sha256 of the ``model.keras`` it was made from,
    so :func:`load_model` uses it only while it still matches, and the largest difference
    between the two runtimes on the bundled sample, which must stay within ``tolerance``.

    Raises:
        ModelError: the export's predictions differ from Keras' by more than ``tolerance``.
    """
    from .config import SAMPLE_DIR

    folder = Path(folder)
    target = ModelLayout(folder)
    keras_model = load_model(folder, runtime="keras")
    keras_model.model.export(str(target.lite), format="litert", verbose=False)
    lite = _loaded(LiteModel(target.lite), folder, target.model)
    sample = collect_images([SAMPLE_DIR])
    a = predict_files(keras_model, sample)["probability"].to_numpy()
    b = predict_files(lite, sample)["probability"].to_numpy()
    difference = float(np.nanmax(np.abs(a - b)))
    if not difference <= tolerance:
        target.lite.unlink()
        raise ModelError(f"LiteRT export of {folder} differs from Keras by {difference:.2e} "
                         f"(> {tolerance}); not kept")
    with files.atomic_write(target.export) as handle:
        handle.write(json.dumps(dict(
            model_sha256=files.sha256(target.model), lite_sha256=files.sha256(target.lite),
            format="litert", max_abs_difference=difference,
            checked_on=f"bundled sample ({len(sample)} images)"), indent=2) + "\n")
    target.refresh_manifest()  # the folder was checked as it was loaded above
    return target.lite


def load_model(path: str | Path | None = None, *, runtime: str = "auto") -> LoadedModel:
    """Load a saved model folder (or a bare ``.keras`` file); default: the shipped model.

    Args:
        runtime: ``"keras"`` (TensorFlow; what training, Grad-CAM and LIME need),
            ``"litert"`` (the folder's ``model.tflite``, without TensorFlow) or ``"auto"``:
            LiteRT when the folder holds an export made from this very ``model.keras`` (see
            :func:`export_litert`) and ``ai_edge_litert`` is installed, else Keras.

    Raises:
        ModelError: missing path, a file that is not a model, or a model that breaks the
            contract (one square image input, one output in [0, 1], a threshold in (0, 1)).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    path = Path(path).expanduser() if path else SHIPPED_MODEL_DIR
    model_file = ModelLayout(path).model if path.is_dir() else path
    if not model_file.is_file():
        hint = (" (the shipped model is missing: reinstall the package or run make train-full)"
                if path == SHIPPED_MODEL_DIR else "")
        raise ModelError(f"no model at {model_file}{hint}; pass a folder holding model.keras "
                         "or a .keras file")
    folder = model_file.parent
    digests = _check_folder(folder, shipped=path == SHIPPED_MODEL_DIR)
    digests["model.keras"] = digests.get("model.keras") or files.sha256(model_file)
    if runtime != "keras":
        record = matching_export(folder, digests["model.keras"])
        usable = record is not None
        if usable:
            try:
                model = LiteModel(ModelLayout(folder).lite,
                                  expected_sha256=record.get("lite_sha256"))
            except ImportError:
                usable = False
            except ExportChanged as exc:
                raise ModelError(str(exc)) from None
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"{ModelLayout(folder).lite}: not a LiteRT model ({exc}); delete "
                                 "it to use model.keras") from None
        if usable:
            digests["model.tflite"] = model.sha256
        if not usable and runtime == "litert":
            raise ModelError(f"{folder}: no LiteRT export matching model.keras (and "
                             "ai_edge_litert installed); make one with "
                             "inference.export_litert")
        if usable:
            return _loaded(model, folder, model_file, digests)
    import keras

    from . import models

    try:
        model = keras.models.load_model(model_file, compile=False,
                                        custom_objects=models.CUSTOM_OBJECTS)
    except Exception as exc:  # zip, h5 or config errors all mean "not a Keras model file"
        raise ModelError(f"{model_file} is not a Keras model file Keras can load "
                         f"({type(exc).__name__}); pass a .keras file saved by model.save") \
            from None
    return _loaded(model, folder, model_file, digests)


def _check_folder(folder: Path, *, shipped: bool) -> dict[str, str]:
    """The sha256 of the folder's files by name, every one checked against its manifest
    (:meth:`pneumo_helpers.runs.ModelLayout.check_manifest`), with the manifest's own;
    ``{}`` for a folder without one, except the shipped model, which must have one."""
    layout = ModelLayout(folder)
    try:
        listed = layout.check_manifest()
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if listed is None:
        if shipped:
            raise ModelError(f"{layout.manifest}: missing, so the shipped model cannot be "
                             "checked; reinstall the package")
        return {}
    return {**listed, "manifest.json": files.sha256(layout.manifest)}


def _loaded(model, folder: Path, model_file: Path,
            digests: dict | None = None) -> LoadedModel:
    layout = ModelLayout(folder)
    config = _read_json(layout.config)
    try:
        metrics = MetricsReport.read(layout.val_metrics) if layout.val_metrics.is_file() \
            else MetricsReport(metrics={}, threshold=0.5)
    except ValueError as exc:
        raise ModelError(f"{exc}; restore it from the model's training run or remove it to "
                         "use the threshold 0.5") from None
    size, channels = _check_contract(model, model_file)
    recorded = config.get("image_size")
    if recorded is not None and recorded != size:  # films would be resized for another model
        raise ModelError(f"{layout.config}: image_size {recorded} but {model_file.name} takes "
                         f"{size} px; restore the folder's files from one training")
    threshold = metrics.threshold
    if threshold is None or not 0.0 < threshold < 1.0:  # NaN fails this too
        raise ModelError(f"{layout.val_metrics}: threshold {threshold!r} is not a "
                         "number between 0 and 1; re-choose it on validation "
                         "(evaluate.choose_threshold) or remove the file to use 0.5")
    source = "validation" if layout.val_metrics.is_file() else "default"
    try:
        site = SiteThreshold.read(folder)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    keras_sha256 = (digests or {}).get("model.keras") or files.sha256(model_file)
    if site is not None and site.model_sha256 == keras_sha256:
        threshold, rule, source = site.threshold, site.rule, "site"
    else:  # a record made for another model file does not apply
        site, rule = None, metrics.rule
    return LoadedModel(model=model, image_size=size, channels=channels,
                       threshold=float(threshold), threshold_rule=rule,
                       path=folder, config=config,
                       runtime="litert" if isinstance(model, LiteModel) else "keras",
                       threshold_source=source, site=site, digests=dict(digests or {}))


def _check_contract(model, model_file: Path) -> tuple[int, int]:
    """(S, C) of a model that takes one (B, S, S, C) image and gives one P in [0, 1] (B, 1).

    Probed on two images: a model of another kind (two softmax outputs, unbounded scores,
    a flat input) would otherwise give numbers that look like probabilities.
    """
    n_inputs = getattr(model, "n_inputs", None) or len(model.inputs)
    n_outputs = getattr(model, "n_outputs", None) or len(model.outputs)
    shape = tuple(model.input_shape) if n_inputs == 1 else None
    if shape is None or len(shape) != 4 or shape[1] != shape[2] or shape[1] is None \
            or shape[3] not in (1, 3):
        raise ModelError(f"{model_file}: expected one square image input (batch, S, S, 1 or 3), "
                         f"found {n_inputs} input(s) of shape {getattr(model, 'input_shape', '?')}"
                         "; this is not a pneumo model")
    if n_outputs != 1 or tuple(model.output_shape)[1:] != (1,):
        raise ModelError(f"{model_file}: expected one output P(PNEUMONIA) of shape (batch, 1), "
                         f"found {n_outputs} output(s) of shape {model.output_shape}; this is "
                         "not a pneumo model (a two-class softmax model must be converted first)")
    last = None
    if getattr(model, "layers", None):  # a Keras model (TensorFlow is imported already)
        from .models import output_layer
        last = output_layer(model)
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if activation is not None and activation != "sigmoid":
        raise ModelError(f"{model_file}: the output layer's activation is {activation}, not "
                         "sigmoid: its outputs are not probabilities; this is not a pneumo model")
    probe = np.random.default_rng(0).uniform(0.0, 1.0, (2, *shape[1:])).astype(np.float32)
    probe[1] = 0.5
    p = np.asarray(model.predict_on_batch(probe), dtype=np.float64)
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise ModelError(f"{model_file}: outputs {p.ravel().round(3).tolist()} on test images "
                         "are not probabilities in [0, 1] (no sigmoid at the end?); this is "
                         "not a pneumo model")
    return int(shape[1]), int(shape[3])


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}); restore it from the model's "
                         "training run") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def predict_files(loaded: LoadedModel, files, *, batch_size: int = 64,
                  workers: int = 2, prefetch: int = 2) -> pd.DataFrame:
    """Predict every file; files that cannot be read get an ``error`` and no probability.

    Decoding overlaps prediction: while the model runs on one batch, ``workers`` threads
    decode the next ``prefetch`` batches (OpenCV and TensorFlow both release the GIL), so the
    two cores are never idle waiting for each other and memory stays bounded by
    ``prefetch + 1`` batches whatever the number of files.

    Returns:
        DataFrame with columns file, probability (P(PNEUMONIA), NaN on error), label
        (``NORMAL``/``PNEUMONIA`` at ``loaded.threshold``, empty on error) and error, one
        row per file in the given order.
    """
    files = list(files)
    probability = np.full(len(files), np.nan)
    errors = [""] * len(files)

    def read(i):
        try:
            return read_gray(files[i], size=loaded.image_size, film=True)
        except ImageError as exc:
            reason = exc.reason
        except (OSError, MemoryError) as exc:
            reason = f"cannot be read ({type(exc).__name__}: {exc})"
        except Exception as exc:  # one file never stops the batch, whatever it does
            reason = (f"pneumo failed on this file ({type(exc).__name__}: {str(exc)[:120]}); "
                      "no label — please report it")
        errors[i] = reason
        return None

    def run(batch, decoded):
        ok = [i for i, image in zip(batch, decoded) if image is not None]
        if ok:
            images = np.stack([image for image in decoded if image is not None])
            probability[ok] = loaded.predict(images, batch_size=batch_size)

    batches = [range(start, min(start + batch_size, len(files)))
               for start in range(0, len(files), batch_size)]
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for batch in batches:
            pending.append((batch, [pool.submit(read, i) for i in batch]))
            if len(pending) > prefetch:
                done, futures = pending.popleft()
                run(done, [f.result() for f in futures])
        while pending:
            done, futures = pending.popleft()
            run(done, [f.result() for f in futures])
    table = pd.DataFrame(dict(file=[str(f) for f in files], probability=probability,
                              error=errors))
    table["label"] = loaded.label(table["probability"])
    return table[["file", "probability", "label", "error"]]
