"""Class rebalancing for training: which rows an epoch sees, and with what weight.

The Kermany training set holds about three PNEUMONIA images for every NORMAL one. Left alone, a
model can score 74 % accuracy by always answering PNEUMONIA, and its threshold drifts towards
that class. :func:`rebalance` offers the four usual answers, all as data the input pipeline
understands:

- ``"none"``: every row once (the baseline).
- ``"undersample"``: the majority class randomly cut to the minority's size. Balanced, but
  throws away images.
- ``"oversample"``: minority rows repeated up to the majority's size. Nothing is thrown away and
  augmentation makes the repeated copies differ, at the cost of longer epochs.
- ``"class_weight"``: every row once, and Keras weights each class's loss by ``n / (2 * n_c)``
  (scikit-learn's ``compute_class_weight("balanced")``). The cheapest; the default.

Row selections are returned as ``indices`` (row positions, possibly repeated) for
:func:`pneumo_helpers.generators.make_dataset`, weights as the ``class_weight`` dict for
``model.fit``. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .labels import CLASSES, encode_labels
from sklearn.utils.class_weight import compute_class_weight

__all__ = ["STRATEGIES", "Rebalanced", "rebalance",
           "balance_table"]

STRATEGIES = ("none", "undersample", "oversample", "class_weight")


@dataclass(frozen=True)
class Rebalanced:
    """The outcome of :func:`rebalance`.

    Attributes:
        indices: int64 array of row positions into the labels given, sorted, possibly
            repeated (oversampling); the rows one training epoch sees.
        class_weight: ``{0: w_normal, 1: w_pneumonia}`` for ``model.fit(class_weight=...)``,
            or ``None`` when the rows themselves are balanced (or not balanced at all).
        strategy: the strategy that produced them.
    """

    indices: np.ndarray
    class_weight: dict[int, float] | None
    strategy: str

    def counts(self, labels) -> dict[str, float]:
        """Effective images per class: rows selected, times the class weight if any."""
        y = encode_labels(labels)[self.indices]
        weights = self.class_weight or {0: 1.0, 1: 1.0}
        return {name: float(np.sum(y == code)) * weights[code]
                for code, name in enumerate(CLASSES)}


def rebalance(labels, strategy: str = "none", *, seed: int = 42) -> Rebalanced:
    """Choose the rows (and class weights) one training epoch uses.

    Args:
        labels: class of each row, ``"NORMAL"``/``"PNEUMONIA"`` or 0/1, length ``n``.
        strategy: one of :data:`STRATEGIES` (see the module docstring).
        seed: seed of the random row choice; the same seed gives the same rows.

    Returns:
        :class:`Rebalanced` with ``indices`` (sorted row positions in ``[0, n)``) and
        ``class_weight``.

    Raises:
        ValueError: unknown strategy, no labels, or a rebalancing strategy on labels holding
            only one class.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown balance strategy {strategy!r}; choose one of "
                         f"{', '.join(repr(s) for s in STRATEGIES)}")
    y = encode_labels(labels)
    if y.size == 0:
        raise ValueError("labels is empty: there is nothing to balance")
    every_row = np.arange(y.size, dtype=np.int64)
    if strategy == "none":
        return Rebalanced(every_row, None, strategy)

    rows = [np.flatnonzero(y == code) for code in range(len(CLASSES))]
    if min(len(r) for r in rows) == 0:
        present = CLASSES[int(y[0])]
        raise ValueError(f"labels hold only {present} images; strategy {strategy!r} needs "
                         "both classes (use strategy='none')")
    if strategy == "class_weight":
        weights = compute_class_weight("balanced", classes=np.arange(len(CLASSES)), y=y)
        return Rebalanced(every_row, {code: float(w) for code, w in enumerate(weights)},
                          strategy)

    rng = np.random.default_rng(seed)
    minority, majority = sorted(rows, key=len)
    if strategy == "undersample":
        kept = rng.choice(majority, size=len(minority), replace=False)
        chosen = [minority, kept]
    else:  # oversample
        # Whole copies first, then a random remainder: every minority image is repeated
        # equally often (give or take one), rather than some many times and others never.
        copies, remainder = divmod(len(majority), len(minority))
        extra = rng.choice(minority, size=remainder, replace=False)
        chosen = [majority, np.tile(minority, copies), extra]
    return Rebalanced(np.sort(np.concatenate(chosen)).astype(np.int64), None, strategy)


def balance_table(labels, strategies=STRATEGIES, *, seed: int = 42) -> pd.DataFrame:
    """Images per class that one training epoch sees under each strategy.

    Returns:
        DataFrame indexed by strategy with columns ``NORMAL`` and ``PNEUMONIA`` (effective
        counts, int: rows seen, and for ``class_weight`` rows times the class weight),
        ``rows per epoch``, ``% pneumonia`` (effective) and ``note``. Fits
        :func:`pneumo_helpers.plots.class_counts`.
    """
    y = encode_labels(labels)
    n_rows = {name: int(np.sum(y == code)) for code, name in enumerate(CLASSES)}
    records = []
    for strategy in strategies:
        result = rebalance(y, strategy, seed=seed)
        counts = result.counts(y)
        if result.class_weight:
            w = result.class_weight
            note = (f"all rows, loss weighted (NORMAL x{w[0]:.2f}, PNEUMONIA x{w[1]:.2f}); "
                    "counts are weighted")
        else:
            change = {name: int(counts[name]) - n_rows[name] for name in CLASSES}
            parts = [f"{d:+d} {name}" for name, d in change.items() if d]
            note = ", ".join(parts) if parts else "all rows as they are"
            if strategy == "oversample":
                note += " (repeated rows; augmentation varies them)"
        total = sum(counts.values())
        records.append({"strategy": strategy,
                        **{name: int(round(counts[name])) for name in CLASSES},
                        "rows per epoch": int(result.indices.size),
                        "% pneumonia": round(100 * counts["PNEUMONIA"] / total, 1),
                        "note": note})
    return pd.DataFrame.from_records(records).set_index("strategy")
