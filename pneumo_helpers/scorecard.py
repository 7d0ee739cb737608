"""Which films measured each figure, and what those films chose: one table, read from records.

The README, the model card, the deck and notebook 05 show the same table. It has a block of
lines for the run's chosen model (from the run folder) and one for the shipped model (from its
folder and, when one names its ``model.keras``, the official split's receipt). Each line is
one split: how many films, what was chosen on them, the threshold used and where that
threshold came from, then ROC AUC, sensitivity and specificity with 95 % patient-bootstrap
intervals, exactly as the record holds them.

    lines = scorecard.run_lines("runs/full") + scorecard.shipped_lines(evaluations=...)
    print(scorecard.markdown(lines))
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from . import files
from .metrics_report import Estimate, MetricsReport
from .recipe import model_words
from .runs import ChosenModel, ModelLayout, RunLayout, SiteThreshold

__all__ = ["Line", "Receipt", "run_lines", "shipped_lines", "read_receipt", "markdown",
           "SPLIT_NAMES"]

SHIPPED_MODEL_DIR = Path(__file__).parent / "shipped_model"

#: Reader-facing names of the splits a line can be about.
SPLIT_NAMES = {"val": "validation", "test": "test", "external": "external half A",
               "locked": "locked half B"}
_METRICS = ("roc_auc", "recall", "specificity")


@dataclass(frozen=True)
class Line:
    """One model on one split.

    Attributes:
        model: who was measured (``"run: <folder>"`` or ``"shipped <sha8>"``).
        split: a key of :data:`SPLIT_NAMES`. films: films scored (None: unknown).
        chose: what these films chose, in words (``"nothing"`` for an untouched split).
        threshold: P(PNEUMONIA) of the threshold metrics; threshold_from: which films chose it.
        roc_auc, sensitivity, specificity: the record's :class:`~pneumo_helpers.metrics_report.Estimate`.
        source: the record the figures come from.
    """

    model: str
    split: str
    films: int | None
    chose: str
    threshold: float | None
    threshold_from: str
    roc_auc: Estimate
    sensitivity: Estimate
    specificity: Estimate
    source: str


@dataclass(frozen=True)
class Receipt:
    """An official-split evaluation of one shipped model (``../shared/evaluations/*.json``).

    ``locked`` is half B, the judged one; ``external`` half A; ``whole`` all 624 films.
    """

    path: Path
    model_sha256: str
    date: str | None
    threshold: float | None
    locked: MetricsReport
    external: MetricsReport | None
    whole: MetricsReport | None


def _report(block: dict, threshold, split: str, where: str) -> MetricsReport:
    return MetricsReport.from_json(json.dumps(dict(metrics=block["metrics"], n=block.get("n"),
                                                   threshold=threshold, split=split)),
                                   where=where)


def read_receipt(path: str | Path) -> Receipt | None:
    """A receipt, or ``None`` when the file is not one (other JSON may share the folder)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        sha = data["model_sha256"]
        threshold = data.get("threshold")
        locked = _report(data, threshold, "locked", str(path))
        parts = {key: _report(data[key], threshold, key, str(path)) if isinstance(
            data.get(key), dict) else None for key in ("external_half", "all_624")}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Receipt(path=path, model_sha256=sha, date=data.get("date"), threshold=threshold,
                   locked=locked, external=parts["external_half"], whole=parts["all_624"])


def matching_receipt(evaluations, model_sha256: str) -> Receipt | None:
    """The receipt in the folder ``evaluations`` that names ``model_sha256``, if any."""
    for path in sorted(Path(evaluations).glob("*.json")) if evaluations else []:
        receipt = read_receipt(path)
        if receipt and receipt.model_sha256 == model_sha256:
            return receipt
    return None


def _line(model, split, report: MetricsReport, *, chose, threshold_from, source) -> Line:
    def get(name):
        return report.metrics.get(name, Estimate(math.nan))
    return Line(model=model, split=split, films=report.n, chose=chose,
                threshold=report.threshold, threshold_from=threshold_from,
                roc_auc=get("roc_auc"), sensitivity=get("recall"),
                specificity=get("specificity"), source=source)


def run_lines(run_dir) -> list[Line]:
    """The run's chosen model on each split 05 scored (``metrics/<split>.json``).

    Validation chose the epochs, the model (04) and the threshold; the test split chose
    nothing (:func:`pneumo_helpers.scrub.scrub` keeps a carved test split apart from the
    patients the shipped recipe was chosen on). The external films chose nothing in the run,
    but half A chose the recipe the full profile trains, in earlier sweeps."""
    layout = RunLayout(run_dir)
    results = layout.results()
    chosen = ChosenModel.read(layout) if layout.chosen.is_file() else None
    name = next((r.model for r in results.values() if r.model), None) or \
        (chosen.model if chosen else layout.root.name)
    chose = {"val": "epochs, model, threshold" if chosen and chosen.model == name
             else "epochs, threshold", "test": "nothing",
             "external": "recipe, earlier; nothing in this run"}
    return [_line(f"run: {model_words(name)}", split, results[split], chose=chose[split],
                  threshold_from="validation", source=f"metrics/{split}.json")
            for split in ("val", "test", "external") if split in results]


def shipped_lines(model_dir=SHIPPED_MODEL_DIR, *, evaluations=None) -> list[Line]:
    """The shipped model: validation, the external films (at the validation and at the site
    threshold) and, from the receipt naming its ``model.keras``, the locked half B."""
    folder = ModelLayout(model_dir)
    if not folder.model.is_file():
        return []
    sha = files.sha256(folder.model)
    model = f"shipped {sha[:8]}"
    lines = []
    if folder.val_metrics.is_file():
        lines.append(_line(model, "val", MetricsReport.read(folder.val_metrics),
                           chose="epochs, threshold", threshold_from="validation",
                           source="val_metrics.json"))
    if folder.external_metrics.is_file():
        lines.append(_line(model, "external", MetricsReport.read(folder.external_metrics),
                           chose="recipe (with validation)", threshold_from="validation",
                           source="external_metrics.json"))
    site = SiteThreshold.read(folder.root)
    if site is not None and site.model_sha256 == sha:
        lines.append(Line(model=model, split="external", films=site.n_films,
                          chose="site threshold", threshold=site.threshold,
                          threshold_from="these films, in-sample",
                          roc_auc=Estimate(*site.roc_auc),
                          sensitivity=Estimate(*site.sensitivity),
                          specificity=Estimate(*site.specificity),
                          source="site_threshold.json"))
    receipt = matching_receipt(evaluations, sha)
    if receipt is not None:
        used = ("external half A (site)" if site is not None and receipt.threshold is not None
                and math.isclose(receipt.threshold, site.threshold, abs_tol=1e-6)
                else "validation")
        lines.append(_line(model, "locked", receipt.locked, chose="nothing (judged)",
                           threshold_from=used, source=receipt.path.name))
    return lines


def _cell(estimate: Estimate) -> str:
    value, low, high = estimate
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" + ("" if math.isnan(low) else f" ({low:.3f}–{high:.3f})")


def cells(line: Line) -> dict[str, str]:
    """A line's columns as text, by heading (what :func:`markdown` and the deck show)."""
    films = "?" if line.films is None else f"{line.films:,}"
    threshold = "n/a" if line.threshold is None else f"{line.threshold:.3f}"
    return {"model": line.model, "films": f"{SPLIT_NAMES[line.split]}, {films}",
            "they chose": line.chose, "threshold (chosen on)":
                f"{threshold} ({line.threshold_from})",
            "ROC AUC": _cell(line.roc_auc), "sensitivity": _cell(line.sensitivity),
            "specificity": _cell(line.specificity)}


def markdown(lines: list[Line]) -> str:
    """The lines as one Markdown table; a model's name only on its first line."""
    if not lines:
        return "No evaluated model yet."
    rows = [cells(line) for line in lines]
    for i in range(1, len(rows)):
        if lines[i].model == lines[i - 1].model:
            rows[i]["model"] = ""
    heads = list(rows[0])
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    out += ["| " + " | ".join(row[h] for h in heads) + " |" for row in rows]
    return "\n".join(out)
