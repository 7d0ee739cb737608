"""One training configuration end to end: rows of a manifest in, a chosen model folder out.

:func:`run_candidate` is what notebook 04 calls once per configuration it compares and what
``pneumo train`` (:mod:`pneumo_helpers.ship`) calls for the shipped model, so both train
exactly the same way:

    rebalance the training rows -> cached, augmented tf.data stream -> build the model ->
    train (checkpoints, early stopping, resume) -> predict validation -> choose the threshold
    on validation -> metrics with 95 % patient-bootstrap intervals -> files next to the model.

The model folder then holds ``model.keras``, ``config.json`` (settings, seed, versions,
timings), ``history.csv``, ``val_metrics.json`` (with the threshold) and
``val_predictions.csv``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import balance, distribute, evaluate, files, generators, models, pretrain, train
from .config import RunConfig
from .recipe import Recipe
from .data import manifest_hash
from .runs import ChosenModel, MetricsReport, ModelLayout

__all__ = ["BUILDERS", "TRANSFER", "FINE_TUNE", "Comparison", "candidate_pairs",
           "comparison_table", "TIE", "CHOICE_RULE", "CandidateResult", "run_candidate",
           "candidate_recipe",
           "average_candidates", "compare_candidates", "choose", "interpreted_model", "compare",
           "read_candidates", "pick_best", "findings", "learning_checks"]

BUILDERS = {"baseline": models.build_baseline_cnn, "five_block": models.build_five_block_cnn,
            "EfficientNetB0": models.build_efficientnetb0, "ResNet50V2": models.build_resnet50v2,
            "DenseNet121": models.build_densenet121}
# The architectures that start from ImageNet weights and train in two stages.
TRANSFER = tuple(models.BACKBONES)
# Stage 2 of a transfer model: what models.unfreeze_top opens and at which learning rate.
FINE_TUNE = dict(n_layers=20, learning_rate=1e-5)
# Validation ROC AUCs closer than this are a tie, broken by the Brier score (see pick_best).
TIE = 0.005
CHOICE_RULE = f"best validation ROC AUC; among those within {TIE} of it, lowest Brier score"


@dataclass
class CandidateResult:
    """What one trained configuration produced (see the module docstring for the files)."""

    name: str
    out_dir: Path
    history: pd.DataFrame
    metrics: pd.DataFrame
    threshold: float
    config: dict


def run_candidate(train_rows: pd.DataFrame, val_rows: pd.DataFrame, recipe: Recipe, *,
                  out_dir, name: str | None = None, n_boot: int = 1000, cache_dir=None,
                  distribution: str | None = None, model_kwargs: dict | None = None,
                  verbose="auto") -> CandidateResult:
    """Train ``recipe`` and evaluate it on validation.

    Args:
        train_rows, val_rows: manifest rows (``path``, ``label``, ``patient``, ``sha256``).
        recipe: how to train (:class:`pneumo_helpers.recipe.Recipe`). A :data:`TRANSFER`
            architecture trains in two stages (:func:`_fit_two_stages`) and raises
            :class:`pneumo_helpers.models.WeightsUnavailable` before any training when its
            ImageNet weights can be neither found nor downloaded. With two views
            (``recipe.consistency``) under a ``distribution``, ``batch_size`` must be a
            multiple of the replica count. Pretraining (``recipe.pretrain_epochs``) runs on
            one device and is reused from ``cache_dir`` when the same films, architecture,
            augmentation and seed were pretrained before.
        out_dir: the model folder (an interrupted training there resumes). name: default
            ``recipe.name``. n_boot: bootstrap resamples for the intervals.
        cache_dir: decoded-image cache shared by every candidate.
        distribution: ``None`` (one device); ``"mirrored"`` (``tf.distribute``: every GPU
            of the machine; the model is built in its scope); or ``"jax"``: the processes of a
            JAX data-parallel training, every one running this with the same arguments once
            :func:`pneumo_helpers.distribute.init_data_parallel` has joined them (``pneumo
            train --distribution jax``). ``batch_size`` is the global batch. With ``"jax"``
            every batch is whole (:func:`~pneumo_helpers.distribute.whole_batches`), each
            process writes to its own folder (the chief's is ``out_dir``) and the validation
            afterwards runs on one device, on every row.
        model_kwargs: extra builder arguments, not part of a recipe (tests: ``weights=None``
            for a backbone with random weights).
    """
    model, strategy, image_size = recipe.architecture, recipe.balance, recipe.image_size
    batch_size, epochs, seed, consistency = (recipe.batch_size, recipe.epochs, recipe.seed,
                                             recipe.consistency)
    pretrain_epochs, threshold_rule = recipe.pretrain_epochs, recipe.threshold_rule
    if model in TRANSFER:
        model_kwargs = dict(download=recipe.download_weights, **(model_kwargs or {}))
    if model not in BUILDERS:
        raise ValueError(f"model must be one of {sorted(BUILDERS)}, got {model!r}")
    name = name or recipe.name
    augment_used = generators.AUGMENTATIONS[recipe.augment]
    out_dir = Path(out_dir)
    data_parallel = distribution == "jax"
    if data_parallel:
        distribute.check_data_parallel()
        out_dir = distribute.process_out_dir(out_dir)
    elif distribution not in (None, *distribute.DISTRIBUTIONS):
        raise ValueError(f"distribution must be None or one of {distribute.DISTRIBUTIONS}, "
                         f"got {distribution!r}")
    views = 2 if consistency else 1
    if views == 2 and distribution is not None:
        # Each replica gets a contiguous share of every batch: an even one keeps both views of
        # each of its films together, as the consistency term pairs adjacent rows.
        replicas = distribute.replica_count(None if data_parallel else distribution)
        if batch_size % replicas:
            raise ValueError(f"with consistency, batch_size ({batch_size}) must be a multiple "
                             f"of the {replicas} replicas, so that each one gets both views "
                             "of its films")
    train.set_seed(seed)
    chosen = balance.rebalance(train_rows["label"], strategy, seed=seed)
    common = dict(image_size=image_size, batch_size=batch_size, seed=seed, cache_dir=cache_dir)
    train_ds = generators.make_dataset(train_rows, training=True, augment=augment_used,
                                       indices=chosen.indices, views=views, **common)
    val_ds = generators.make_dataset(val_rows, training=False, **common)
    fit_train, fit_val = train_ds, val_ds
    # A short batch would leave one JAX process waiting for the others, and could split a
    # pair of views between two replicas.
    if data_parallel or (views == 2 and distribution is not None):
        fit_train = distribute.whole_batches(train_ds, batch_size * views)
    if data_parallel:
        val_batch = distribute.even_batch_size(len(val_rows), at_most=batch_size)
        fit_val = distribute.whole_batches(generators.make_dataset(
            val_rows, training=False, **{**common, "batch_size": val_batch}), val_batch)
    net = distribute.build_in_scope(BUILDERS[model], None if data_parallel else distribution,
                                    image_size=image_size, channels=1,
                                    consistency=consistency, **(model_kwargs or {}))
    config = dict(name=name, model=model, balance=strategy, image_size=image_size, channels=1,
                  batch_size=batch_size, epochs=epochs, seed=seed,
                  augment=dataclasses.asdict(augment_used) if augment_used else None,
                  model_kwargs=model_kwargs or {}, consistency=consistency,
                  pretrain_epochs=pretrain_epochs, recipe=recipe.to_dict(),
                  distribution=distribution, threshold_rule=threshold_rule,
                  manifest_hash=manifest_hash(pd.concat([train_rows, val_rows])),
                  n_train=len(train_rows), n_val=len(val_rows))
    if pretrain_epochs and not train.resumable(out_dir):
        _pretrain(net, train_rows, out_dir=out_dir, epochs=pretrain_epochs, augment=augment_used,
                  config=config, common=common, verbose=verbose)
        train.set_seed(seed)  # the same supervised training whether pretrained now or reused
    fit = _fit_two_stages if model in TRANSFER else train.train_model
    history = fit(net, fit_train, fit_val, out_dir=out_dir, epochs=epochs,
                  class_weight=chosen.class_weight, config=config, verbose=verbose)
    with distribute.one_device():  # after a JAX training: this process alone, every row
        if data_parallel:  # the best epoch's weights, placed on this process only
            import keras

            net = keras.models.load_model(ModelLayout(out_dir).model, compile=False)
        return _validate(net, val_rows, val_ds, out_dir=out_dir, name=name, history=history,
                         threshold_rule=threshold_rule, n_boot=n_boot, seed=seed)


def _pretrain(net, train_rows: pd.DataFrame, *, out_dir: Path, epochs: int, augment,
              config: dict, common: dict, verbose) -> None:
    """``run_candidate``'s contrastive pretraining, copied into ``net``; reused from the cache
    folder when the same films, architecture, augmentation and seed were pretrained before
    (04's candidates differ only after it).

    It trains an encoder of its own, built on this device alone under the seed, so its result
    does not depend on which candidate ran first, and the NT-Xent loss sees every view of a
    batch in one place under a distribution.
    """
    seed = config["seed"]
    recipe = {key: config[key] for key in ("model", "image_size", "batch_size", "augment",
                                           "model_kwargs", "pretrain_epochs")}
    weights, history = (pretrain.cached(common["cache_dir"], dict(
        recipe, seed=seed, films=manifest_hash(train_rows))) if common["cache_dir"]
        else (None, None))
    with distribute.one_device():
        train.set_seed(seed)
        encoder = BUILDERS[config["model"]](image_size=config["image_size"], channels=1,
                                            **config["model_kwargs"])
        if weights is not None and weights.is_file() and history.is_file():
            encoder.load_weights(weights)
            pretrained = pd.read_csv(history)
        else:
            # Every film once, unbalanced: no label is read. Its own seed, so the views it
            # draws are not the supervised stream's.
            stream = generators.make_dataset(train_rows, training=True, augment=augment,
                                             views=2, **{**common, "seed": seed + 1})
            pretrained = pretrain.pretrain(encoder, stream, epochs=epochs, verbose=verbose)
            if weights is not None:
                # Keras writes weights to a path only: beside, then renamed (one name per
                # process: those of a data-parallel training all write it), so nobody loads
                # half a file; the history, written last, says the weights are whole.
                weights.parent.mkdir(parents=True, exist_ok=True)
                partial = weights.with_name(f"partial-{os.getpid()}-{weights.name}")
                encoder.save_weights(partial)
                partial.replace(weights)
                with files.atomic_write(history) as handle:
                    pretrained.to_csv(handle, index=False)
    net.set_weights(encoder.get_weights())
    out_dir.mkdir(parents=True, exist_ok=True)
    pretrained.to_csv(ModelLayout(out_dir).pretrain_history, index=False)


def _fit_two_stages(net, fit_train, fit_val, *, out_dir: Path, epochs: int, class_weight,
                    config: dict, verbose) -> pd.DataFrame:
    """Transfer learning's two stages, as :func:`pneumo_helpers.train.train_model` (same
    arguments, same files in ``out_dir``).

    Stage 1 trains the head on the frozen backbone for ``epochs - epochs // 2`` epochs in
    ``out_dir/head/``; stage 2 opens the backbone's top layers (:data:`FINE_TUNE`, through
    :func:`pneumo_helpers.models.unfreeze_top`) and trains at the lower learning rate for the
    other ``epochs // 2`` in ``out_dir``, starting from stage 1's best epoch, and keeps its own
    best epoch. With ``epochs=1`` only the head trains. An interrupted stage 2 resumes without
    repeating stage 1.

    Returns:
        Both stages' epochs, numbered on, with a ``stage`` column (``head``, ``fine-tune``);
        ``config.json`` counts both (``stages``: epochs of each).
    """
    fine_epochs = epochs // 2
    common = dict(class_weight=class_weight, verbose=verbose)
    if not fine_epochs:
        return train.train_model(net, fit_train, fit_val, out_dir=out_dir, epochs=epochs,
                                 config=dict(config, stages=dict(head=epochs)),
                                 **common).assign(stage="head")
    head_dir = out_dir / "head"
    if train.resumable(out_dir):  # stage 2 was under way: its backup restores the weights
        head = pd.read_csv(ModelLayout(head_dir).history_csv)
    else:
        head = train.train_model(net, fit_train, fit_val, out_dir=head_dir,
                                 epochs=epochs - fine_epochs, config=config, **common)
    models.unfreeze_top(net, **FINE_TUNE)
    fine = train.train_model(net, fit_train, fit_val, out_dir=out_dir, epochs=fine_epochs,
                             config=dict(config, fine_tune=FINE_TUNE), **common)
    ModelLayout(head_dir).model.unlink(missing_ok=True)  # stage 2 starts from it; now spent
    history = pd.concat([head.assign(stage="head"),
                         fine.assign(stage="fine-tune", epoch=fine["epoch"] + len(head))],
                        ignore_index=True)
    files = ModelLayout(out_dir)
    history.to_csv(files.history_csv, index=False)
    history.to_json(files.history_json, orient="records", indent=2)
    record = json.loads(files.config.read_text())
    seconds = [round(float(s), 3) for s in history.get("epoch_seconds", [])]
    record.update(epochs_max=epochs, epochs_run=len(history),
                  stages=dict(head=len(head), fine_tune=len(fine)), seconds_per_epoch=seconds,
                  mean_seconds_per_epoch=round(sum(seconds) / len(seconds), 3) if seconds
                  else None)
    files.config.write_text(json.dumps(record, indent=2, default=str))
    return history


def _validate(net, val_rows: pd.DataFrame, val_ds, *, out_dir: Path, name: str,
              history: pd.DataFrame, threshold_rule: str, n_boot: int,
              seed: int) -> CandidateResult:
    """Predict validation, choose the threshold there, write the metrics and predictions."""
    y_val = balance.encode_labels(val_rows["label"])
    p_val = evaluate.predict_proba(net, val_ds)
    threshold = evaluate.choose_threshold(y_val, p_val, rule=threshold_rule)
    metrics = evaluate.evaluate(y_val, p_val, threshold=threshold, groups=val_rows["patient"],
                                n_boot=n_boot, seed=seed)
    files = ModelLayout(out_dir)
    evaluate.to_report(metrics, threshold=threshold, rule=threshold_rule, split="val",
                       model=name).write(files.val_metrics)
    val_rows[["path", "label", "patient"]].assign(probability=p_val).to_csv(
        files.val_predictions, index=False)
    return CandidateResult(name=name, out_dir=out_dir, history=history, metrics=metrics,
                           threshold=threshold,
                           config=json.loads(files.config.read_text()))


def average_candidates(members: list[CandidateResult], val_rows: pd.DataFrame, *, out_dir,
                       name: str = "average", batch_size: int = 64, n_boot: int = 1000,
                       cache_dir=None) -> CandidateResult:
    """One model averaging the trained ``members``' probabilities, validated like each of them.

    The members (e.g. one recipe trained with several seeds by :func:`run_candidate`, on the
    same rows) are joined by :func:`pneumo_helpers.models.average_models` into one
    ``model.keras`` in ``out_dir``; its threshold is chosen on ``val_rows`` by the members'
    rule, and the folder gets the files of :func:`run_candidate`: ``config.json`` (the
    members' shared settings, their ``seeds`` and names, summed parameters, mean seconds per
    epoch), ``history.csv`` (every member's epochs, with a ``member`` column),
    ``val_metrics.json`` and ``val_predictions.csv``.
    """
    import keras

    if len(members) < 2:
        raise ValueError(f"average_candidates needs at least two members, got {len(members)}")
    out_dir = distribute.process_out_dir(out_dir)  # the chief's is out_dir
    files = ModelLayout(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = members[0].config
    shared = ("model", "balance", "image_size", "channels", "batch_size", "epochs", "augment",
              "model_kwargs", "consistency", "pretrain_epochs", "threshold_rule",
              "manifest_hash", "n_train", "n_val", "versions")
    differ = [key for key in shared if any(m.config.get(key) != first.get(key) for m in members)]
    if differ:
        raise ValueError(f"members differ in {differ}: only models trained alike on the same "
                         "rows are averaged here")
    config = dict(name=name, members=[m.name for m in members],
                  seeds=[m.config["seed"] for m in members],
                  **{key: first.get(key) for key in shared},
                  mean_seconds_per_epoch=float(sum(m.config["mean_seconds_per_epoch"]
                                                   for m in members) / len(members)))
    history = pd.concat([m.history.assign(member=m.name) for m in members], ignore_index=True)
    history.to_csv(files.history_csv, index=False)
    val_ds = generators.make_dataset(val_rows, training=False, image_size=first["image_size"],
                                     batch_size=batch_size, seed=first["seed"],
                                     cache_dir=cache_dir)
    with distribute.one_device():  # after a JAX data-parallel training: each process alone
        net = models.average_models([keras.models.load_model(ModelLayout(m.out_dir).model,
                                                             compile=False) for m in members])
        net.save(files.model)
        files.config.write_text(json.dumps(dict(config, parameters=int(net.count_params())),
                                           indent=2))
        return _validate(net, val_rows, val_ds, out_dir=out_dir, name=name, history=history,
                         threshold_rule=first["threshold_rule"], n_boot=n_boot,
                         seed=first["seed"])


def candidate_recipe(cfg: RunConfig, *, model: str | None = None,
                     strategy: str | None = None, epochs: int | None = None) -> Recipe:
    """The run's recipe (``cfg.recipe``) for one of 04's candidates: ``model``, ``strategy``
    and ``epochs`` replace the architecture, balance and epochs. The baseline stays the
    textbook baseline and the ImageNet backbones start from their weights: contrastive
    pretraining is the five-block CNN's."""
    recipe = cfg.recipe.replace(**{key: value for key, value in dict(
        architecture=model, balance=strategy, epochs=epochs).items() if value is not None})
    if recipe.architecture != "five_block":
        recipe = recipe.replace(pretrain_epochs=0)
    return recipe


def candidate_pairs(cfg: RunConfig) -> list[tuple[str, str]]:
    """``cfg.candidates`` as ``(architecture, strategy)`` pairs: an entry
    ``"architecture-strategy"`` (``"five_block-oversample"``) or an architecture alone
    (``"DenseNet121"``: with ``cfg.balance``). Raises ``ValueError`` naming a bad entry."""
    pairs = []
    for entry in cfg.candidates:
        model, _, strategy = entry.partition("-")
        strategy = strategy or cfg.balance
        if model not in BUILDERS or strategy not in balance.STRATEGIES:
            raise ValueError(f"candidate {entry!r}: expected ARCHITECTURE or "
                             f"ARCHITECTURE-STRATEGY with an architecture of {sorted(BUILDERS)} "
                             f"and a strategy of {sorted(balance.STRATEGIES)}")
        pairs.append((model, strategy))
    return pairs


class Comparison(list):
    """The trained candidates of :func:`compare_candidates` (a list of
    :class:`CandidateResult`), and ``skipped``: ``{name: the one line saying why}`` for the
    transfer candidates whose weights this machine could not get."""

    def __init__(self, results=(), skipped: dict[str, str] | None = None):
        super().__init__(results)
        self.skipped = dict(skipped or {})


def compare_candidates(train_rows: pd.DataFrame, val_rows: pd.DataFrame, cfg: RunConfig, *,
                       candidates=None, n_boot: int = 200, report=print) -> Comparison:
    """Train every candidate for ``cfg.compare_epochs`` into ``models/<arch>-<strategy>/``.

    The comparison step of 04: same cached, augmented stream, same seed, early stopping on
    validation ROC AUC; an interrupted run resumes. ``candidates``: ``(architecture,
    strategy)`` pairs; default :func:`candidate_pairs` of ``cfg``. ``report`` gets one line per
    candidate (epochs, seconds per epoch, validation ROC AUC; for a transfer candidate without
    weights, ``skipped: <why>``, and the series goes on); ``n_boot`` bootstrap resamples give
    the intervals (few: only the chosen model's are reported).
    """
    results = Comparison()
    for model, strategy in (candidates or candidate_pairs(cfg)):
        name = f"{model}-{strategy}"
        try:
            result = run_candidate(train_rows, val_rows, candidate_recipe(
                cfg, model=model, strategy=strategy, epochs=cfg.compare_epochs),
                n_boot=n_boot, verbose=0, out_dir=cfg.layout.model(name).root,
                cache_dir=cfg.layout.cache)
        except models.WeightsUnavailable as err:
            results.skipped[name] = str(err)
            report(f"{name:26s} skipped: {err}")
            continue
        results.append(result)
        auc = result.metrics.set_index("metric").loc["roc_auc", "value"]
        report(f"{result.name:26s} {len(result.history)} epochs, "
               f"{result.config['mean_seconds_per_epoch']:.1f} s/epoch, val ROC AUC {auc:.3f}")
    return results


def choose(results: list[CandidateResult], train_rows: pd.DataFrame, val_rows: pd.DataFrame,
           cfg: RunConfig, *, n_boot: int = 1000) -> CandidateResult:
    """04's choice: :func:`pick_best` among ``results``, retrained for ``cfg.epochs`` as
    ``<name>-final`` when that is more than the comparison's epochs, recorded in the run
    folder as the chosen model (:class:`pneumo_helpers.runs.ChosenModel`)."""
    best = pick_best(compare(results))
    chosen = next(r for r in results if r.name == best)
    if cfg.epochs > cfg.compare_epochs:
        chosen = run_candidate(train_rows, val_rows, candidate_recipe(
            cfg, model=chosen.config["model"], strategy=chosen.config["balance"]),
            n_boot=n_boot, verbose=0, name=f"{best}-final",
            out_dir=cfg.layout.model(f"{best}-final").root, cache_dir=cfg.layout.cache)
    ChosenModel(model=chosen.name, rule=CHOICE_RULE).write(cfg.layout)
    return chosen


def interpreted_model(cfg: RunConfig):
    """The Keras model 05 interprets, as a :class:`pneumo_helpers.inference.LoadedModel`.

    ``cfg.model``: ``None`` — the one 04 chose (read from the run folder); ``"shipped"`` — the
    model in the package (trained on the Kermany training split, so splits cut from that split
    overlap its training data); else the name of a model folder of the run. Always the Keras
    runtime: Grad-CAM and LIME need the model itself.
    """
    from . import inference

    if cfg.model == "shipped":
        return inference.load_model(runtime="keras")
    name = cfg.model or ChosenModel.read(cfg.layout).model
    return inference.load_model(cfg.layout.model(name).root, runtime="keras")


def comparison_table(results: Comparison,
                     metrics=("roc_auc", "pr_auc", "brier", "accuracy", "recall",
                              "specificity")) -> pd.DataFrame:
    """04's table: one row per candidate, trained or skipped, in the order compared.

    Columns ``metrics`` (validation values; empty for a skipped candidate) and ``status``:
    ``trained``, or ``skipped: <the one line saying why>``.
    """
    wide = compare(results).pivot_table(index="model", columns="metric", values="value")
    wide = wide.reindex(columns=list(metrics))
    wide = wide.reindex([r.name for r in results] + list(results.skipped))
    wide.index.name, wide.columns.name = "model", None
    return wide.assign(status=["trained"] * len(results)
                       + [f"skipped: {why}" for why in results.skipped.values()])


def compare(results: list[CandidateResult]) -> pd.DataFrame:
    """Tidy table ``model, metric, value, ci_low, ci_high`` of several candidates."""
    return pd.concat([r.metrics.assign(model=r.name) for r in results], ignore_index=True)


def read_candidates(models_dir) -> pd.DataFrame:
    """The same tidy table, read back from every ``*/val_metrics.json`` under ``models_dir``."""
    rows = []
    for path in sorted(ModelLayout(f).val_metrics for f in Path(models_dir).iterdir()
                       if ModelLayout(f).val_metrics.is_file()):
        for metric, cell in MetricsReport.read(path).metrics.items():
            rows.append(dict(model=path.parent.name, metric=metric, **cell._asdict()))
    return pd.DataFrame(rows, columns=["model", "metric", "value", "ci_low", "ci_high"])


def pick_best(table: pd.DataFrame, *, metric: str = "roc_auc", tie: float = TIE,
              tie_breaker: str = "brier") -> str:
    """The model with the best validation ``metric``; among those within ``tie`` of the best,
    the one with the lowest ``tie_breaker`` (Brier score: better calibrated).

    ``table``: the tidy table of :func:`compare` / :func:`read_candidates`.
    """
    wide = table.pivot_table(index="model", columns="metric", values="value")
    close = wide[wide[metric] >= wide[metric].max() - tie]
    return str(close[tie_breaker].idxmin())


def learning_checks(table: pd.DataFrame, *, floor: float, metric: str = "roc_auc") -> list[str]:
    """Per architecture, whether its best candidate reached ``floor`` on validation.

    One line per architecture (the part of the model name before ``-``), from
    :func:`evaluate.floor_check`: the same text on every healthy run, so notebook 04 prints it
    in a cell CI compares. Checking each architecture, not only the chosen model, catches a
    five-block CNN that stopped learning even when the baseline wins the comparison.
    """
    wide = table.pivot_table(index="model", columns="metric", values="value")[metric]
    families = wide.groupby(wide.index.str.split("-").str[0], sort=True).max()
    name = {"roc_auc": "ROC AUC"}.get(metric, metric)
    return [evaluate.floor_check(f"{family}: best validation {name}", value, floor)
            for family, value in families.items()]


def findings(table: pd.DataFrame, chosen: str, *, metric: str = "roc_auc") -> list[str]:
    """What a comparison shows, in sentences written from its numbers (for notebook 04).

    ``table``: the tidy table of :func:`compare`; ``chosen``: the model :func:`pick_best`
    returned. Says which candidates the chosen one cannot be told apart from (overlapping 95 %
    intervals of ``metric``), how the baseline compares, how far the rebalancing strategies of
    the five-block CNN spread, and which candidates rank worse than chance (``metric`` < 0.5
    for ROC AUC: they have not learned).
    """
    def cell(model, name):
        row = table[(table["model"] == model) & (table["metric"] == name)]
        if row.empty:
            raise ValueError(f"the table has no {name!r} for model {model!r}")
        return row.iloc[0]

    def interval(row):
        return f"{row['value']:.3f} (95% CI {row['ci_low']:.3f}–{row['ci_high']:.3f})"

    name = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC"}.get(metric, metric)
    best, brier = cell(chosen, metric), cell(chosen, "brier")
    others = [m for m in dict.fromkeys(table["model"]) if m != chosen]
    out = [f"Best in the comparison: **{chosen}**, validation {name} {interval(best)}, "
           f"Brier score {interval(brier)} (after the comparison's epochs; a retrained final "
           "model reports its own numbers above)."]
    overlap = [m for m in others
               if cell(m, metric)["ci_high"] >= best["ci_low"]
               and cell(m, metric)["ci_low"] <= best["ci_high"]]
    if overlap:
        out.append(f"Its {name} interval overlaps those of {', '.join(overlap)}: this "
                   "validation split cannot rank them apart; the rule (best point estimate, "
                   f"Brier score among those within {TIE}) still picks one, but read it as a "
                   "choice, not a proven win.")
    elif others:
        out.append(f"No other candidate's {name} interval overlaps it: a clear lead on this "
                   "validation split.")
    baselines = [m for m in others if m.startswith("baseline")]
    if baselines and not chosen.startswith("baseline"):
        base = cell(baselines[0], metric)
        out.append(f"The baseline CNN ({baselines[0]}) reached {name} {base['value']:.3f} and "
                   f"Brier {cell(baselines[0], 'brier')['value']:.3f}, against "
                   f"{best['value']:.3f} and {brier['value']:.3f} for {chosen} (both after "
                   "the comparison's epochs).")
    strategies = [m for m in dict.fromkeys(table["model"]) if m.startswith("five_block-")]
    if len(strategies) > 1:
        values = {m: cell(m, metric)["value"] for m in strategies}
        low, high = min(values, key=values.get), max(values, key=values.get)
        out.append(f"The rebalancing strategies of the five-block CNN span {name} "
                   f"{values[low]:.3f} ({low}) to {values[high]:.3f} ({high}).")
    if metric == "roc_auc":
        weak = [m for m in dict.fromkeys(table["model"]) if cell(m, metric)["value"] < 0.5]
        if weak:
            out.append(f"{', '.join(weak)} rank{'s' if len(weak) == 1 else ''} validation images "
                       "worse than chance (ROC AUC below 0.5): not learned in the epochs given — "
                       "expected on a tiny sample, a bug to chase on full data.")
    return out
