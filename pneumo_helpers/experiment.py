"""One training end to end: rows of a manifest and a recipe in, a validated model folder out.

:func:`run_candidate` is what notebook 04 (:mod:`pneumo_helpers.selection`) calls once per
candidate it compares, what ``pneumo train`` (:mod:`pneumo_helpers.ship`) and the sweep call,
so all train exactly the same way:

    rebalance the training rows -> cached, augmented tf.data stream -> build the model ->
    train (checkpoints, early stopping, resume) -> predict validation -> choose the threshold
    on validation -> metrics with 95 % patient-bootstrap intervals -> files next to the model.

The model folder then holds ``model.keras``, ``config.json`` (settings, seed, versions,
timings), ``history.csv``, ``val_metrics.json`` (with the threshold) and
``val_predictions.csv``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import balance, distribute, evaluate, generators, models, pretrain, train, transfer
from .augment import AUGMENTATIONS
from .backbones import BACKBONES
from .dataset import manifest_hash
from .labels import encode_labels
from .recipe import Recipe
from .runs import ModelLayout, read_json, write_csv, write_json

__all__ = ["BUILDERS", "TRANSFER", "FINE_TUNE", "CandidateResult", "run_candidate"]

BUILDERS = {"baseline": models.build_baseline_cnn, "five_block": models.build_five_block_cnn,
            "EfficientNetB0": transfer.build_efficientnetb0,
            "ResNet50V2": transfer.build_resnet50v2, "DenseNet121": transfer.build_densenet121}
# The architectures that start from ImageNet weights and train in two stages.
TRANSFER = tuple(BACKBONES)
# Stage 2 of a transfer model: what transfer.unfreeze_top opens and at which learning rate.
FINE_TUNE = dict(n_layers=20, learning_rate=1e-5)


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
            :class:`pneumo_helpers.transfer.WeightsUnavailable` before any training when its
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
    augment_used = AUGMENTATIONS[recipe.augment]
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
                write_csv(history, pretrained)
    net.set_weights(encoder.get_weights())
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(ModelLayout(out_dir).pretrain_history, pretrained)


def _fit_two_stages(net, fit_train, fit_val, *, out_dir: Path, epochs: int, class_weight,
                    config: dict, verbose) -> pd.DataFrame:
    """Transfer learning's two stages, as :func:`pneumo_helpers.train.train_model` (same
    arguments, same files in ``out_dir``).

    Stage 1 trains the head on the frozen backbone for ``epochs - epochs // 2`` epochs in
    ``out_dir/head/``; stage 2 opens the backbone's top layers (:data:`FINE_TUNE`, through
    :func:`pneumo_helpers.transfer.unfreeze_top`) and trains at the lower learning rate for the
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
    transfer.unfreeze_top(net, **FINE_TUNE)
    fine = train.train_model(net, fit_train, fit_val, out_dir=out_dir, epochs=fine_epochs,
                             config=dict(config, fine_tune=FINE_TUNE), **common)
    ModelLayout(head_dir).model.unlink(missing_ok=True)  # stage 2 starts from it; now spent
    history = pd.concat([head.assign(stage="head"),
                         fine.assign(stage="fine-tune", epoch=fine["epoch"] + len(head))],
                        ignore_index=True)
    files = ModelLayout(out_dir)
    write_csv(files.history_csv, history)
    record = read_json(files.config)
    seconds = [round(float(s), 3) for s in history.get("epoch_seconds", [])]
    record.update(epochs_max=epochs, epochs_run=len(history),
                  stages=dict(head=len(head), fine_tune=len(fine)), seconds_per_epoch=seconds,
                  mean_seconds_per_epoch=round(sum(seconds) / len(seconds), 3) if seconds
                  else None)
    write_json(files.config, record)
    return history


def _validate(net, val_rows: pd.DataFrame, val_ds, *, out_dir: Path, name: str,
              history: pd.DataFrame, threshold_rule: str, n_boot: int,
              seed: int) -> CandidateResult:
    """Predict validation, choose the threshold there, write the metrics and predictions."""
    y_val = encode_labels(val_rows["label"])
    p_val = evaluate.predict_proba(net, val_ds)
    threshold = evaluate.choose_threshold(y_val, p_val, rule=threshold_rule)
    metrics = evaluate.evaluate(y_val, p_val, threshold=threshold, groups=val_rows["patient"],
                                n_boot=n_boot, seed=seed)
    files = ModelLayout(out_dir)
    evaluate.to_report(metrics, threshold=threshold, rule=threshold_rule, split="val",
                       model=name).write(files.val_metrics)
    write_csv(files.val_predictions,
              val_rows[["path", "label", "patient"]].assign(probability=p_val))
    return CandidateResult(name=name, out_dir=out_dir, history=history, metrics=metrics,
                           threshold=threshold,
                           config=read_json(files.config))
