"""Finding the dataset, describing every file in a manifest, and cleaning it.

The flow (notebooks 01 and 02):

1. :func:`locate_dataset` picks a folder: an explicit path, ``$PNEUMO_DATA_DIR``, a kagglehub
   download when credentials and network exist, else the bundled sample.
2. :func:`build_manifest` lists every file of the Kaggle layout
   ``{train,val,test}/{NORMAL,PNEUMONIA}/*`` with its patient, subtype, hash and header facts.
3. :func:`scrub` decodes every image, sets bad files aside with a reason, finds exact duplicates
   and patients that appear in two splits, and cuts patient-level validation (and, where the
   dataset has none, test) splits.

Problems with the data are returned as tables, never raised, so one bad file never stops a run;
a dataset that cannot be used at all (wrong path, missing ``train``, an empty or misnamed class
folder) raises :class:`DatasetError` with a message that says what to do.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import files
from .config import SAMPLE_DIR
from .images import ImageError, describe, read_gray
from .labels import CLASSES, patient_id, subtype

__all__ = [
    "CLASSES", "SPLITS", "KAGGLE_DATASET", "DatasetError", "DatasetLocation",
    "patient_id", "subtype", "locate_dataset", "find_root", "build_manifest",
    "validate_images", "find_duplicates", "patients_in_several_splits", "split_by_patient",
    "scrub", "ScrubResult", "count_table", "manifest_hash", "checksum_file",
    "verify_checksums", "not_taken", "size_summary",
]

SPLITS = ("train", "val", "test")
KAGGLE_DATASET = "paultimothymooney/chest-xray-pneumonia"
MANIFEST_COLUMNS = ["path", "split", "label", "subtype", "patient", "sha256", "width",
                    "height", "mode", "bytes"]


class DatasetError(RuntimeError):
    """The dataset folder cannot be used; the message says why and what to do."""


# --- Patients and subtypes, from the file name --------------------------------------------

# --- Locating a dataset -------------------------------------------------------------------

@dataclass
class DatasetLocation:
    """Where the data came from: ``path`` (the folder holding ``train/``), ``source``
    (``"given"``, ``"environment"``, ``"kagglehub"`` or ``"sample"``) and a one-line message."""

    path: Path
    source: str
    message: str

    @property
    def is_sample(self) -> bool:
        return self.source == "sample"


def find_root(path: str | Path) -> Path:
    """The folder holding ``train/`` at ``path`` or up to two levels below it.

    Kaggle's archive nests ``chest_xray/chest_xray/`` (and a ``__MACOSX`` copy); users point at
    any of these levels.

    Raises:
        DatasetError: the path does not exist or holds no ``train`` folder.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DatasetError(f"dataset folder {path} does not exist; pass the folder that holds "
                           "train/ (and val/, test/), e.g. .../chest_xray")
    if not path.is_dir():
        raise DatasetError(f"{path} is a file; pass the dataset folder that holds train/")
    candidates = [path]
    for depth in range(2):
        candidates += [c for p in candidates[:] for c in sorted(p.iterdir())
                       if c.is_dir() and not c.name.startswith(("__", "."))
                       and c not in candidates]
    for candidate in candidates:
        if (candidate / "train").is_dir():
            return candidate
    found = ", ".join(sorted(p.name for p in path.iterdir() if p.is_dir())) or "no folders"
    raise DatasetError(f"{path} holds no train/ folder (found: {found}); expected the Kaggle "
                       "layout chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/ — see setup.yml")


def _kaggle_credentials() -> bool:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    home = Path.home()
    return any(p.is_file() for p in (home / ".kaggle" / "kaggle.json",
                                     home / ".config" / "kaggle" / "kaggle.json"))


def _download_with_kagglehub() -> Path:
    import kagglehub  # optional extra: pip install pneumo[download]

    return Path(kagglehub.dataset_download(KAGGLE_DATASET))


