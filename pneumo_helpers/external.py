"""Films from another site or batch: scoring a model on them, and a site operating point.

Validation carved from the training films cannot see what new films do, so a labelled folder
of films from elsewhere (``NORMAL/`` and ``PNEUMONIA/``, or a dataset folder whose ``test/``
holds them) is scored wherever validation is. It may choose (a recipe, an epoch, a
threshold); it never trains weights.

    rows = external.labelled_rows("../shared/data/chest_xray_external")
    p = model.predict(generators.load_images(rows, image_size=model.image_size)[..., 0])
    external.scores(rows["label"], p, threshold=model.threshold)

A **site threshold** is the decision threshold chosen on such a sample by the model's own rule
(:func:`choose_site_threshold`). It is stored beside the model in ``site_threshold.json``
(:class:`pneumo_helpers.runs.SiteThreshold`), never inside ``model.keras``, with the sample's
hash and size and what it implies there, with patient-bootstrap intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import files
from .images import IMAGE_SUFFIXES
from .labels import CLASSES, call, encode_labels, patient_id
from .runs import SiteThreshold

__all__ = ["ExternalError", "labelled_rows", "sample_hash", "scores", "choose_site_threshold",
           "score_candidates", "gap_lines", "MIN_PER_CLASS"]

# Fewer films of a class than this and the threshold it implies moves by more than the
# validation one is off (docs/site_threshold.md, the curve over subsample sizes).
MIN_PER_CLASS = 50


class ExternalError(ValueError):
    """A folder that cannot serve as a labelled external sample; the message says why."""


def _class_root(folder: Path, split: str) -> Path:
    for base in (folder, folder / split):
        if all((base / name).is_dir() for name in CLASSES):
            return base
    raise ExternalError(f"{folder}: expected NORMAL/ and PNEUMONIA/ folders, or a dataset "
                        f"folder with {split}/NORMAL and {split}/PNEUMONIA")


def labelled_rows(folder, *, split: str = "test") -> pd.DataFrame:
    """One row per image of a labelled folder: ``path, label, patient, sha256``.

    ``folder`` holds ``NORMAL/`` and ``PNEUMONIA/`` (searched recursively; hidden files are
    left out), or is a dataset folder whose ``split/`` does.

    Raises:
        ExternalError: no such folder, no class folders, or a class without images.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ExternalError(f"{folder}: no such folder; pass a folder with NORMAL/ and "
                            "PNEUMONIA/ (or a dataset folder with test/)")
    base = _class_root(folder, split)
    rows = []
    for label in CLASSES:
        found = sorted(p for p in (base / label).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(base).parts))
        if not found:
            raise ExternalError(f"{base / label}: no images; both classes are needed")
        rows += [dict(path=str(p), label=label, patient=patient_id(p.name),
                      sha256=files.sha256(p)) for p in found]
    return pd.DataFrame(rows)


def sample_hash(rows: pd.DataFrame) -> str:
    """A short hash of which films (by content) carry which label: names a sample."""
    import hashlib

    text = "\n".join(sorted(f"{s} {label}" for s, label in zip(rows["sha256"], rows["label"])))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scores(y_true, y_prob, *, threshold: float) -> dict[str, float]:
    """ROC AUC, and sensitivity and specificity at ``threshold``, of (N,) labels and P."""
    from sklearn.metrics import roc_auc_score

    y = encode_labels(y_true)
    p = np.asarray(y_prob, dtype=float)
    called = call(p, threshold).astype(bool)
    return dict(roc_auc=float(roc_auc_score(y, p)),
                sensitivity=float(called[y == 1].mean()),
                specificity=float(1.0 - called[y == 0].mean()), n=int(y.size))


