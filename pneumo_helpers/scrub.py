"""Step 02, scrub: validate every image, remove duplicates and leaks, split by patient.

:func:`scrub` decodes every image of a manifest, sets bad files aside with a reason, finds
exact duplicates and patients that appear in two splits, and cuts patient-level validation
(and, where the dataset has none, test) splits. Problems with the data are returned as
tables, never raised, so one bad file never stops a run. :func:`run` is notebook 02: the scrub
of one run's manifest, written into its run folder.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import RunConfig
from .dataset import SPLITS, DatasetError, count_table
from .images import ImageError, read_gray
from .labels import CLASSES
from .runs import write_csv

__all__ = ["validate_images", "find_duplicates", "patients_in_several_splits",
           "split_by_patient", "ScrubResult", "scrub", "run"]

# Decoding releases the GIL for most of its time: a few threads keep both cores busy.
_THREADS = 4


def _check(path: str) -> str | None:
    try:
        read_gray(path, size=64)  # full entropy decode at reduced scale catches truncation
    except ImageError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def validate_images(manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every image; return ``(good, bad)``.

    ``bad`` has the columns path, split, label and reason (zero-byte, not an image, corrupt or
    truncated, unreadable). Nothing on disk is changed. RGBA, 16-bit and palette images are
    good: the loader converts them.
    """
    with ThreadPoolExecutor(_THREADS) as pool:
        reasons = list(pool.map(_check, manifest["path"], chunksize=64))
    reasons = pd.Series(reasons, index=manifest.index, dtype=object)
    bad = manifest.loc[reasons.notna(), ["path", "split", "label"]].assign(
        reason=reasons[reasons.notna()])
    return manifest.loc[reasons.isna()].copy(), bad.reset_index(drop=True)


def find_duplicates(manifest: pd.DataFrame) -> pd.DataFrame:
    """Files whose bytes are identical (same sha256), with where each copy sits.

    Columns: sha256, path, split, label, patient, copies, kind (``within split`` or
    ``across splits``), sorted so copies sit together.
    """
    groups = manifest.groupby("sha256")
    copies = groups["path"].transform("size")
    dup = manifest.loc[copies > 1, ["sha256", "path", "split", "label", "patient"]].copy()
    dup["copies"] = copies[copies > 1]
    n_splits = dup.groupby("sha256")["split"].transform("nunique")
    dup["kind"] = np.where(n_splits > 1, "across splits", "within split")
    return dup.sort_values(["sha256", "path"]).reset_index(drop=True)


def patients_in_several_splits(manifest: pd.DataFrame, column: str = "split") -> pd.DataFrame:
    """Patients whose images sit in more than one split: leakage if left alone.

    Returns one row per such patient with the splits and image count.
    """
    per = manifest.groupby("patient")[column].agg(lambda s: ",".join(sorted(set(s))))
    counts = manifest.groupby("patient").size()
    leaks = per[per.str.contains(",")]
    return pd.DataFrame({"patient": leaks.index, "splits": leaks.values,
                         "images": counts[leaks.index].values})


