"""Where Grad-CAM heat falls: inside the central thorax region, or on the border strips.

A model that reads the lungs puts its heat in the middle of a film; one that learned the field
of view (the neck, shoulders, film edges, burnt-in markers) puts it on the border. The share of
each map's heat inside the central region measures that over a whole split, by true class and
by whether the call was right, against the share a uniform map would have (the region's area).

    maps = gradcam.GradCam(model, threshold=t)(images)          # (N, H, W) in [0, 1]
    table = attention.heat_table(attention.central_share(maps), y_true, labels.call(p, t))
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .labels import CLASSES

__all__ = ["BORDER", "central_share", "uniform_share", "heat_table", "markdown", "conclusion"]

#: Width of each border strip, as a share of the film's side.
BORDER = 0.15


def _central(height: int, width: int, border: float) -> tuple[slice, slice]:
    dy, dx = round(height * border), round(width * border)
    return slice(dy, height - dy), slice(dx, width - dx)


def central_share(heatmaps, *, border: float = BORDER) -> np.ndarray:
    """Share of each map's heat inside the central region, (N,) in [0, 1].

    Args:
        heatmaps: (N, H, W) non-negative maps (:class:`pneumo_helpers.gradcam.GradCam`).
        border: width of each strip left out on every side, as a share of the side.

    A map with no heat at all gets NaN.
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3 or (maps < 0).any():
        raise ValueError(f"heatmaps must be (N, H, W) and non-negative, got shape {maps.shape}")
    rows, cols = _central(*maps.shape[1:], border)
    total = maps.sum(axis=(1, 2))
    inside = maps[:, rows, cols].sum(axis=(1, 2))
    return np.divide(inside, total, out=np.full(len(maps), np.nan), where=total > 0)


def uniform_share(height: int, width: int, *, border: float = BORDER) -> float:
    """The central share of a map with the same heat everywhere (the region's area share)."""
    rows, cols = _central(height, width, border)
    return (rows.stop - rows.start) * (cols.stop - cols.start) / (height * width)


def heat_table(shares, y_true, y_pred) -> pd.DataFrame:
    """Films, mean and median central share by true class and right/wrong call, plus all.

    Args:
        shares: (N,) from :func:`central_share`. y_true, y_pred: (N,) 0 = NORMAL,
            1 = PNEUMONIA (the call at the model's threshold).

    Returns:
        Rows ``(true class, call)`` with columns ``films``, ``mean``, ``median`` and
        ``on border`` (the share of films whose map has less than half its heat inside).
    """
    shares = np.asarray(shares, dtype=float)
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    frame = pd.DataFrame({"true class": np.asarray(CLASSES)[y_true],
                          "call": np.where(y_true == y_pred, "right", "wrong"),
                          "share": shares}).dropna()
    groups = [((cls, call), part) for (cls, call), part in frame.groupby(["true class", "call"])]
    groups.append((("all", "all"), frame))
    rows = {key: {"films": len(part), "mean": part["share"].mean(),
                  "median": part["share"].median(), "on border": (part["share"] < 0.5).mean()}
            for key, part in groups}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["true class", "call"])
    return table


def markdown(table: pd.DataFrame, *, uniform: float) -> str:
    """:func:`heat_table` as Markdown, with the uniform map's share for comparison."""
    lines = ["| true class | call | films | heat inside, mean | median | maps mostly on the "
             "border |", "|---|---|---|---|---|---|"]
    for (cls, call), row in table.iterrows():
        lines.append(f"| {cls} | {call} | {int(row['films'])} | {row['mean']:.2f} | "
                     f"{row['median']:.2f} | {row['on border']:.0%} |")
    return "\n".join(lines) + (f"\n\nA map spread evenly over the film would put {uniform:.2f} "
                               "of its heat inside.")


def conclusion(table: pd.DataFrame, *, uniform: float) -> str:
    """One sentence drawn from :func:`heat_table`'s numbers."""
    everything = table.loc[("all", "all")]
    text = (f"Grad-CAM over {int(everything['films'])} test films: {everything['mean']:.0%} of "
            f"the heat in the central region, where an even map puts {uniform:.0%}; "
            f"{everything['on border']:.0%} of the maps lie mostly on the border strips")
    groups = table.drop(index=("all", "all"))
    if len(groups):
        (cls, call), worst = groups["on border"].idxmax(), groups["on border"].max()
        if worst > 0.5:
            text += f" ({worst:.0%} of the maps of {call} calls on {cls} films)"
    if everything["mean"] > uniform + 0.1:
        verdict = "the model mostly reads the middle of the film, where the lungs are"
    elif everything["mean"] < uniform:
        verdict = ("the model looks at the border more than an even map would: its calls "
                   "lean on framing, neck and shoulders, not only on the lungs")
    else:
        verdict = "the maps do not show the model reading the lungs rather than the framing"
    return text + f". So {verdict}."
