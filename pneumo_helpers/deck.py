"""The reviewer slide deck: an HTML template filled from a run folder, printed by Chromium.

Every number on a slide is read from the run folder through :mod:`pneumo_helpers.report`
(which reads it through :mod:`pneumo_helpers.runs`), and every sentence that depends on the
run (sample or full data, where the test split comes from, whether the shipped model has an
evaluation on the official test split) is chosen from it. Layout is the browser's: text wraps,
tables size themselves, and figures are the run's 200 dpi PNGs scaled to the slide.

    pneumo report runs/full          # this deck, the notebooks PDF and the README table

:func:`deck_html` gives the HTML (tested without a browser); :func:`build_deck` prints it with
the same headless Chromium that prints the notebooks.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
import tempfile
from pathlib import Path

import jinja2
import pandas as pd

from . import attention, evaluate, files, report, scorecard
from .config import project_root, shown_path
from .external import MIN_PER_CLASS
from .inference import SHIPPED_MODEL_DIR
from .metrics_report import Estimate, MetricsReport
from .recipe import Recipe, model_words
from .runs import ModelLayout, RunLayout, SiteThreshold, read_json

__all__ = ["deck_context", "deck_html", "build_deck", "official_evaluation", "PUBLISHED"]

TEMPLATES = Path(__file__).parent / "templates"

# Published results on the official Kermany test split (624 films). "test used for
# selection": whether the authors chose their model or stopping point on that split, as far as
# the paper says. Figures as published (sensitivity and specificity where the source gives
# them); peers: projects built here on published designs, on the same split.
PUBLISHED = [
    dict(work="Kermany et al. 2018 (Cell)", model="InceptionV3, ImageNet transfer",
         scratch=False, roc_auc=0.968, sensitivity=0.932, specificity=0.901,
         selection="yes (test-selected)"),
    dict(work="MedMNIST v2 (Yang et al. 2023)", model="ResNet-50, 224 px", scratch=True,
         roc_auc=0.962, sensitivity=None, specificity=None, selection="no (own validation)"),
    dict(work="MedMNIST+ (Doerrich et al. 2024)", model="DINO ViT-B/16, linear probe",
         scratch=False, roc_auc=0.989, sensitivity=None, specificity=None,
         selection="no (own validation)"),
    dict(work="Peer project here", model="ResNet-18 fine-tuned, 224 px", scratch=False,
         roc_auc=0.980, sensitivity=None, specificity=None, selection="no"),
    dict(work="Peer project here", model="five-block CNN as published", scratch=True,
         roc_auc=0.952, sensitivity=None, specificity=None, selection="no"),
    dict(work="Peer project here", model="keras.io example style CNN", scratch=True,
         roc_auc=0.935, sensitivity=None, specificity=None, selection="no"),
]


def official_evaluation(evaluations: Path | None, model_dir: Path = SHIPPED_MODEL_DIR
                        ) -> dict:
    """The shipped model's receipt on the official test split, if one names its model file.

    ``evaluations``: the folder of receipts (``../shared/evaluations`` here; see
    :func:`pneumo_helpers.scorecard.read_receipt`). Returns ``{"status": "matches",
    "receipt", "sha"}`` when one names the current ``model.keras``, else ``{"status":
    "awaiting", "sha"}``; either way ``"earlier"``: the receipts of other models, newest last.
    """
    digest = files.sha256(ModelLayout(model_dir).model)
    receipts = [r for r in map(scorecard.read_receipt, sorted(Path(evaluations).glob("*.json"))
                               if evaluations else []) if r is not None]
    receipts.sort(key=lambda r: r.date or "")
    mine = next((r for r in receipts if r.model_sha256 == digest), None)
    earlier = [dict(sha=r.model_sha256[:8], date=r.date, locked=r.locked.metrics)
               for r in receipts if r.model_sha256 != digest]
    spread = {}
    for key, metric in (("earlier_auc", "roc_auc"), ("earlier_spec", "specificity")):
        values = [e["locked"][metric][0] for e in earlier if metric in e["locked"]]
        spread[key] = f"{min(values):.3f}–{max(values):.3f}" if values else "n/a"
    if mine is None:
        return dict(status="awaiting", sha=digest[:8], earlier=earlier, **spread)
    halves = [("locked half B (judged)", mine.locked), ("external half A (used in "
                                                       "development)", mine.external),
              ("whole split", mine.whole)]
    return dict(status="matches", sha=digest[:8], file=mine.path.name, date=mine.date,
                threshold=mine.threshold, earlier=earlier, locked=mine.locked.metrics, **spread,
                halves=[dict(name=name, n=block.n, cells={
                    m: _fmt(block.metrics.get(m)) for m in ("roc_auc", "recall", "specificity")})
                    for name, block in halves if block is not None])


def _figure(layout: RunLayout, name: str) -> str | None:
    path = layout.figure(name)
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _fmt(cell, digits=3) -> str:
    return report.format_ci(*cell, digits=digits) if cell else "n/a"


def _metric(results: dict[str, MetricsReport], split: str, name: str) -> Estimate | None:
    return results[split].metrics.get(name) if split in results else None


def _architecture(config: dict) -> str:
    kwargs = config.get("model_kwargs") or {}
    if config.get("model") == "baseline":
        return "Baseline CNN: three plain convolution blocks and a dense head."
    if config.get("stages"):  # experiment._fit_two_stages: an ImageNet backbone
        return (f"{config.get('model')} (keras.applications, ImageNet weights) under global "
                "average pooling and one sigmoid output, the gray film repeated to three "
                "channels and put through the backbone's own preprocessing; the head trained "
                "first, then the top layers at a lower learning rate; "
                f"{config.get('parameters', 0):,} parameters, "
                f"{config.get('image_size', '?')} px.")
    filters = kwargs.get("filters", (16, 32, 64, 128, 256))
    return (f"A convolutional network trained from scratch: five blocks "
            f"({'-'.join(map(str, filters))} filters), each reading the film at a coarser "
            "scale, then an average over the film and one output, P(pneumonia); "
            f"{config.get('parameters', 0):,} parameters, {config.get('image_size', '?')} px "
            "greyscale, each film's contrast standardised first."
            + (f" Before training, the network learned without labels, for "
               f"{config['pretrain_epochs']} epochs, to tell two altered copies of a film from "
               "other films." if config.get("pretrain_epochs") else "")
            + (" In training each film is shown twice, altered differently, and differing "
               "answers for the two copies are penalised." if config.get("consistency")
               else ""))


def _sweep_ranges() -> dict | None:
    """Range of the recipes' ROC AUC over seeds on validation and on the external half, from
    ``tools/sweep.py --external``'s tables (``runs/sweep/``), when they exist."""
    folder = project_root() / "runs" / "sweep"
    ext, val = (_read_table(folder / name) for name in ("external_summary.csv", "summary.csv"))
    if ext is None or val is None or "ext_roc_auc" not in ext or "val_auc" not in val:
        return None
    val = val[val["recipe"].isin(set(ext["recipe"]))]
    means = {name: table.groupby("recipe")[column].mean()
             for name, table, column in (("ext", ext, "ext_roc_auc"), ("val", val, "val_auc"))}
    return dict(recipes=len(means["ext"]), seeds=int(ext.groupby("recipe").size().min()),
                ext=f"{means['ext'].min():.3f}–{means['ext'].max():.3f}",
                val=f"{means['val'].min():.3f}–{means['val'].max():.3f}")