def split_by_patient(manifest: pd.DataFrame, fraction: float, *, seed: int = 42,
                     name: str = "val", source: str = "train") -> pd.DataFrame:
    """Move about ``fraction`` of ``source``'s patients, stratified by class, to split ``name``.

    Uses scikit-learn's ``StratifiedGroupKFold``: every image of a patient ends up in the same
    split and the class ratio is kept. Returns a copy with the ``split`` column updated.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    out = manifest.copy()
    pool = out[out["split"] == source]
    # Tiny datasets have fewer patients per class than folds: use coarser folds, never none.
    fewest = int(pool.groupby("label")["patient"].nunique().reindex(list(CLASSES)).fillna(0).min())
    if fewest < 2:
        raise DatasetError(f"cannot cut a '{name}' split by patient: a class in '{source}' has "
                           f"{fewest} patient(s); add images or provide a {name}/ folder")
    n_splits = min(max(2, round(1 / fraction)), fewest)
    from sklearn.model_selection import StratifiedGroupKFold  # not needed to predict

    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(folds.split(pool, pool["label"], groups=pool["patient"]))
    out.loc[pool.index[held], "split"] = name
    return out


@dataclass
class ScrubResult:
    """What :func:`scrub` found: the manifest it scrubbed, the clean manifest and one table
    per kind of problem."""

    manifest: pd.DataFrame
    clean: pd.DataFrame
    bad: pd.DataFrame
    duplicates: pd.DataFrame
    leaks: pd.DataFrame
    dropped: pd.DataFrame

    def before_after(self) -> pd.DataFrame:
        """Images per split and class in the scrubbed manifest and in the clean one."""
        before = count_table(self.manifest, "split")[list(CLASSES)].add_prefix("before ")
        after = count_table(self.clean, "split")[list(CLASSES)].add_prefix("after ")
        table = before.join(after, how="outer").fillna(0).astype(int)
        return table.loc[[s for s in SPLITS if s in table.index]]


def scrub(manifest: pd.DataFrame, *, val_fraction: float = 0.15,
          test_fraction: float = 0.15, seed: int = 42) -> ScrubResult:
    """Validate, de-duplicate and re-split a manifest by patient.

    - Bad files are set aside (``bad``) with their reason.
    - Exact duplicates: one copy is kept; a copy that also sits in ``test`` keeps the test one,
      so no test image is trained on. Extra copies go to ``dropped``.
    - Kaggle's ``val`` (16 images) is folded into ``train``; a patient-level, class-stratified
      validation split is cut from it, the same patients for any ``test_fraction``. When the
      dataset has no ``test`` split, one is then cut the same way from the rest (unless
      ``test_fraction`` is 0, e.g. to train a final model on all data): it never shares a
      patient with the validation split of any ``test_fraction``. Patients of ``train`` that
      also appear in ``test`` are dropped from training. The original split is kept in
      ``orig_split``.
    """
    good, bad = validate_images(manifest)
    good = good.assign(orig_split=good["split"])
    good["split"] = good["split"].replace({"val": "train"})

    # Keep one copy per hash, preferring test so nothing tested on is also trained on.
    rank = good["split"].map({"test": 0, "train": 1})
    ordered = good.assign(_rank=rank).sort_values(["_rank", "path"])
    first = ~ordered.duplicated("sha256", keep="first")
    duplicates = find_duplicates(manifest.loc[good.index])
    dropped = ordered.loc[~first].assign(reason="duplicate of another file")
    kept = ordered.loc[first]

    test_patients = set(kept.loc[kept["split"] == "test", "patient"])
    leaking = (kept["split"] == "train") & kept["patient"].isin(test_patients)
    leaks = patients_in_several_splits(kept)
    dropped = pd.concat([dropped, kept.loc[leaking].assign(
        reason="patient also in test split")])
    kept = kept.loc[~leaking]

    # Validation first, so it holds the same patients whatever test_fraction is: the split
    # that chose recipes, models and thresholds (pneumo train, the sweep: test_fraction 0) is
    # then never the carved test split of a run, which stays untouched by every choice.
    kept = split_by_patient(kept, val_fraction, seed=seed, name="val")
    if (kept["split"] == "test").sum() == 0 and test_fraction > 0:
        kept = split_by_patient(kept, test_fraction / (1 - val_fraction), seed=seed,
                                name="test")

    clean = kept.drop(columns="_rank").sort_index()
    dropped = dropped.drop(columns="_rank")[["path", "split", "label", "patient", "reason"]]
    return ScrubResult(manifest=manifest, clean=clean.reset_index(drop=True), bad=bad,
                       duplicates=duplicates, leaks=leaks, dropped=dropped.reset_index(drop=True))


def run(cfg: RunConfig) -> ScrubResult:
    """Notebook 02 for the run ``cfg``: scrub its ``manifest.csv`` (01) with the run's
    fractions and split seed, and write ``clean_manifest.csv``, ``bad_files.csv``,
    ``duplicates.csv`` and ``dropped.csv`` into the run folder."""
    result = scrub(pd.read_csv(cfg.layout.manifest), val_fraction=cfg.val_fraction,
                   test_fraction=cfg.test_fraction, seed=cfg.split_seed)
    layout = cfg.layout
    for path, table in ((layout.bad_files, result.bad), (layout.duplicates, result.duplicates),
                        (layout.dropped, result.dropped), (layout.clean_manifest, result.clean)):
        write_csv(path, table)
    return result
