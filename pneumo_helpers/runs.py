"""The run folder: every path and file name of a run, and the record of the chosen model.

A run lives in one folder (``runs/<name>/``); each OSEMiN step reads what the one before wrote
there. This module is the only place that spells those names — notebooks, the report, the
model card, training, the sweep and ``pneumo`` all go through :class:`RunLayout` and
:class:`ModelLayout`, so renaming a file is a one-line change here::

    runs/<name>/
        manifest.csv  not_taken.csv                      01_obtain
        clean_manifest.csv  bad_files.csv  duplicates.csv  dropped.csv     02_scrub
        figures/<NN_name>.png                            every notebook
        models/<model>/  (ModelLayout)                   04_model
        models/chosen.json  (ChosenModel)                04_model
        metrics/<split>.json (MetricsReport)  metrics/val_shifts.csv       05_interpret
        metrics/test_calibration.csv  metrics/gradcam_heat.csv           05_interpret
        cache/  logs/  notebooks/                        decoded images, kernel logs, executed copies

A run of ``pneumo train`` (``runs/train-full/``) holds the scrub's files, ``models/member-s<seed>/``
(one per seed), ``models/model/`` (the shipped model, their average) and ``train_full.json``.

It sits at the bottom of the package: it imports nothing of the project but :mod:`files`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from .files import atomic_write, sha256

__all__ = ["RunLayout", "ModelLayout", "ChosenModel", "Estimate", "MetricsReport",
           "SiteThreshold"]


@dataclass(frozen=True)
class ModelLayout:
    """One model folder: what :func:`pneumo_helpers.train.train_model` and
    :func:`pneumo_helpers.experiment.run_candidate` write, and what ``pneumo`` loads."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    model = property(lambda self: self.root / "model.keras")
    lite = property(lambda self: self.root / "model.tflite")
    export = property(lambda self: self.root / "export.json")
    config = property(lambda self: self.root / "config.json")
    history_csv = property(lambda self: self.root / "history.csv")
    backup = property(lambda self: self.root / "backup")
    pretrain_history = property(lambda self: self.root / "pretrain_history.csv")
    val_metrics = property(lambda self: self.root / "val_metrics.json")
    site_threshold = property(lambda self: self.root / "site_threshold.json")
    external_metrics = property(lambda self: self.root / "external_metrics.json")
    val_predictions = property(lambda self: self.root / "val_predictions.csv")
    card = property(lambda self: self.root / "MODEL_CARD.md")
    #: The sha256 of every other file of the folder: what :func:`pneumo_helpers.inference.
    #: load_model` checks the folder against, written last by whatever ships the model.
    manifest = property(lambda self: self.root / "manifest.json")
    #: What a shipped model folder holds besides its card and export.
    SHIPPED = ("model.keras", "config.json", "history.csv", "val_metrics.json")

    def _listed(self) -> list[str]:
        """Names of the folder's regular files, hidden ones and the manifest excepted."""
        return sorted(p.name for p in self.root.iterdir() if p.is_file()
                      and p.name != self.manifest.name and not p.name.startswith("."))

    def write_manifest(self) -> Path:
        """Write ``manifest.json``: ``{"files": {name: sha256}}`` of every file in the folder.

        Call it after the last file of a model is written (``pneumo train``'s card and export,
        ``pneumo calibrate``): from then on :meth:`check_manifest` refuses the folder if any
        file is changed, removed or added. From a shell:
        ``pneumo manifest FOLDER``.
        """
        listed = {name: sha256(self.root / name) for name in self._listed()}
        with atomic_write(self.manifest) as handle:
            handle.write(json.dumps({"files": listed}, indent=2) + "\n")
        return self.manifest

    def refresh_manifest(self) -> None:
        """Write the manifest again if the folder has one: what a step that adds a file to a
        model folder it loaded (and so checked) does, e.g. a site threshold or an export."""
        if self.manifest.is_file():
            self.write_manifest()

    def check_manifest(self) -> dict[str, str] | None:
        """``{name: sha256}`` of the folder's manifest, every file checked against it; ``None``
        when the folder has none.

        Raises:
            ValueError: one line naming the file: changed, missing, not listed, or a
                malformed manifest.
        """
        path = self.manifest
        if not path.is_file():
            return None
        again = ("; restore the model folder as shipped, or, if the change is yours, write "
                 f"the manifest again: pneumo manifest {self.root}")
        try:
            listed = json.loads(path.read_text(encoding="utf-8"))["files"]
            ok = isinstance(listed, dict) and all(
                isinstance(k, str) and "/" not in k and isinstance(v, str) and len(v) == 64
                for k, v in listed.items())
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise ValueError(f"{path}: not a model manifest ({{\"files\": {{name: sha256}}}})"
                             + again)
        for name in self._listed():
            if name not in listed:
                raise ValueError(f"{self.root / name}: not listed in {path.name}" + again)
        for name, digest in listed.items():
            if not (self.root / name).is_file():
                raise ValueError(f"{self.root / name}: listed in {path.name} but missing" + again)
            if sha256(self.root / name) != digest:
                raise ValueError(f"{self.root / name}: differs from the file {path.name} lists "
                                 "(changed or replaced since the model was shipped)" + again)
        return listed


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run folder. Paths are returned, not created (reading a run never
    changes it); the writers create their folders, except for ``metrics/``, created here."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def _folder(self, *parts: str) -> Path:
        folder = self.root.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # 01_obtain, 02_scrub
    manifest = property(lambda self: self.root / "manifest.csv")
    not_taken = property(lambda self: self.root / "not_taken.csv")
    clean_manifest = property(lambda self: self.root / "clean_manifest.csv")
    bad_files = property(lambda self: self.root / "bad_files.csv")
    duplicates = property(lambda self: self.root / "duplicates.csv")
    dropped = property(lambda self: self.root / "dropped.csv")
    # 04_model
    models = property(lambda self: self.root / "models")
    chosen = property(lambda self: self.root / "models" / "chosen.json")
    # pneumo train
    shipped = property(lambda self: self.model("model"))
    training_record = property(lambda self: self.root / "train_full.json")  # minutes, counts

    def member(self, seed: int) -> "ModelLayout":
        """``models/member-s<seed>/``: one seed's model of an averaged shipped model."""
        return self.model(f"member-s{seed}")

    # 05_interpret
    val_shifts = property(lambda self: self._folder("metrics") / "val_shifts.csv")
    test_calibration = property(lambda self: self._folder("metrics") / "test_calibration.csv")
    gradcam_heat = property(lambda self: self._folder("metrics") / "gradcam_heat.csv")
    # shared
    cache = property(lambda self: self.root / "cache")
    logs = property(lambda self: self.root / "logs")
    notebooks = property(lambda self: self.root / "notebooks")
    figures = property(lambda self: self.root / "figures")

    def figure(self, name: str) -> Path:
        """``figures/<name>.png``; ``name`` like ``"05_roc_pr"``."""
        return self.figures / f"{name}.png"

    def split_metrics(self, split: str) -> Path:
        """``metrics/<split>.json``: one split's :class:`MetricsReport`."""
        return self._folder("metrics") / f"{split}.json"

    def results(self) -> dict[str, "MetricsReport"]:
        """Every ``metrics/<split>.json`` of the run, read, by split name (05's results)."""
        folder = self.root / "metrics"
        found = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return {path.stem: MetricsReport.read(path) for path in found}

    def model(self, name: str) -> ModelLayout:
        """The folder of model ``name`` under ``models/``."""
        return ModelLayout(self.models / name)

    def kernel_log(self, notebook: str) -> Path:
        """``logs/<notebook>.kernel.log``: what a notebook's kernel printed outside cells."""
        return self.logs / f"{notebook}.kernel.log"


