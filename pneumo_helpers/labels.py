"""The two classes, their encoding, and what a Kermany file name says about its film.

The bottom of the package: every module that needs a class name, a label code or a patient
reads it from here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "call", "encode_labels", "patient_id", "subtype"]

# In label order: position = encoded label (NORMAL = 0, PNEUMONIA = 1).
CLASSES = ("NORMAL", "PNEUMONIA")


def encode_labels(labels) -> np.ndarray:
    """Class names or codes -> int64 array with NORMAL = 0 and PNEUMONIA = 1.

    Accepts a sequence, array or pandas Series of ``"NORMAL"``/``"PNEUMONIA"`` strings or of
    0/1 numbers (ints, bools or floats such as model targets).

    Raises:
        ValueError: a value that is neither; the message lists the offending values.
    """
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {values.shape}")
    if values.dtype.kind in "biuf":
        codes = values.astype(np.float64)
        bad = ~np.isin(codes, (0, 1))
    else:
        lookup = {name: code for code, name in enumerate(CLASSES)}
        codes = np.array([lookup.get(str(v), -1) for v in values], dtype=np.float64)
        bad = codes < 0
    if bad.any():
        shown = sorted({str(v) for v in values[bad]})[:5]
        raise ValueError(f"labels must be 'NORMAL'/'PNEUMONIA' or 0/1; found {shown} "
                         f"in {int(bad.sum())} rows")
    return codes.astype(np.int64)


def call(y_prob, threshold: float) -> np.ndarray:
    """The decision rule: 1 (PNEUMONIA) where P(PNEUMONIA) ``y_prob >= threshold``, else 0.

    ``y_prob``: a probability or an array of them; returns int64 of the same shape (NaN -> 0).
    The package's one threshold comparison, with the convention of
    :func:`sklearn.metrics.roc_curve`.
    """
    with np.errstate(invalid="ignore"):
        return (np.asarray(y_prob, dtype=np.float64) >= threshold).astype(np.int64)


# --- Patients and subtypes, from the file name ---------------------------------------------

_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_IM = re.compile(r"^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE)


def patient_id(filename: str) -> str:
    """Patient identifier encoded in a Kermany file name.

    ``person1000_bacteria_2931.jpeg`` and ``person447_virus_921_1.jpeg`` -> ``person1000`` /
    ``person447``; ``IM-0115-0001.jpeg`` and ``IM-0429-0001-0002.jpeg`` -> ``IM-0115`` /
    ``IM-0429``; ``NORMAL2-IM-1427-0001.jpeg`` -> ``NORMAL2-IM-1427``. A name in no known form
    is its own patient (its stem), which is the safe choice for a patient-level split.
    """
    name = Path(filename).name
    for pattern in (_PERSON, _IM):
        match = pattern.match(name)
        if match:
            return match.group(1)
    return Path(name).stem


def subtype(filename: str, label: str) -> str:
    """``normal``, ``bacteria`` or ``virus`` (from the name), or ``unknown`` pneumonia."""
    if label == "NORMAL":
        return "normal"
    name = Path(filename).name.lower()
    for kind in ("bacteria", "virus"):
        if f"_{kind}_" in name:
            return kind
    return "unknown"
