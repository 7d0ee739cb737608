"""The run configuration: one small object every notebook and the CLI builds once.

A run lives in one folder (``runs/<name>/``). Each notebook reads what the previous one wrote
there, so any notebook can be re-run alone. Values come, in order of precedence, from explicit
keyword arguments (papermill parameters), then environment variables (``PNEUMO_*``), then the
profile defaults: ``sample`` for the bundled sample (small and fast, for CI) and ``full`` for a
real dataset folder.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

from .recipe import Recipe
from .runs import RunLayout

__all__ = ["RunConfig", "PROFILES", "SAMPLE_RECIPE", "CANDIDATES", "project_root", "shown_path", "SAMPLE_DIR"]

SAMPLE_DIR = Path(__file__).parent / "sample_data" / "chest_xray"

# What 04 compares, in both profiles: "architecture-strategy", or an architecture alone (then
# with the run's `balance`). The ImageNet backbones are skipped, with one line saying why, on
# a machine that has not got their weights and cannot download them (docs/transfer.md).
CANDIDATES = ("baseline-class_weight", "five_block-none", "five_block-undersample",
              "five_block-oversample", "five_block-class_weight",
              "EfficientNetB0", "ResNet50V2", "DenseNet121")

#: The recipe of a quick run on the bundled sample (CI): small, one view, no pretraining.
SAMPLE_RECIPE = Recipe(image_size=64, batch_size=32, epochs=4, balance="class_weight",
                       augment="mild", consistency=0.0, pretrain_epochs=0)

# What differs between a quick run on the bundled sample and a run on the real data. `recipe`
# is how the final model of a run trains; the full profile's is also the shipped model's
# (`pneumo train`). Why each part of it: docs/generalisation.md.
PROFILES: dict[str, dict] = {
    "sample": dict(recipe=SAMPLE_RECIPE, compare_epochs=4, val_fraction=0.2, test_fraction=0.2,
                   lime_samples=300, min_val_auc=0.85, min_test_auc=0.9,
                   candidates=CANDIDATES),
    "full": dict(recipe=Recipe(), compare_epochs=6, val_fraction=0.15, test_fraction=0.15,
                 lime_samples=1000, min_val_auc=0.95, min_test_auc=0.9,
                 candidates=CANDIDATES),
}
#: RunConfig fields that override the profile's recipe (``PNEUMO_EPOCHS=2``, ...).
_RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))


def project_root(start: Path | None = None) -> Path:
    """The folder holding this project's ``pyproject.toml``, searched upwards from ``start``.

    Falls back to ``start`` (default: the working directory) for an installed package used
    outside a checkout, so runs then land in ``./runs``.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "pneumo_helpers").is_dir():
            return folder
    return start


def shown_path(path: str | Path) -> str:
    """``path`` as notebooks and reports show it: relative to the project (``runs/full``,
    ``../shared/data/chest_xray``), never the machine's absolute path, which means nothing to
    a reader and leaks the author's folders. Further away, only the last two parts."""
    # abspath, not resolve: a dataset linked in beside the project is shown where it is linked.
    path = Path(os.path.abspath(Path(path).expanduser()))
    root = project_root()
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        relative = Path(os.path.relpath(path, root))
        if relative.parts[:2] != ("..", ".."):  # beside the project (../shared/...): say where
            return relative.as_posix()
        return "…/" + "/".join(path.parts[-2:])