def locate_dataset(path: str | Path | None = None, *, download: bool = True) -> DatasetLocation:
    """Pick the dataset folder for a run.

    Order: ``path``; ``$PNEUMO_DATA_DIR``; a kagglehub download (cached by kagglehub) when
    ``download`` is true and Kaggle credentials exist; else the bundled sample. A failed
    download (offline, no kagglehub, bad credentials) falls back to the sample with a one-line
    message. An explicit path that is wrong raises instead: silently running on other data
    than asked would be worse.
    """
    if path:
        return DatasetLocation(find_root(path), "given",
                               f"Using the dataset folder {Path(path).name}/ given to the run.")
    env = os.environ.get("PNEUMO_DATA_DIR")
    if env:
        return DatasetLocation(find_root(env), "environment",
                               f"Using the dataset folder {Path(env).name}/ of $PNEUMO_DATA_DIR.")
    reason = "no Kaggle credentials"
    if download and _kaggle_credentials():
        try:
            return DatasetLocation(find_root(_download_with_kagglehub()), "kagglehub",
                                   f"Downloaded {KAGGLE_DATASET} with kagglehub.")
        except ImportError:
            reason = "kagglehub is not installed (pip install kagglehub)"
        except Exception as exc:  # offline, 403, bad archive: all mean "use the sample"
            reason = f"kagglehub download failed ({type(exc).__name__}: {str(exc)[:80]})"
    return DatasetLocation(
        SAMPLE_DIR, "sample",
        f"*** BUNDLED SAMPLE *** no dataset given ({reason}); running on the small bundled "
        "sample — results say nothing about real performance. Pass DATA=/path/to/chest_xray.")


# --- The manifest -------------------------------------------------------------------------

def _scan(root: Path, *, ignore_unknown: bool = False) -> list[tuple[Path, str, str]]:
    files = []
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        subdirs = sorted(d.name for d in split_dir.iterdir()
                         if d.is_dir() and not d.name.startswith((".", "__")))
        misnamed = [d for d in subdirs if d not in CLASSES]
        missing = [c for c in CLASSES if c not in subdirs]
        if missing:
            hint = f" (found {', '.join(misnamed)}; rename to NORMAL and PNEUMONIA)" \
                if misnamed else ""
            raise DatasetError(f"{split_dir} has no {' or '.join(missing)} folder{hint}")
        if misnamed and not ignore_unknown:
            raise DatasetError(
                f"{split_dir} holds {', '.join(f'{d}/' for d in misnamed)} besides NORMAL/ and "
                "PNEUMONIA/: its images have no known label. Move them into a class folder, or "
                "leave them out on purpose with ignore_unknown_folders (PNEUMO_IGNORE_UNKNOWN_"
                "FOLDERS=1); they are then listed as not taken")
        for label in CLASSES:
            class_dir = split_dir / label
            entries = sorted(p for p in class_dir.rglob("*")
                             if p.is_file() and not p.name.startswith("."))
            if not entries:
                raise DatasetError(f"{class_dir} is empty; every split needs images of both "
                                   "classes — copy them there or remove the split folder")
            files += [(p, split, label) for p in entries]
    return files


def not_taken(root: str | Path) -> pd.DataFrame:
    """Files under a dataset folder that no split and class takes, with the reason.

    What :func:`build_manifest` leaves out must be said, not dropped in silence: images lying
    directly in ``train/``, in a folder that is not a class (``train/normal_extra/``), or
    outside the split folders. Hidden files (``.DS_Store``) and ``__MACOSX`` copies are not
    listed.

    Returns:
        DataFrame with columns ``path`` and ``reason``, sorted by path.
    """
    root = find_root(root)
    rows = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or any(p.startswith((".", "__")) for p in parts):
            continue
        if parts[0] not in SPLITS:
            reason = "outside the split folders (train/, val/, test/)"
        elif len(parts) == 2:
            reason = f"directly in {parts[0]}/, not in a class folder"
        elif parts[1] not in CLASSES:
            reason = f"in {parts[0]}/{parts[1]}/, which is not a class (NORMAL, PNEUMONIA)"
        else:
            continue
        rows.append(dict(path=str(path), reason=reason))
    return pd.DataFrame(rows, columns=["path", "reason"])


def _file_row(item: tuple[Path, str, str]) -> dict:
    path, split, label = item
    row = dict(path=str(path), split=split, label=label, subtype=subtype(path.name, label),
               patient=patient_id(path.name), bytes=path.stat().st_size)
    try:
        row["sha256"] = files.sha256(path)
    except OSError:
        row["sha256"] = None
    try:
        facts = describe(path)
        row.update(width=facts["width"], height=facts["height"], mode=facts["mode"])
    except ImageError:
        row.update(width=None, height=None, mode=None)
    return row


