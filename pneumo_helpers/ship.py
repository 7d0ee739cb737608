"""The shipped model: trained with the full profile's recipe on a whole training split, with
its model card, LiteRT export and stress tests (``pneumo train``, ``make train-full``).

Steps: manifest and scrub as in notebooks 01-02, with a patient-level validation split and no
test carve-out (the official test split is held out elsewhere); then
:func:`pneumo_helpers.experiment.run_candidate` with the recipe of the ``full`` profile of
:class:`pneumo_helpers.config.RunConfig` (architecture, rebalancing, augmentation, size,
epochs, seed, threshold rule: one source of settings for notebooks and the shipped model);
then the model folder is copied into
``pneumo_helpers/shipped_model/`` with its card (and, last, its ``manifest.json``), which
adds the stress tests of :mod:`pneumo_helpers.shifts` on validation and, when
``tools/sweep.py`` has run, the recipe's spread over seeds. Training happens in the run folder
(default ``runs/train-full/``), so an interrupted run resumes when started again.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd

from . import (dataset, distribute, experiment, external, inference, interpret, obtain, report,
               scrub, selection, shifts, train)
from .config import RunConfig, project_root, shown_path
from .metrics_report import MetricsReport
from .runs import ModelLayout, RunLayout, read_json, write_csv, write_json

__all__ = ["shipping_config", "split_rows", "train_shipped", "write_card", "SWEEP_SUMMARY"]

# Written by tools/sweep.py: one row per recipe and seed.
SWEEP_SUMMARY = Path("runs") / "sweep" / "summary.csv"


def shipping_config(data_dir, *, run_dir=None, seed: int | None = None,
                    architecture: str | None = None) -> RunConfig:
    """The run configuration of ``pneumo train``: the full profile's recipe, trained on the
    whole training split but its validation patients (no test carve-out: the official test
    split is judged elsewhere), in ``run_dir`` (default ``runs/train-full``)."""
    return RunConfig.from_params(data_dir=str(data_dir) if data_dir else None, profile="full",
                                 test_fraction=0.0, run_dir=run_dir or "runs/train-full",
                                 seed=seed, architecture=architecture)


def split_rows(data_dir, *, val_fraction: float, split_seed: int, work,
               reuse: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, scrub.ScrubResult | None]:
    """Train and validation rows of ``pneumo train`` and the sweep: the scrub of notebook 02
    with a patient-level validation split and no test split, written to ``work``'s
    ``clean_manifest.csv`` (by the chief alone in a JAX data-parallel training). With
    ``reuse``, a manifest already there is read back instead (every training of the sweep
    sees the same patients). Returns ``(train rows, val rows, the scrub's result, or None
    when read back)``."""
    target = RunLayout(work).clean_manifest
    scrubbed = None
    if reuse and target.is_file():
        clean = pd.read_csv(target)
    else:
        scrubbed = scrub.scrub(obtain.build_manifest(data_dir), val_fraction=val_fraction,
                               test_fraction=0.0, seed=split_seed)
        clean = scrubbed.clean
        if distribute.is_chief():
            Path(work).mkdir(parents=True, exist_ok=True)
            write_csv(target, clean)
    return (clean[clean["split"] == "train"].reset_index(drop=True),
            clean[clean["split"] == "val"].reset_index(drop=True), scrubbed)


def train_shipped(cfg: RunConfig, *, distribution: str | None = None,
                  report=print) -> experiment.CandidateResult:
    """Scrub ``cfg.data_dir``, split by patient, train ``cfg.recipe`` into its run folder, and
    record what the card needs. ``distribution``: see
    :func:`pneumo_helpers.experiment.run_candidate` (the same code trains on one device)."""
    start = time.time()
    layout = cfg.layout
    train_rows, val_rows, scrubbed = split_rows(cfg.data_dir, val_fraction=cfg.val_fraction,
                                                split_seed=cfg.split_seed, work=layout.root,
                                                reuse=False)
    files = len(scrubbed.clean) + len(scrubbed.bad) + len(scrubbed.dropped)
    report(f"{files} files -> train {len(train_rows)}, val {len(val_rows)} "
           f"({len(scrubbed.bad)} bad, {len(scrubbed.dropped)} dropped)")
    chief = distribute.is_chief()
    recipe = selection.candidate_recipe(cfg)  # pretraining is the five-block CNN's
    result = experiment.run_candidate(train_rows, val_rows, recipe, name="shipped",
                                      out_dir=layout.shipped.root, cache_dir=layout.cache,
                                      distribution=distribution, verbose=2)
    minutes = (time.time() - start) / 60
    if chief:
        write_json(layout.training_record, dict(
            minutes=round(minutes, 2), files=files, bad=len(scrubbed.bad),
            dropped=len(scrubbed.dropped), split_seed=cfg.split_seed))
    auc = result.metrics.set_index("metric").loc["roc_auc", "value"]
    report(f"trained in {minutes:.1f} min; validation ROC AUC {auc:.3f}")
    return result


def _stress_section(loaded, val_rows: pd.DataFrame, cache_dir: Path) -> str:
    table = interpret.stress(loaded, interpret.score(loaded, val_rows, cache_dir=cache_dir))
    lines = ["Every validation image shifted in one way at a time, scored at the unchanged "
             f"threshold {loaded.threshold:.3f} (see `pneumo_helpers/shifts.py` and "
             "`docs/generalisation.md`). A proxy for other X-ray systems, not a measurement "
             "on them.", "",
             "| shift | ROC AUC | sensitivity | specificity | Brier |", "|---|---|---|---|---|"]
    lines += [f"| {r.shift} | {r.roc_auc:.3f} | {r.recall:.3f} | {r.specificity:.3f} | "
              f"{r.brier:.3f} |" for r in table.itertuples()]
    return "\n".join(lines)


# Columns of tools/sweep.py's summary the card shows, and their headings.
def _sweep_section(summary: Path) -> str:
    table = pd.read_csv(summary)
    spread = table.drop(columns="seed").groupby("recipe").agg(["mean", "std"])
    columns = {column: heading for column, (_, _, heading) in shifts.SUMMARY.items()
               if heading and column in spread}
    lines = ["Each recipe trained with seeds " + ", ".join(map(str, sorted(set(table.seed))))
             + " on the same validation split (`python tools/sweep.py --data ...`); mean "
             "± standard deviation over seeds, at each model's own validation threshold "
             "(specificity unless named).", "",
             "| recipe | " + " | ".join(columns.values()) + " |",
             "|---|" + "---|" * len(columns)]
    for recipe, row in spread.iterrows():
        cells = ["" if pd.isna(row[(c, "mean")]) else
                 f"{row[(c, 'mean')]:.3f} ± {row[(c, 'std')]:.3f}" for c in columns]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)



def _external_section(loaded, folder, cache_dir: Path) -> str:
    """The model on labelled new films: scored at its validation threshold
    (``external_metrics.json``), then the site threshold chosen there by its rule
    (``site_threshold.json``), both written beside the model; the card shows the scorecard."""
    from . import evaluate, scorecard

    films = interpret.score(loaded, external.labelled_rows(folder), cache_dir=cache_dir)
    rows = films.rows
    table = evaluate.evaluate(films.y, films.p, threshold=loaded.threshold,
                              groups=rows["patient"], n_boot=1000, seed=0)
    site = external.choose_site_threshold(rows, films.p, rule=loaded.threshold_rule,
                                          model_sha256=loaded.sha256)
    evaluate.to_report(table, rule=loaded.threshold_rule, split="external", model="shipped",
                       model_sha256=loaded.sha256, sample_sha256=site.sample_sha256,
                       data=shown_path(folder)).write(ModelLayout(loaded.path).external_metrics)
    site.write(loaded.path)
    return "\n".join([
        f"{site.n_films} labelled films from outside the training split ({site.n_normal} "
        f"NORMAL, {site.n_pneumonia} PNEUMONIA; `{shown_path(folder)}`, sample "
        f"{site.sample_sha256}). They chose the site threshold; they trained no weights. "
        "Intervals: 95 % patient bootstrap.", "",
        scorecard.markdown(scorecard.shipped_lines(loaded.path)), "",
        "`pneumo predict`, `evaluate` and `explain` use the site threshold "
        "(`site_threshold.json`) while it names this `model.keras`; `pneumo calibrate DIR` "
        "chooses one for another site. The locked half B of the official split is judged "
        "after the model lands (`../shared/evaluations/`)."])


def write_card(work: str | Path, out: str | Path = inference.SHIPPED_MODEL_DIR, *,
               external_dir: str | Path | None = None) -> Path:
    """Copy the finished run in ``work`` to ``out``, write its card and its LiteRT export.

    With ``external_dir`` (labelled new films), the card scores the model there and the folder
    gets the site threshold chosen on them (:func:`_external_section`).

    Returns:
        The path of the model card.
    """
    work, out = RunLayout(work), ModelLayout(out)
    trained = work.shipped
    if not (trained.model.is_file() and work.training_record.is_file()):
        raise inference.ModelError(f"no finished training in {shown_path(work.root)}: run "
                                   "pneumo train --data DIR first")
    run = read_json(work.training_record)
    out.root.mkdir(parents=True, exist_ok=True)
    # An export or site threshold of the previous model must not outlive it.
    out.export.unlink(missing_ok=True)
    out.site_threshold.unlink(missing_ok=True)
    out.external_metrics.unlink(missing_ok=True)
    out.manifest.unlink(missing_ok=True)  # written again, last, over the new files
    for name in ModelLayout.SHIPPED:
        shutil.copy(trained.root / name, out.root / name)
    # Each step below loads the folder, which is checked against its manifest: written as
    # files are added, and last over the whole folder.
    out.write_manifest()
    loaded = inference.load_model(out.root, runtime="keras")
    clean = pd.read_csv(work.clean_manifest)
    val_rows = dataset.split_rows(clean, "val")
    metrics = MetricsReport.read(out.val_metrics)
    counts = dataset.count_table(clean)
    config = loaded.config
    description = (
        "Kermany et al. 2018, Chest X-Ray Images (Pneumonia), training split (CC BY 4.0; "
        "doi:10.17632/rscbjbr9sj.2): "
        f"{run['files']} files, {run['bad']} unreadable, {run['dropped']} exact "
        "duplicates dropped. Split by patient (scikit-learn StratifiedGroupKFold, seed "
        f"{run['split_seed']}): train "
        f"{counts.loc['train', 'NORMAL']} NORMAL / {counts.loc['train', 'PNEUMONIA']} "
        f"PNEUMONIA, validation {counts.loc['val', 'NORMAL']} / "
        f"{counts.loc['val', 'PNEUMONIA']}. Validation chose the epochs and the "
        "validation threshold; half A of the official test split (the external films "
        "below, when given) chose the recipe and the site threshold; half B was not used. "
        f"Manifest hash {config['manifest_hash']}. Trained in "
        f"{run['minutes']:.1f} minutes ({config['mean_seconds_per_epoch']:.0f} s per epoch) "
        "on a 2-core CPU by `make train-full`.")
    sections = {"Robustness to acquisition and framing shifts (validation)":
                _stress_section(loaded, val_rows, work.cache)}
    if external_dir:
        sections["New films: external validation and the site threshold"] = \
            _external_section(loaded, external_dir, work.cache)
    summary = project_root() / SWEEP_SUMMARY
    if summary.is_file():
        sections["Recipe choice across seeds"] = _sweep_section(summary)
    cost = report.transfer_cost()
    if cost:
        sections["ImageNet backbones (not compared here)"] = cost
    card = train.save_model_card(out.root, config=config, val_metrics=metrics,
                                 data_description=description,
                                 model_name="pneumo shipped model", model=loaded.model,
                                 sections=sections)
    out.write_manifest()  # the card and the site threshold are the model's too
    # The fast runtime of `pneumo predict`, checked against Keras on the bundled sample.
    inference.export_litert(out.root)
    out.write_manifest()  # what pneumo checks the folder against: every file as shipped
    return card
