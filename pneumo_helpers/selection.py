"""Notebook 04's comparison and choice, and the model 05 interprets.

Every candidate is one :class:`~pneumo_helpers.recipe.Recipe` (the run's, with its
architecture, balance and epochs replaced: :func:`candidate_recipe`) trained by
:func:`pneumo_helpers.experiment.run_candidate`; :func:`pick_best` chooses on validation
(:data:`CHOICE_RULE`), :func:`choose` retrains the winner for the run's epochs and records it
(``models/chosen.json``); :func:`findings` and :func:`learning_checks` are 04's sentences.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import balance, evaluate, transfer
from .config import RunConfig
from .experiment import BUILDERS, CandidateResult, run_candidate
from .recipe import Recipe, model_words
from .metrics_report import MetricsReport
from .runs import ChosenModel, ModelLayout

__all__ = ["TIE", "CHOICE_RULE", "candidate_recipe", "candidate_pairs", "Comparison",
           "compare_candidates", "choose", "interpreted_model", "comparison_table", "compare",
           "read_candidates", "pick_best", "learning_checks", "findings"]

# Validation ROC AUCs closer than this are a tie, broken by the Brier score (see pick_best).
TIE = 0.005
CHOICE_RULE = f"best validation ROC AUC; among those within {TIE} of it, lowest Brier score"


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
        except transfer.WeightsUnavailable as err:
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


def pick_best(table: pd.DataFrame, *, metric: str = "roc_auc", tie: float = TIE) -> str:
    """The model with the best validation ``metric``; among those within ``tie`` of the best,
    the one with the lowest Brier score (better calibrated).

    ``table``: the tidy table of :func:`compare` / :func:`read_candidates`.
    """
    wide = table.pivot_table(index="model", columns="metric", values="value")
    close = wide[wide[metric] >= wide[metric].max() - tie]
    return str(close["brier"].idxmin())


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
    def listed(models):
        return "; ".join(map(model_words, models))

    out = [f"Best in the comparison: **{model_words(chosen)}**, validation {name} "
           f"{interval(best)}, Brier score {interval(brier)} (after the comparison's epochs; a "
           "retrained final model reports its own numbers above)."]
    overlap = [m for m in others
               if cell(m, metric)["ci_high"] >= best["ci_low"]
               and cell(m, metric)["ci_low"] <= best["ci_high"]]
    if overlap:
        out.append(f"Its {name} interval overlaps those of {listed(overlap)}: this "
                   "validation split cannot rank them apart; the rule (best point estimate, "
                   f"Brier score among those within {TIE}) still picks one, but read it as a "
                   "choice, not a proven win.")
    elif others:
        out.append(f"No other candidate's {name} interval overlaps it: a clear lead on this "
                   "validation split.")
    baselines = [m for m in others if m.startswith("baseline")]
    if baselines and not chosen.startswith("baseline"):
        base = cell(baselines[0], metric)
        out.append(f"The baseline ({listed(baselines[:1])}) reached {name} {base['value']:.3f} "
                   f"and Brier {cell(baselines[0], 'brier')['value']:.3f}, against "
                   f"{best['value']:.3f} and {brier['value']:.3f} for {model_words(chosen)} "
                   "(both after the comparison's epochs).")
    strategies = [m for m in dict.fromkeys(table["model"]) if m.startswith("five_block-")]
    if len(strategies) > 1:
        values = {m: cell(m, metric)["value"] for m in strategies}
        low, high = min(values, key=values.get), max(values, key=values.get)
        out.append(f"The rebalancing strategies of the five-block CNN span {name} "
                   f"{values[low]:.3f} ({model_words(low)}) to {values[high]:.3f} "
                   f"({model_words(high)}).")
    if metric == "roc_auc":
        weak = [m for m in dict.fromkeys(table["model"]) if cell(m, metric)["value"] < 0.5]
        if weak:
            out.append(f"{listed(weak)} rank{'s' if len(weak) == 1 else ''} validation images "
                       "worse than chance (ROC AUC below 0.5): not learned in the epochs given — "
                       "expected on a tiny sample, a bug to chase on full data.")
    return out