def build_manifest(root: str | Path, *, workers: int = 4,
                   ignore_unknown: bool = False) -> pd.DataFrame:
    """One row per file under ``root/{train,val,test}/{NORMAL,PNEUMONIA}``.

    Columns: path, split, label, subtype, patient, sha256, width, height, mode, bytes. Header
    facts of unreadable files are left empty; :func:`validate_images` says what is wrong.
    What is left out is listed by :func:`not_taken`.

    Args:
        ignore_unknown: leave out folders of a split that are not a class instead of raising.

    Raises:
        DatasetError: no ``train`` split, a split with a missing, misnamed or empty class, or
            (unless ``ignore_unknown``) a folder in a split that is not a class.
    """
    root = find_root(root)
    files = _scan(root, ignore_unknown=ignore_unknown)
    with ThreadPoolExecutor(workers) as pool:
        rows = list(pool.map(_file_row, files, chunksize=64))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return manifest.astype({"width": "Int64", "height": "Int64"})


def manifest_hash(manifest: pd.DataFrame) -> str:
    """A short hash of the manifest's files and splits: which data a model saw."""
    text = "\n".join(manifest["sha256"].astype(str) + manifest["split"].astype(str)
                     + manifest["label"].astype(str))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def size_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Original image sizes per class, in a few columns a reader can take in.

    Returns:
        DataFrame indexed by label: ``images``, ``distinct sizes``, ``width px`` and
        ``height px`` as ``min–max (median)`` (or the one value), and the median ``aspect``
        (width / height).
    """
    def span(values: pd.Series) -> str:
        lo, mid, hi = int(values.min()), int(values.median()), int(values.max())
        return f"{lo}" if lo == hi else f"{lo}–{hi} (median {mid})"

    rows = {}
    for label, group in manifest.dropna(subset=["width", "height"]).groupby("label"):
        rows[label] = {"images": len(group),
                       "distinct sizes": len(group[["width", "height"]].drop_duplicates()),
                       "width px": span(group["width"]), "height px": span(group["height"]),
                       "aspect": round(float((group["width"] / group["height"]).median()), 2)}
    return pd.DataFrame.from_dict(rows, orient="index")


def count_table(manifest: pd.DataFrame, by: str = "split") -> pd.DataFrame:
    """Images per ``by`` and class, with totals and the share of PNEUMONIA."""
    table = pd.crosstab(manifest[by], manifest["label"]).reindex(columns=list(CLASSES),
                                                                  fill_value=0)
    order = [s for s in SPLITS if s in table.index] + [s for s in table.index if s not in SPLITS]
    table = table.loc[order]
    table["total"] = table.sum(axis=1)
    table["% pneumonia"] = (100 * table["PNEUMONIA"] / table["total"]).round(1)
    table.columns.name = None
    return table


# --- Checksums: are these the files, under the labels, that the dataset was published with? --

def checksum_file(root: str | Path) -> Path | None:
    """The sha256 list shipped beside a dataset folder, or ``None``.

    Looked for as ``<root>.sha256`` or ``<root>_*.sha256`` next to ``root`` (the bundled sample
    has ``chest_xray.sha256``; the shared copy of the real data ``chest_xray_train.sha256``).
    """
    root = Path(root)
    found = sorted(root.parent.glob(f"{root.name}.sha256")) + \
        sorted(root.parent.glob(f"{root.name}_*.sha256"))
    # chest_xray_external.sha256 also matches chest_xray_*: keep lists of this folder's files.
    return next((path for path in found if _lists_folder(path, root.name)), None)


def _lists_folder(sums_file: Path, folder: str) -> bool:
    """Whether the first entry of a sha256 list lies under ``folder/``."""
    with open(sums_file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                rel = line.split(maxsplit=1)[-1].strip().lstrip("*")
                return rel.split("/", 1)[0] == folder
    return False


def verify_checksums(manifest: pd.DataFrame, root: str | Path,
                     sums_file: str | Path | None = None) -> str:
    """Check every listed file is present, unchanged and under its listed split and class.

    A moved file (say from ``train/NORMAL`` to ``train/PNEUMONIA``) keeps its hash, so a
    swapped label is named as such rather than as "one missing, one extra". Files of the
    manifest in splits the list does not cover are ignored (the shared copy lists only
    ``train``).

    Args:
        manifest: from :func:`build_manifest` (``path``, ``sha256``).
        root: the dataset folder the manifest was built from.
        sums_file: lines ``<sha256>  <folder>/<split>/<class>/<name>`` (``sha256sum`` format),
            paths relative to the folder that holds ``root``; default: :func:`checksum_file`.

    Returns:
        One line: ``"<n> files match <list name>"``, or that there is no list to check.

    Raises:
        DatasetError: any file missing, changed, moved or unlisted; the message names up to
            five and says what to do.
    """
    root = Path(root)
    sums_file = Path(sums_file) if sums_file else checksum_file(root)
    if sums_file is None:
        return f"no checksum list beside {root.name}/: files not verified"
    listed: dict[str, str] = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            listed[rel.strip().lstrip("*")] = digest
    if not listed:
        raise DatasetError(f"{sums_file.name} lists no files")
    covered = {rel.split("/")[1] for rel in listed}  # the splits the list covers
    found = {f"{root.name}/{Path(p).relative_to(root).as_posix()}": h
             for p, h in zip(manifest["path"], manifest["sha256"])
             if Path(p).relative_to(root).parts[0] in covered}
    where_listed = {digest: rel for rel, digest in listed.items()}
    problems = []
    for rel, digest in found.items():
        if listed.get(rel) == digest:
            continue
        if digest in where_listed and where_listed[digest] != rel:
            problems.append(f"{rel} is listed as {where_listed[digest]} (moved: its label "
                            "or split changed)")
        elif rel in listed:
            problems.append(f"{rel} differs from the listed file (changed or damaged)")
        else:
            problems.append(f"{rel} is not in the list")
    moved_from = {where_listed[d] for r, d in found.items()
                  if d in where_listed and where_listed[d] != r}
    problems += [f"{rel} is missing" for rel in listed
                 if rel not in found and rel not in moved_from]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DatasetError(f"{len(problems)} files do not match {sums_file.name}: "
                           + "; ".join(problems[:5]) + more + ". Restore the original files "
                           "(git checkout for the bundled sample), or pass a dataset without "
                           "a checksum list if the changes are intended")
    return f"{len(found)} files match {sums_file.name}"


# --- Validation, duplicates, leakage ------------------------------------------------------

def _check(path: str) -> str | None:
    try:
        read_gray(path, size=64)  # full entropy decode at reduced scale catches truncation
    except ImageError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def validate_images(manifest: pd.DataFrame, *, workers: int = 4) -> tuple[pd.DataFrame,
                                                                          pd.DataFrame]:
    """Decode every image; return ``(good, bad)``.

    ``bad`` has the columns path, split, label and reason (zero-byte, not an image, corrupt or
    truncated, unreadable). Nothing on disk is changed. RGBA, 16-bit and palette images are
    good: the loader converts them.
    """
    with ThreadPoolExecutor(workers) as pool:
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
    """What :func:`scrub` found: the clean manifest and one table per kind of problem."""

    clean: pd.DataFrame
    bad: pd.DataFrame
    duplicates: pd.DataFrame
    leaks: pd.DataFrame
    dropped: pd.DataFrame

    def before_after(self, manifest: pd.DataFrame) -> pd.DataFrame:
        """Images per split and class in the raw manifest and in the clean one."""
        before = count_table(manifest, "split")[list(CLASSES)].add_prefix("before ")
        after = count_table(self.clean, "split")[list(CLASSES)].add_prefix("after ")
        table = before.join(after, how="outer").fillna(0).astype(int)
        return table.loc[[s for s in SPLITS if s in table.index]]


def scrub(manifest: pd.DataFrame, *, val_fraction: float = 0.15,
          test_fraction: float = 0.15, seed: int = 42, workers: int = 4) -> ScrubResult:
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
    good, bad = validate_images(manifest, workers=workers)
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
    return ScrubResult(clean=clean.reset_index(drop=True), bad=bad, duplicates=duplicates,
                       leaks=leaks, dropped=dropped.reset_index(drop=True))
