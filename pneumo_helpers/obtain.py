"""Step 01, obtain: find the dataset and list every file in a manifest.

:func:`locate_dataset` picks a folder: an explicit path, ``$PNEUMO_DATA_DIR``, a kagglehub
download when credentials and network exist, else the bundled sample. :func:`build_manifest`
lists every file of the Kaggle layout ``{train,val,test}/{NORMAL,PNEUMONIA}/*`` with its
patient, subtype, hash and header facts; :func:`not_taken` lists what it leaves out.
:func:`run` is notebook 01: all of it for one run, written into the run folder.

Problems with single files are left to the scrub (02); a dataset that cannot be used at all
(wrong path, missing ``train``, an empty or misnamed class folder) raises
:class:`~pneumo_helpers.dataset.DatasetError` with a message that says what to do.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import files
from .checksums import verify_checksums
from .config import SAMPLE_DIR, RunConfig
from .dataset import MANIFEST_COLUMNS, SPLITS, DatasetError
from .images import ImageError, describe
from .labels import CLASSES, patient_id, subtype
from .runs import write_csv

__all__ = ["KAGGLE_DATASET", "DatasetLocation", "find_root", "locate_dataset", "build_manifest",
           "not_taken", "Obtained", "run"]

KAGGLE_DATASET = "paultimothymooney/chest-xray-pneumonia"
# Hashing and header reads wait on the disk more than on the CPU: a few threads overlap them.
_THREADS = 4


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


def locate_dataset(path: str | Path | None = None) -> DatasetLocation:
    """Pick the dataset folder for a run.

    Order: ``path``; ``$PNEUMO_DATA_DIR``; a kagglehub download (cached by kagglehub) when
    Kaggle credentials exist; else the bundled sample. A failed
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
    if _kaggle_credentials():
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


def _scan(root: Path, *, ignore_unknown: bool = False) -> list[tuple[Path, str, str]]:
    found = []
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
            found += [(p, split, label) for p in entries]
    return found


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


def build_manifest(root: str | Path, *, ignore_unknown: bool = False) -> pd.DataFrame:
    """One row per file under ``root/{train,val,test}/{NORMAL,PNEUMONIA}``.

    Columns: path, split, label, subtype, patient, sha256, width, height, mode, bytes. Header
    facts of unreadable files are left empty; :func:`pneumo_helpers.scrub.validate_images`
    says what is wrong. What is left out is listed by :func:`not_taken`.

    Args:
        ignore_unknown: leave out folders of a split that are not a class instead of raising.

    Raises:
        DatasetError: no ``train`` split, a split with a missing, misnamed or empty class, or
            (unless ``ignore_unknown``) a folder in a split that is not a class.
    """
    root = find_root(root)
    listed = _scan(root, ignore_unknown=ignore_unknown)
    with ThreadPoolExecutor(_THREADS) as pool:
        rows = list(pool.map(_file_row, listed, chunksize=64))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return manifest.astype({"width": "Int64", "height": "Int64"})


@dataclass
class Obtained:
    """What :func:`run` found: where the data came from, the manifest, the files it leaves
    out, and the one line of the checksum check."""

    location: DatasetLocation
    manifest: pd.DataFrame
    not_taken: pd.DataFrame
    checksums: str


def run(cfg: RunConfig) -> Obtained:
    """Notebook 01 for the run ``cfg``: locate the dataset, write ``manifest.csv`` and
    ``not_taken.csv`` into the run folder, and check the files against the dataset's checksum
    list.

    Raises:
        DatasetError: the dataset cannot be used, or a file does not match its checksum list
            (the manifest is written first, so it can be looked at).
    """
    location = locate_dataset(cfg.data_dir)
    manifest = build_manifest(location.path, ignore_unknown=cfg.ignore_unknown_folders)
    write_csv(cfg.layout.manifest, manifest)
    skipped = not_taken(location.path)
    write_csv(cfg.layout.not_taken, skipped)
    return Obtained(location, manifest, skipped, verify_checksums(manifest, location.path))