def _read_table(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def _findings(summary, results, official, *, crop_line, site_curve, heat_line) -> list[str]:
    """The key findings, each from a record: new films first."""
    out = []
    if summary.is_sample:
        out.append("Built from the small bundled sample: its numbers show that the pipeline "
                   "works, not how well a model does on real films.")
    val, test, ext = (_metric(results, s, "roc_auc") for s in ("val", "test", "external"))
    if val and ext:
        spec = [_metric(results, s, "specificity") for s in ("val", "external")]
        out.append(f"New films score lower than validation: ROC AUC {_fmt(ext)} on the "
                   f"external half A against {_fmt(val)} on validation"
                   + (f" and {_fmt(test)} on the untouched test split" if test else "")
                   + f"; at the validation threshold specificity falls from {spec[0][0]:.2f} "
                   f"to {spec[1][0]:.2f}. Validation films, carved from the training films, "
                   "cannot see this gap.")
    elif val and test:
        out.append(f"The chosen model ranks the untouched test films with ROC AUC "
                   f"{_fmt(test)} (validation {_fmt(val)}); no external films were given.")
    site = SiteThreshold.read(SHIPPED_MODEL_DIR)
    if site is not None:
        out.append(f"The shipped model's site threshold {site.threshold:.3f}, chosen on half "
                   f"A's {site.n_films} films by the same rule, gives there sensitivity "
                   f"{_fmt(site.sensitivity)} and specificity {_fmt(site.specificity)}, "
                   "in-sample."
                   + (" " + site_curve if site_curve else ""))
    if official["status"] == "matches":
        b = official["locked"]
        out.append(f"Judged on the official split's locked half B: ROC AUC "
                   f"{_fmt(b.get('roc_auc'))}, sensitivity {_fmt(b.get('recall'))}, "
                   f"specificity {_fmt(b.get('specificity'))}. On the whole split, published "
                   "and peer models score 0.935–0.968 from scratch or test-selected, "
                   "0.980–0.989 with ImageNet pretraining.")
    elif official["earlier"]:
        out.append(f"The shipped model {official['sha']} awaits its locked-half receipt; "
                   f"{len(official['earlier'])} earlier shipped models scored ROC AUC "
                   f"{official['earlier_auc']} there. On the whole split, published and peer "
                   "models score 0.935–0.968 from scratch or test-selected, 0.980–0.989 with "
                   "ImageNet pretraining.")
    if crop_line:
        out.append(crop_line)
    if heat_line:
        out.append(heat_line)
    return out


def _crop_line(stress: pd.DataFrame) -> str | None:
    """What border crops of the validation films do at the unchanged threshold, from 05's
    stress table indexed by shift; ``None`` without its 15 % crop row."""
    none, c15, c20 = (stress.loc[k] if k in stress.index else None
                      for k in ("none", "crop 15% per side", "crop 20% per side"))
    if c15 is None:
        return None
    text = (f"Cropping the borders of the validation films, at the unchanged threshold: 15 % per "
            f"side leaves ROC AUC {c15['roc_auc']:.3f} and specificity {c15['specificity']:.3f}"
            + (f" (uncropped {none['specificity']:.3f})" if none is not None else ""))
    if c20 is None:
        return text + "."
    text += f"; 20 % per side brings specificity to {c20['specificity']:.3f}"
    if none is not None and none["specificity"] - c20["specificity"] > 0.1:
        return (text + ". Framed closer than that, normal films drift towards pneumonia: the "
                "model still leans partly on the field of view.")
    return text + ". The model does not lean on the field of view up to 20 % crops."


def site_curve_line(shipped_dir: Path = SHIPPED_MODEL_DIR, *,
                    curve: Path | None = None) -> str | None:
    """What a site threshold chosen on a small sample does on that site's next films, from
    :data:`~.report.SITE_CURVE` (``tools/site_threshold_curve.py``), when that
    record is of the shipped model and has the row of :data:`external.MIN_PER_CLASS` films."""
    path = curve or project_root() / report.SITE_CURVE
    if not path.is_file() or not ModelLayout(shipped_dir).model.is_file():
        return None
    record = read_json(path)
    if record.get("model_sha256") != files.sha256(ModelLayout(shipped_dir).model):
        return None
    row = next((r for r in record.get("rows", []) if r["films_per_class"] == MIN_PER_CLASS), None)
    if row is None:
        return None
    return (f"Chosen on {MIN_PER_CLASS} films per class and scored on the rest: sensitivity "
            f"{row['site_sensitivity'][0]:.2f} and specificity "
            f"{row['site_specificity'][0]:.2f} (mean of {row['draws']} draws), against "
            f"{row['validation_sensitivity'][0]:.2f} and "
            f"{row['validation_specificity'][0]:.2f} at the validation threshold.")


# Plain words for the recipe fields a reviewer reads; other fields read as their names.
_RECIPE_WORDS = {"balance": "class balance", "image_size": "film size",
                 "augment": "augmentation", "consistency": "two-view consistency term",
                 "pretrain_epochs": "pretraining"}


def recipe_differences(one: dict, other: dict) -> list[str]:
    """The recipe fields, in plain words, in which two model folders' ``config.json`` records
    differ (seed and weight download excepted: they do not make another recipe)."""
    a, b = Recipe.from_config(one), Recipe.from_config(other)
    return [_RECIPE_WORDS.get(f.name, f.name.replace("_", " "))
            for f in dataclasses.fields(Recipe)
            if f.name not in ("seed", "download_weights")
            and getattr(a, f.name) != getattr(b, f.name)]


def studied_model(model: str | None, config: dict,
                  shipped_dir: Path = SHIPPED_MODEL_DIR) -> str | None:
    """One sentence for the slides about the run's model: which model they study, on how many
    films it trained, and how it relates to the shipped model (same recipe or not)."""
    if not model or not config:
        return None
    shipped_config = ModelLayout(shipped_dir).config
    trained = f"trained on {config['n_train']:,} films" if config.get("n_train") else "trained"
    text = (f"These slides study this run's model ({model_words(model)}), {trained} of this "
            "run's training split")
    if not shipped_config.is_file():
        return text + "; no shipped model was found to compare it with."
    shipped = read_json(shipped_config)
    differ = recipe_differences(config, shipped)
    relation = ("the same recipe" if not differ
                else "another recipe (it differs in " + ", ".join(differ) + ")")
    sha = files.sha256(ModelLayout(shipped_dir).model)[:8]
    films = f" on {shipped['n_train']:,} films" if shipped.get("n_train") else ""
    return (f"{text}. The shipped model {sha} is {relation}, trained{films}; its own figures "
            "are the shipped rows of the table of films and choices.")


def deck_context(run_dir, *, evaluations: Path | None = None) -> dict:
    """Everything the template shows, read from ``run_dir`` (and the evaluations folder)."""
    summary = report.summarize_run(run_dir)
    layout = RunLayout(summary.run_dir)
    results = summary.results
    config = summary.model_config
    test_auc = _metric(results, "test", "roc_auc")
    spec, sens = (_metric(results, "test", m) for m in ("specificity", "recall"))
    threshold = next((b.threshold for b in results.values() if b.threshold), None)
    rule = next((b.rule for b in results.values() if b.rule), None)
    official_test = summary.test_source.startswith("the dataset's official test split")

    # Candidates of 04 with their full names, epochs and Brier score; the chosen one marked.
    candidates = []
    for name, row in summary.models.iterrows():
        model_config = layout.model(name).config
        epochs = read_json(model_config).get("epochs") if model_config.is_file() \
            else None
        candidates.append(dict(name=model_words(name), chosen=name == summary.model,
                               epochs=epochs,
                               roc_auc=_fmt(row["roc_auc"]), brier=_fmt(row["brier"]),
                               recall=f"{row['recall'][0]:.2f}",
                               specificity=f"{row['specificity'][0]:.2f}"))
    prevalence = report._prevalence(summary, "test")

    stress = _read_table(layout.val_shifts)
    shifts_table = None if stress is None else stress.to_dict("records")
    bins = _read_table(layout.test_calibration)
    calibration = evaluate.calibration_sentence(bins) if bins is not None else None
    heat = None
    if layout.gradcam_heat.is_file():
        table = pd.read_csv(layout.gradcam_heat, index_col=[0, 1])
        side = int(config.get("image_size", 112))
        uniform = attention.uniform_share(side, side)
        heat = dict(rows=[dict(cls=cls, call=call, films=int(r["films"]),
                               mean=f"{r['mean']:.2f}", border=f"{r['on border']:.0%}")
                          for (cls, call), r in table.iterrows()],
                    conclusion=attention.conclusion(table, uniform=uniform),
                    uniform=f"{uniform:.2f}")
    official = official_evaluation(evaluations)
    lines = scorecard.run_lines(summary.run_dir) + scorecard.shipped_lines(
        evaluations=evaluations)
    card = [scorecard.cells(line) for line in lines]
    for i in range(1, len(card)):
        if lines[i].model == lines[i - 1].model:
            card[i]["model"] = ""

    def auc_title():
        if not test_auc:
            return "Results: no test metrics in this run"
        return (f"On the untouched test split the model reaches ROC AUC {test_auc[0]:.3f}; "
                f"specificity {spec[0]:.2f} at sensitivity {sens[0]:.2f}"
                if spec and sens else f"Test ROC AUC {test_auc[0]:.3f}")

    table = report._formatted(report._results_frame(results), 3) if results else None
    return dict(
        title=report.DEFAULT_TITLE, run=shown_path(summary.run_dir),
        built=dt.date.today().isoformat(), disclaimer=report.DISCLAIMER,
        is_sample=summary.is_sample, official_test=official_test,
        findings=_findings(summary, results, official,
                           crop_line=None if stress is None
                           else _crop_line(stress.set_index("shift")),
                           site_curve=site_curve_line(),
                           heat_line=heat["conclusion"] if heat else None),
        auc_title=auc_title(), scorecard=card,
        scorecard_heads=list(card[0]) if card else [],
        counts=None if summary.counts is None else [
            dict(split=split, normal=int(r["NORMAL"]), pneumonia=int(r["PNEUMONIA"]),
                 total=int(r["NORMAL"] + r["PNEUMONIA"]),
                 patients=int(r["patients"]) if "patients" in r else None,
                 share=r["PNEUMONIA"] / (r["NORMAL"] + r["PNEUMONIA"]))
            for split, r in summary.counts.iterrows()],
        raw_files=summary.raw_files, bad_files=summary.bad_files, dropped=summary.dropped,
        test_source=summary.test_source,
        model=model_words(summary.model) if summary.model else None,
        model_reason=summary.model_reason, studied=studied_model(summary.model, config),
        architecture=_architecture(config) if config
        else None, config=config, candidates=candidates, rule=rule, threshold=threshold,
        results=None if table is None else dict(
            columns=list(table.columns),
            rows=[dict(metric=m, cells=list(r)) for m, r in zip(table.index,
                                                                table.itertuples(index=False))]),
        prevalence=prevalence, shifts=shifts_table, calibration=calibration, heat=heat,
        official=official, published=PUBLISHED, sweep=_sweep_ranges(),
        transfer_cost=report.transfer_cost(),
        figures={key: _figure(layout, name) for key, name in FIGURES.items()},
        figure_names={key: f"figures/{layout.figure(name).name}"
                      for key, name in FIGURES.items()},
        isnan=math.isnan)


# The figures the deck shows, by key: names under figures/ (written by the notebooks).
FIGURES = {"class_balance": "02_clean_counts", "confusion": "05_confusion", "roc": "05_roc_pr",
           "calibration": "05_calibration", "crop_curve": "05_crop_curve",
           "errors": "05_errors", "explanations": "05_explanations"}


def deck_html(run_dir, *, evaluations: Path | None = None) -> str:
    """The deck as one self-contained HTML document (figures embedded, no network)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]),
                                     undefined=jinja2.StrictUndefined)
    css = (TEMPLATES / "deck.css").read_text()
    return environment.get_template("deck.html.j2").render(
        css=css, **deck_context(run_dir, evaluations=evaluations))


def build_deck(run_dir, out_pdf, *, evaluations: Path | None = None) -> Path:
    """Write the deck of ``run_dir`` as a PDF (headless Chromium); return its path.

    Raises:
        FileNotFoundError: no run folder, or no Chromium. RuntimeError: Chromium failed.
    """
    from .notebooks_pdf import html_to_pdf

    html = deck_html(run_dir, evaluations=evaluations)
    with tempfile.TemporaryDirectory(prefix="pneumo-deck-") as folder:
        page = Path(folder) / "deck.html"
        page.write_text(html, encoding="utf-8")
        return html_to_pdf(page, Path(out_pdf))
