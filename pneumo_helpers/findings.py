"""Notebook 05's findings: sentences written from the run's numbers, never typed in.

Each sentence names the split it comes from. A difference between two splits is called one
only when their 95 % intervals do not overlap.
"""

from __future__ import annotations

import pandas as pd

from . import attention, external
from .report import format_ci

__all__ = ["interpretation"]


def _cell(table: pd.DataFrame, metric: str) -> str:
    row = table.set_index("metric").loc[metric]
    return format_ci(row["value"], row["ci_low"], row["ci_high"])


def _compare(tables: dict, metric: str, first: str, second: str) -> str:
    a, b = (tables[s].set_index("metric").loc[metric] for s in (first, second))
    difference = b["value"] - a["value"]
    overlap = a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]
    return (f"{difference:+.3f}, within both intervals: not a difference these films can show"
            if overlap else f"{difference:+.3f}, beyond both intervals")


def interpretation(tables: dict[str, pd.DataFrame], *, cm: pd.DataFrame,
                   stress: pd.DataFrame, heat: pd.DataFrame, uniform: float,
                   threshold: float, sample: bool = False) -> list[str]:
    """05's findings.

    Args:
        tables: ``{split: evaluate() table}`` with ``val`` and ``test`` (``external`` too when
            given). cm: the test confusion matrix (``evaluate.confusion``). stress: the
            validation stress test (``shifts.stress_test``). heat: ``attention.heat_table`` of
            the test split; uniform: an even map's central share. threshold: the validation
            threshold.
    """
    test, val = tables["test"], tables["val"]
    n = int(test["n"].max())
    lines = [
        f"On the test split ({n} films, which chose nothing) the model reaches ROC AUC "
        f"{_cell(test, 'roc_auc')}, sensitivity {_cell(test, 'recall')} and specificity "
        f"{_cell(test, 'specificity')} at the validation threshold {threshold:.3f}.",
        f"Validation ROC AUC {_cell(val, 'roc_auc')}; test minus validation "
        f"{_compare(tables, 'roc_auc', 'val', 'test')}. Both are the training hospital's films.",
        *external.gap_lines(tables),
        f"On test it flagged {int(cm.iloc[0, 1])} normal film(s) as pneumonia and missed "
        f"{int(cm.iloc[1, 0])} pneumonia film(s); Brier score {_cell(test, 'brier')} (0 is "
        "perfect, 0.25 a coin flip at 50/50).",
    ]
    worst = stress.loc[stress["specificity"].idxmin()]
    lines.append(f"Under the acquisition and framing shifts of the validation films, "
                 f"specificity ranged {stress['specificity'].min():.3f}–"
                 f"{stress['specificity'].max():.3f} (lowest: {worst['shift']}) at the same "
                 "threshold.")
    lines.append(attention.conclusion(heat, uniform=uniform))
    if sample:
        lines.append("**This run used the bundled sample**: these numbers demonstrate the "
                     "pipeline only.")
    return lines
