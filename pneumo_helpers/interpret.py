"""Step 05 (iNterpret) as package functions: score each split with the model 05 studies, and
write the tables the reviewer PDFs read.

* :func:`score` predicts one split: its films at the model's input size, labels and
  P(PNEUMONIA), as one :class:`Scored`; :func:`score_splits` does validation, test and, when
  given, the external films.
* :func:`calibration`, :func:`stress` and :func:`gradcam_heat` each compute one table from a
  :class:`Scored` split and, given a path from :class:`~pneumo_helpers.runs.RunLayout`, write it
  through :func:`pneumo_helpers.runs.write_csv`.

The notebook, ``pneumo train``'s model card and ``tools/stress_test.py`` call these, so a split is
scored and stressed the same way everywhere.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from . import attention, evaluate, external, generators, gradcam, shifts
from .config import RunConfig
from .dataset import split_rows
from .labels import call, encode_labels
from .runs import write_csv

__all__ = ["Scored", "score", "score_splits", "calibration", "stress", "gradcam_heat"]


@dataclasses.dataclass(frozen=True)
class Scored:
    """One split scored by one model.

    Attributes:
        rows: the split's manifest rows (``path``, ``label``, ``patient`` ...), in film order.
        films: uint8 ``(N, H, W)`` at the model's input size, as the explainers take them.
        y: int ``(N,)``, 1 = PNEUMONIA.
        p: float ``(N,)``, P(PNEUMONIA).
        threshold: the model's threshold; :attr:`calls` applies it.
    """

    rows: pd.DataFrame
    films: np.ndarray
    y: np.ndarray
    p: np.ndarray
    threshold: float

    @property
    def calls(self) -> np.ndarray:
        """int ``(N,)``: 1 where the model calls PNEUMONIA at :attr:`threshold`."""
        return call(self.p, self.threshold)


def score(loaded, rows: pd.DataFrame, *, cache_dir: str | Path | None = None) -> Scored:
    """Predict every film of ``rows`` with ``loaded`` (an :class:`~.inference.LoadedModel`).

    Films are decoded at the model's input size (cached in ``cache_dir`` when given)."""
    rows = rows.reset_index(drop=True)
    films = generators.load_images(rows, image_size=loaded.image_size, cache_dir=cache_dir)[..., 0]
    return Scored(rows=rows, films=films, y=encode_labels(rows["label"]),
                  p=loaded.predict(films), threshold=loaded.threshold)


def score_splits(cfg: RunConfig, loaded) -> dict[str, Scored]:
    """``{"val", "test"[, "external"]: Scored}``: the run's validation and test splits from its
    clean manifest and, when ``cfg.external_dir`` is set, the labelled films there."""
    clean = pd.read_csv(cfg.layout.clean_manifest)
    sets = {split: split_rows(clean, split) for split in ("val", "test")}
    if cfg.external_dir:
        sets["external"] = external.labelled_rows(cfg.external_dir)
    return {split: score(loaded, rows, cache_dir=cfg.layout.cache) for split, rows in sets.items()}


def calibration(scored: Scored, *, path: str | Path | None = None) -> pd.DataFrame:
    """The reliability bins of :func:`~.evaluate.calibration_bins` (one row per bin)."""
    bins = evaluate.calibration_bins(scored.y, scored.p)
    if path is not None:
        write_csv(path, bins)
    return bins


def stress(loaded, scored: Scored, *, path: str | Path | None = None) -> pd.DataFrame:
    """:func:`~.shifts.stress_test` of the split's films at the model's unchanged threshold:
    one row per shift (``none`` first)."""
    table = shifts.stress_test(loaded.predict, scored.films, scored.y, threshold=scored.threshold)
    if path is not None:
        write_csv(path, table)
    return table


def gradcam_heat(loaded, scored: Scored, *,
                 path: str | Path | None = None) -> tuple[pd.DataFrame, float]:
    """Where Grad-CAM heat falls on every film of the split.

    Returns ``(table, uniform)``: :func:`~.attention.heat_table` by true class and by whether
    the call was right, and the central share an evenly spread map would have."""
    maps = gradcam.GradCam(loaded.model, threshold=scored.threshold)(scored.films)
    table = attention.heat_table(attention.central_share(maps), scored.y, scored.calls)
    if path is not None:
        write_csv(path, table.reset_index())
    return table, attention.uniform_share(*maps.shape[1:])
