"""The one metrics record: what every metrics file holds (``val_metrics.json``,
``metrics/<split>.json``, ``pneumo evaluate -o``), so that 04, 05, the report, the deck, the
model card and ``pneumo`` read and write one JSON shape.

It imports nothing of the project but :mod:`files`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .files import atomic_write

__all__ = ["Estimate", "MetricsReport", "METRIC_LABELS"]

# Row order and reader-facing names of the metrics; other metrics found follow in file order.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision (PPV)",
    "recall": "Recall (sensitivity)",
    "specificity": "Specificity",
    "f1_pneumonia": "F1 PNEUMONIA",
    "f1_normal": "F1 NORMAL",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier score (lower is better)",
}


class Estimate(NamedTuple):
    """One metric: point estimate and 95 % interval (NaN where not computed)."""

    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan


def _number_or_nan(value, where: str) -> float:
    if value is None:  # JSON has no NaN: null stands for it
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number or null, got {value!r}")
    return float(value)


def _json_number(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


@dataclass
class MetricsReport:
    """The metrics of one model on one split: what ``val_metrics.json``,
    ``metrics/<split>.json`` and ``pneumo evaluate -o`` hold.

    JSON shape (written by :meth:`to_json`, the only one :meth:`from_json` reads)::

        {"split": "val", "model": "shipped", "n": 742, "threshold": 0.351,
         "rule": "sens>=0.95", <provenance keys>,
         "metrics": {"roc_auc": {"value": 0.994, "ci_low": 0.989, "ci_high": 0.998}, ...}}

    Attributes:
        metrics: metric name -> :class:`Estimate` (names of
            :func:`pneumo_helpers.evaluate.evaluate`: accuracy, recall, specificity, roc_auc,
            brier, ...).
        threshold: P(PNEUMONIA) at which the threshold metrics were computed (None: none).
        rule: how the threshold was chosen. n: images scored. split: ``"val"``, ``"test"``,
            ... model: the model evaluated (a folder name or a shown path).
        provenance: other facts about the evaluation, strings or numbers (``model_sha256``,
            ``data``, ``command``, ``date``), kept as written.
    """

    metrics: dict[str, Estimate]
    threshold: float | None = None
    rule: str | None = None
    n: int | None = None
    split: str | None = None
    model: str | None = None
    provenance: dict[str, str | int | float] = field(default_factory=dict)

    _FIELDS = ("split", "model", "n", "threshold", "rule")

    def __getitem__(self, name: str) -> Estimate:
        return self.metrics[name]

    def table(self):
        """The metrics as a ``pandas.DataFrame``: one row per metric (index ``metric``, in
        the report's order), float columns ``value``, ``ci_low``, ``ci_high``."""
        import pandas as pd

        return pd.DataFrame([tuple(estimate) for estimate in self.metrics.values()],
                            index=pd.Index(list(self.metrics), name="metric"),
                            columns=list(Estimate._fields), dtype=float)

    def to_json(self) -> str:
        head = {"split": self.split, "model": self.model, "n": self.n,
                "threshold": _json_number(self.threshold), "rule": self.rule}
        return json.dumps({**head, **self.provenance, "metrics": {
            name: {k: _json_number(v) for k, v in estimate._asdict().items()}
            for name, estimate in self.metrics.items()}}, indent=2)

    @classmethod
    def from_json(cls, text: str, *, where: str = "metrics report") -> "MetricsReport":
        """Parse :meth:`to_json`'s shape; anything else raises ValueError naming ``where``."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            raise ValueError(f"{where}: a metrics report is a JSON object with a 'metrics' "
                             "object (written by MetricsReport.to_json: notebook 04/05, "
                             "pneumo evaluate); re-run the step that wrote it")
        metrics = {}
        for name, entry in data["metrics"].items():
            if not isinstance(entry, dict) or set(entry) != set(Estimate._fields):
                raise ValueError(f"{where}: metric {name!r} must be an object with exactly "
                                 f"{list(Estimate._fields)}, got {entry!r}")
            metrics[name] = Estimate(*(_number_or_nan(entry[k], f"{where} [{name}.{k}]")
                                       for k in Estimate._fields))
        threshold = data.get("threshold")
        threshold = None if threshold is None else _number_or_nan(threshold,
                                                                  f"{where} [threshold]")
        n = data.get("n")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise ValueError(f"{where}: n must be a whole number of images, got {n!r}")
        texts = {}
        for key in ("rule", "split", "model"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{where}: {key} must be a string, got {value!r}")
            texts[key] = value
        provenance = {k: v for k, v in data.items() if k not in (*cls._FIELDS, "metrics")}
        odd = [k for k, v in provenance.items()
               if isinstance(v, (dict, list)) or v is None]
        if odd:
            raise ValueError(f"{where}: unexpected keys {odd} (provenance values are strings "
                             "or numbers)")
        return cls(metrics=metrics, threshold=threshold, n=n, provenance=provenance, **texts)

    def write(self, path: str | Path) -> Path:
        """Write atomically: a reader never sees half a file."""
        with atomic_write(path) as handle:
            handle.write(self.to_json())
        return Path(path)

    @classmethod
    def read(cls, path: str | Path) -> "MetricsReport":
        """Raises FileNotFoundError (naming the steps that write one) or ValueError."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"metrics file {path} not found; it is written by notebook "
                                    "04 (val_metrics.json), 05 (metrics/) or pneumo evaluate")
        return cls.from_json(path.read_text(), where=str(path))
