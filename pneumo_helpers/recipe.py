"""A training, described by one frozen object.

Every training of the project — 04's candidates, the shipped model (``pneumo train``), the
sweep over seeds — is one :class:`Recipe` handed to
:func:`pneumo_helpers.experiment.run_candidate`; the profiles of
:class:`pneumo_helpers.config.RunConfig` build one, and a model folder's ``config.json``
records the one that trained it (:meth:`Recipe.from_config` reads it back).

    recipe = Recipe()                                   # the shipped model's recipe
    quick = recipe.replace(epochs=2, image_size=64)     # a variant; the original is unchanged
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["Recipe", "THRESHOLD_RULE", "model_words", "rule_words"]

#: How a decision threshold is chosen on labelled films, everywhere: the highest threshold
#: whose sensitivity there is at least 0.95 (:func:`pneumo_helpers.evaluate.choose_threshold`).
#: A screening sensitivity fixed, new films cost specificity first (normal films called
#: pneumonia), so the most specific threshold it allows travels better than Youden's J.
THRESHOLD_RULE = "sens>=0.95"


@dataclass(frozen=True)
class Recipe:
    """How one model is trained. Defaults: the shipped model's recipe.

    Attributes:
        architecture: a key of ``experiment.BUILDERS`` (``"five_block"``, ``"baseline"`` or
            an ImageNet backbone such as ``"DenseNet121"``).
        balance: class rebalancing, a key of ``balance.STRATEGIES``.
        image_size: side of the square greyscale input, pixels.
        batch_size: films per training batch. epochs: upper bound; early stopping on
            validation ROC AUC keeps the best epoch.
        augment: a key of ``augment.AUGMENTATIONS``.
        consistency: weight of the two-view consistency term (0: one view, plain
            cross-entropy).
        pretrain_epochs: epochs of contrastive pretraining of the encoder before training
            (five-block CNN only; 0: none).
        threshold_rule: how the threshold is chosen on validation.
        seed: every random choice of the training.
        download_weights: an ImageNet backbone may fetch its weights (else only Keras' cache).
    """

    architecture: str = "five_block"
    balance: str = "oversample"
    image_size: int = 112
    batch_size: int = 64
    epochs: int = 15
    augment: str = "framing-acq"
    consistency: float = 0.1
    pretrain_epochs: int = 30
    threshold_rule: str = THRESHOLD_RULE
    seed: int = 42
    download_weights: bool = True

    def __post_init__(self):
        for name in ("image_size", "batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.consistency < 0 or self.pretrain_epochs < 0:
            raise ValueError("consistency and pretrain_epochs must not be negative")

    @property
    def name(self) -> str:
        """``"<architecture>-<balance>"``, the model folder's usual name."""
        return f"{self.architecture}-{self.balance}"

    def replace(self, **changes) -> "Recipe":
        """A copy with ``changes`` (field names as keywords); unknown names raise TypeError."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "Recipe":
        """The recipe a model folder's ``config.json`` records: its ``recipe`` record when it
        has one, else its top-level keys (``model`` is the architecture; keys a recipe does not
        have are ignored)."""
        if isinstance(config.get("recipe"), dict):
            return cls(**config["recipe"])
        values = {f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config}
        if "model" in config:
            values["architecture"] = config["model"]
        if isinstance(values.get("augment"), dict):  # older folders stored the settings
            values.pop("augment")
        return cls(**values)


_ARCHITECTURE_WORDS = {"five_block": "five-block CNN", "baseline": "baseline CNN"}
_BALANCE_WORDS = {"oversample": "oversampling", "undersample": "undersampling",
                  "class_weight": "class weights", "none": "no rebalancing"}


def model_words(name: str) -> str:
    """A model folder's name (``"<architecture>-<balance>[-final]"``, :attr:`Recipe.name`) in
    the words a reviewer reads, e.g. ``"five-block CNN, oversampling, retrained in full"``;
    other names come back unchanged."""
    parts = name.split("-")
    if len(parts) not in (2, 3) or parts[1] not in _BALANCE_WORDS or \
            (len(parts) == 3 and parts[2] != "final"):
        return name
    words = [_ARCHITECTURE_WORDS.get(parts[0], parts[0]), _BALANCE_WORDS[parts[1]]]
    return ", ".join(words + (["retrained in full"] if len(parts) == 3 else []))


def rule_words(rule: str) -> str:
    """A threshold rule (:func:`pneumo_helpers.evaluate.choose_threshold`) in plain words:
    ``"sens>=0.95"`` -> ``"the highest threshold that keeps sensitivity at 0.95 or more"``."""
    rule = str(rule).strip().lower().replace(" ", "")
    if rule.startswith("sens>="):
        return f"the highest threshold that keeps sensitivity at {rule[6:]} or more"
    return {"youden": "the threshold with the largest sensitivity + specificity",
            "f1": "the threshold with the best F1 score for pneumonia"}.get(
        rule, f"a fixed threshold of {rule}")