@dataclasses.dataclass
class RunConfig:
    """Everything a run needs to know, with defaults that work on the bundled sample.

    The training fields (``image_size`` ... ``download_weights``, ``seed``) override the
    profile's :class:`~pneumo_helpers.recipe.Recipe`; left ``None`` they take its value.
    :attr:`recipe` is the result, what every training of the run is given.

    Attributes:
        data_dir: dataset folder in the Kaggle layout, or ``None`` to locate one (see
            :func:`pneumo_helpers.obtain.locate_dataset`).
        run_dir: folder that receives every artifact of the run.
        profile: ``"sample"`` or ``"full"``; picks the defaults below.
        image_size: side of the square model input, in pixels.
        batch_size: images per training batch.
        epochs: maximum training epochs of the final model (early stopping may end sooner).
        compare_epochs: maximum epochs of each configuration compared in 04.
        architecture: the final model's builder, a key of ``experiment.BUILDERS`` (the CNNs
            ``five_block`` and ``baseline``, or an ImageNet backbone: ``EfficientNetB0``,
            ``ResNet50V2``, ``DenseNet121``).
        candidates: what 04 compares (``PNEUMO_CANDIDATES="five_block-oversample,DenseNet121"``):
            ``architecture-strategy`` entries, or an architecture alone for ``balance``
            (``selection.candidate_pairs``).
        download_weights: fetch an ImageNet backbone's weights into Keras' cache when they are
            not there (as ``keras.applications`` does); ``False``
            (``PNEUMO_DOWNLOAD_WEIGHTS=0``, set by the tests): use only cached weights.
        balance: the final model's rebalancing: ``"none"``, ``"undersample"``,
            ``"oversample"`` or ``"class_weight"`` (04 compares them all).
        augment: a recipe of ``augment.AUGMENTATIONS`` for every training of the run.
        consistency: weight of the two-view consistency term in every training of the run
            (``experiment.run_candidate``); 0: none.
        pretrain_epochs: epochs of contrastive pretraining of the encoder before every
            training of the run (:mod:`pneumo_helpers.pretrain`); 0: none.
        val_fraction, test_fraction: share of patients cut for validation / (missing) test.
        lime_samples: perturbations per LIME explanation.
        threshold_rule: how the decision threshold is chosen on validation (see
            :func:`pneumo_helpers.evaluate.choose_threshold`); default: the highest threshold
            with validation sensitivity >= 0.95.
        min_val_auc, min_test_auc: ROC AUC floors a healthy run clears (validation: each
            architecture's best candidate in 04; test: the chosen model in 05). Printed as
            pass/fail in cells CI compares, so a model that stops learning fails CI. The
            sample's floors were set below the lowest of eight healthy seeds (README, "What CI
            checks").
        seed: seed of every random choice in training (initialisation, shuffling,
            augmentation, rebalancing, bootstrap).
        split_seed: seed of the patient-level validation/test split. Separate from ``seed`` so
            that varying the training seed keeps the images a run is validated on.
        ignore_unknown_folders: leave out folders of a split that are not a class (listed as
            not taken by 01) instead of stopping with an error.
        external_dir: a labelled folder of films from another site or batch (``NORMAL/`` and
            ``PNEUMONIA/``, or a dataset folder with ``test/``): 04 and 05 score every model
            there beside validation (:mod:`pneumo_helpers.external`); ``None``: none.
        evaluations_dir: the folder of official-split receipts (``../shared/evaluations``
            here): 05 and the deck show the shipped model's locked-half figures from the one
            naming its ``model.keras``; ``None``: none shown.
        model: what 05 interprets: ``None`` (the model 04 chose), ``"shipped"`` (the model in
            the package) or the name of a model folder of the run.
    """

    data_dir: str | None = None
    run_dir: str | None = None
    profile: str = "sample"
    image_size: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    compare_epochs: int | None = None
    architecture: str | None = None
    candidates: tuple[str, ...] | None = None
    download_weights: bool | None = None
    balance: str | None = None
    augment: str | None = None
    consistency: float | None = None
    pretrain_epochs: int | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    lime_samples: int | None = None
    threshold_rule: str | None = None
    min_val_auc: float | None = None
    min_test_auc: float | None = None
    seed: int | None = None
    split_seed: int = 42
    ignore_unknown_folders: bool = False
    external_dir: str | None = None
    evaluations_dir: str | None = None
    model: str | None = None

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {self.profile!r}")
        profile = PROFILES[self.profile]
        for key, value in {**profile["recipe"].to_dict(), **profile}.items():
            if key != "recipe" and getattr(self, key) is None:
                setattr(self, key, value)
        if self.run_dir is None:
            self.run_dir = str(project_root() / "runs" / self.profile)
        self.run_dir = str(Path(self.run_dir).expanduser().resolve())
        for key in ("data_dir", "external_dir", "evaluations_dir"):
            if getattr(self, key) is not None:
                setattr(self, key, str(Path(getattr(self, key)).expanduser()))

    @classmethod
    def from_params(cls, **params) -> "RunConfig":
        """Build from notebook parameters, falling back to ``PNEUMO_*`` environment variables.

        A parameter left as ``None`` is read from the environment variable of the same name in
        upper case with a ``PNEUMO_`` prefix (``data_dir`` -> ``PNEUMO_DATA_DIR``). The profile
        defaults to ``full`` when a dataset folder is given and ``sample`` otherwise.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        types = typing.get_type_hints(cls)
        unknown = set(params) - set(fields)
        if unknown:
            raise TypeError(f"unknown run parameters: {sorted(unknown)}")
        values = {}
        for name in fields:
            value = params.get(name)
            if value is None:
                env = os.environ.get(f"PNEUMO_{name.upper()}")
                if env not in (None, ""):
                    value = _coerce(env, types[name])
            if value is not None:
                values[name] = value
        values.setdefault("profile", "full" if values.get("data_dir") else "sample")
        return cls(**values)

    @property
    def recipe(self) -> Recipe:
        """How the run's final model trains: the profile's recipe with this config's values."""
        return Recipe(**{name: getattr(self, name) for name in _RECIPE_FIELDS})

    @property
    def layout(self) -> RunLayout:
        """Every path of this run's folder (:class:`pneumo_helpers.runs.RunLayout`); the
        folder itself is created, since a config is for a run being made."""
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        return RunLayout(self.run_dir)

    def summary(self) -> str:
        """Two lines for the top of a notebook: the settings that shape the run, and where it
        writes (relative to the project)."""
        films = "the bundled sample" if self.profile == "sample" else "the full dataset"
        return (f"Settings for {films}: films at {self.image_size} px, up to {self.epochs} "
                f"epochs, seed {self.seed}.\nResults go to {shown_path(self.run_dir)}/.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(text: str, annotation) -> object:
    """An environment variable's text as the field's declared type (``int | None`` -> int)."""
    kind = next(t for t in (typing.get_args(annotation) or (annotation,)) if t is not type(None))
    if typing.get_origin(kind) is tuple:  # "a, b" -> ("a", "b"); "" never gets here
        item = typing.get_args(kind)[0]
        return tuple(item(part) for part in text.replace(" ", "").split(",") if part)
    if kind is bool:
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"expected 1/0, true/false or yes/no, got {text!r}")
        return text.lower() in ("1", "true", "yes")
    return kind(text)
