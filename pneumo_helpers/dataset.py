"""The manifest's vocabulary and summaries: the splits, its columns, the error a dataset folder
that cannot be used raises, and the tables a reader takes in at a glance.

At the bottom of the data steps: :mod:`pneumo_helpers.obtain` (01) writes the manifest,
:mod:`pneumo_helpers.scrub` (02) cleans it, and both, like the notebooks and training, use
these.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from .labels import CLASSES

__all__ = ["SPLITS", "MANIFEST_COLUMNS", "DatasetError", "manifest_hash", "size_summary",
           "count_table", "split_rows"]

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ["path", "split", "label", "subtype", "patient", "sha256", "width",
                    "height", "mode", "bytes"]


class DatasetError(RuntimeError):
    """The dataset folder cannot be used; the message says why and what to do."""


def split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split (``"train"``, ``"val"`` or ``"test"``), numbered from 0."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return manifest[manifest["split"] == split].reset_index(drop=True)


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
    # Unnamed axes: a named index prints as an extra, empty header row.
    return table.rename_axis(index=None, columns=None)
