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
        metrics.json  metrics/<split>.json  metrics/val_shifts.csv          05_interpret
        cache/  logs/  notebooks/                        decoded images, kernel logs, executed copies

It sits at the bottom of the package: it imports nothing of the project but :mod:`files`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .files import atomic_write

__all__ = ["RunLayout", "ModelLayout", "ChosenModel"]


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
    history_json = property(lambda self: self.root / "history.json")
    backup = property(lambda self: self.root / "backup")
    val_metrics = property(lambda self: self.root / "val_metrics.json")
    val_predictions = property(lambda self: self.root / "val_predictions.csv")
    card = property(lambda self: self.root / "MODEL_CARD.md")
    #: What a shipped model folder holds besides its card and export.
    SHIPPED = ("model.keras", "config.json", "history.csv", "val_metrics.json")


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
    # 05_interpret
    metrics = property(lambda self: self.root / "metrics.json")
    val_shifts = property(lambda self: self._folder("metrics") / "val_shifts.csv")
    # shared
    cache = property(lambda self: self.root / "cache")
    logs = property(lambda self: self.root / "logs")
    notebooks = property(lambda self: self.root / "notebooks")
    figures = property(lambda self: self.root / "figures")

    def figure(self, name: str) -> Path:
        """``figures/<name>.png``; ``name`` like ``"05_roc_pr"``."""
        return self.figures / f"{name}.png"

    def split_metrics(self, split: str) -> Path:
        """``metrics/<split>.json``: one split's metrics with 95 % intervals."""
        return self._folder("metrics") / f"{split}.json"

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
        rule: how it was chosen (:data:`pneumo_helpers.experiment.CHOICE_RULE` in 04).
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
