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

A run of ``pneumo train`` (``runs/train-full/``) holds the scrub's files, ``models/model/`` (the
shipped model) and ``train_full.json``.

It sits at the bottom of the package: it imports nothing of the project but :mod:`files` and
:mod:`metrics_report`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .files import atomic_write, sha256
from .metrics_report import MetricsReport

__all__ = ["RunLayout", "ModelLayout", "ChosenModel", "SiteThreshold", "read_json", "write_csv",
           "write_json"]


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
        """``metrics/<split>.json``: one split's
        :class:`~pneumo_helpers.metrics_report.MetricsReport`."""
        return self._folder("metrics") / f"{split}.json"

    def results(self) -> dict[str, MetricsReport]:
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


def write_csv(path: str | Path, table) -> Path:
    """Write a table of a run folder (a ``pandas.DataFrame``) as CSV without its index, through
    a temporary file, so a step that stops half-way never leaves half a table."""
    with atomic_write(path) as handle:
        table.to_csv(handle, index=False)
    return Path(path)


def read_json(path: str | Path) -> dict:
    """A JSON record of a run or model folder; a file that is not JSON raises ``ValueError``
    naming it and the way out."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-run the step that writes it")\
            from None


def write_json(path: str | Path, record: dict) -> Path:
    """Write a record of a run folder as indented JSON (values JSON cannot hold as text), through
    a temporary file like :func:`write_csv`."""
    with atomic_write(path) as handle:
        handle.write(json.dumps(record, indent=2, default=str))
    return Path(path)