@dataclass(frozen=True)
class ChosenModel:
    """Which model of the run 04 chose, and by what rule; 05, the report and the deck read it.

    Attributes:
        model: the name of its folder under ``models/``.
        rule: how it was chosen (:data:`pneumo_helpers.selection.CHOICE_RULE` in 04).
    """

    model: str
    rule: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ChosenModel":
        data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str)
                                                 for k in ("model", "rule")):
            raise ValueError("a chosen-model record is a JSON object with strings 'model' and "
                             "'rule'")
        return cls(model=data["model"], rule=data["rule"])

    def write(self, layout: RunLayout) -> Path:
        with atomic_write(layout.chosen) as handle:
            handle.write(self.to_json())
        return layout.chosen

    @classmethod
    def read(cls, layout: RunLayout) -> "ChosenModel":
        """Raises FileNotFoundError (naming the step to run) when 04 has not chosen yet."""
        if not layout.chosen.is_file():
            raise FileNotFoundError(f"{layout.chosen} not found: run 04_model first")
        return cls.from_json(layout.chosen.read_text())


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


@dataclass(frozen=True)
class SiteThreshold:
    """A decision threshold chosen on a labelled sample of one site's films
    (``site_threshold.json`` in a model folder; ``pneumo calibrate`` writes it).

    Attributes:
        threshold: P(PNEUMONIA) at or above which a film is called PNEUMONIA, in (0, 1).
        rule: the threshold rule that chose it. model_sha256: the ``model.keras`` it belongs
            to; with another model file the record does not apply.
        sample_sha256, n_films, n_normal, n_pneumonia: which sample chose it.
        sensitivity, specificity, roc_auc: ``[value, ci_low, ci_high]`` on that sample (95 %
            patient bootstrap); in-sample, so optimistic for the site's next films.
    """

    threshold: float
    rule: str
    model_sha256: str
    sample_sha256: str
    n_films: int
    n_normal: int
    n_pneumonia: int
    sensitivity: list
    specificity: list
    roc_auc: list

    def write(self, folder: str | Path) -> Path:
        layout = ModelLayout(folder)
        with atomic_write(layout.site_threshold) as handle:
            handle.write(json.dumps(asdict(self), indent=2) + "\n")
        layout.refresh_manifest()
        return layout.site_threshold

    @classmethod
    def read(cls, folder: str | Path) -> "SiteThreshold | None":
        """The folder's record, or ``None`` when it has none.

        Raises:
            ValueError: malformed JSON, missing keys or a threshold outside (0, 1).
        """
        path = ModelLayout(folder).site_threshold
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            record = cls(**data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a site-threshold record ({exc}); re-run pneumo "
                             "calibrate or remove it") from None
        if not (isinstance(record.threshold, (int, float)) and 0.0 < record.threshold < 1.0):
            raise ValueError(f"{path}: threshold {record.threshold!r} is not in (0, 1); re-run "
                             "pneumo calibrate or remove it")
        return record