def choose_site_threshold(rows: pd.DataFrame, y_prob, *, rule: str, model_sha256: str,
                          n_boot: int = 1000, seed: int = 0) -> SiteThreshold:
    """The threshold ``rule`` picks on a site's labelled sample, with what it implies there.

    Args:
        rows: the sample (``labelled_rows``), (N,) films. y_prob: (N,) P(PNEUMONIA).
        rule: the model's threshold rule (``evaluate.choose_threshold``).
        model_sha256: the ``model.keras`` it was chosen for; a loader ignores the record
            when the model changes.

    Raises:
        ExternalError: one class only, or fewer than :data:`MIN_PER_CLASS` films of a class.
    """
    from . import evaluate

    counts = rows["label"].value_counts()
    short = {c: int(counts.get(c, 0)) for c in CLASSES if counts.get(c, 0) < MIN_PER_CLASS}
    if short:
        raise ExternalError(
            "too few films to choose a site threshold: "
            + ", ".join(f"{n} {c}" for c, n in short.items())
            + f" (at least {MIN_PER_CLASS} of each class; below that the threshold it picks "
            "is further from the best one than the validation threshold is); keep the "
            "model's validation threshold, or add labelled films")
    y = encode_labels(rows["label"])
    threshold = evaluate.choose_threshold(y, y_prob, rule=rule)
    table = evaluate.evaluate(y, y_prob, threshold=threshold, groups=rows["patient"],
                              n_boot=n_boot, seed=seed).set_index("metric")

    def estimate(metric):
        row = table.loc[metric]
        return [float(row["value"]), float(row["ci_low"]), float(row["ci_high"])]
    return SiteThreshold(threshold=threshold, rule=rule, model_sha256=model_sha256,
                         sample_sha256=sample_hash(rows), n_films=len(rows),
                         n_normal=int(counts.get("NORMAL", 0)),
                         n_pneumonia=int(counts.get("PNEUMONIA", 0)),
                         sensitivity=estimate("recall"), specificity=estimate("specificity"),
                         roc_auc=estimate("roc_auc"))


def score_candidates(results, rows: pd.DataFrame, *, cache_dir=None) -> pd.DataFrame:
    """04's candidates (``experiment.CandidateResult``) on external films, beside validation.

    Returns one row per candidate: validation ROC AUC, external ROC AUC, and external
    sensitivity and specificity at the candidate's validation threshold.
    """
    from . import generators, inference

    out, images = [], {}
    for result in results:
        loaded = inference.load_model(result.out_dir, runtime="keras")
        size = loaded.image_size
        if size not in images:
            images[size] = generators.load_images(rows, image_size=size,
                                                  cache_dir=cache_dir)[..., 0]
        at = scores(rows["label"], loaded.predict(images[size]), threshold=result.threshold)
        val = result.metrics.set_index("metric").loc["roc_auc", "value"]
        out.append({"model": result.name, "validation ROC AUC": val,
                    "external ROC AUC": at["roc_auc"],
                    "external sensitivity": at["sensitivity"],
                    "external specificity": at["specificity"]})
    return pd.DataFrame(out).set_index("model")


def gap_lines(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Sentences on how validation compares with external films, from 05's ``evaluate``
    tables (``{"val": ..., "external": ...}``); empty without an external table."""
    if "external" not in tables:
        return []
    cell = {split: t.set_index("metric") for split, t in tables.items()}

    def fmt(split, metric):
        row = cell[split].loc[metric]
        return f"{row['value']:.3f} ({row['ci_low']:.3f}-{row['ci_high']:.3f})"
    n = int(cell["external"]["n"].max())
    return [f"ROC AUC: validation {fmt('val', 'roc_auc')}, external films "
            f"{fmt('external', 'roc_auc')} (n = {n}).",
            f"At the validation threshold, specificity falls from {fmt('val', 'specificity')} "
            f"to {fmt('external', 'specificity')} and sensitivity goes from "
            f"{fmt('val', 'recall')} to {fmt('external', 'recall')}: a threshold chosen on "
            "validation does not carry to new films; a site threshold (pneumo calibrate) is "
            "chosen on them."]
