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
import datetime as dt
import math
import tempfile
from pathlib import Path

import jinja2
import pandas as pd

from . import files, report
from .config import shown_path
from .inference import SHIPPED_MODEL_DIR
from .runs import Estimate, MetricsReport, ModelLayout, RunLayout

__all__ = ["deck_context", "deck_html", "build_deck", "official_evaluation", "PUBLISHED"]

TEMPLATES = Path(__file__).parent / "templates"

# Published results on the official Kermany test split (624 films). "test used for
# selection": whether the authors chose their model or stopping point on that split, as far as
# the paper says. Figures as published; from scratch = no pretrained weights.
PUBLISHED = [
    dict(work="Kermany et al. 2018 (Cell)", model="InceptionV3, ImageNet transfer",
         scratch=False, accuracy=0.928, roc_auc=None, selection="not stated"),
    dict(work="MedMNIST v2 (Yang et al. 2023)", model="ResNet-50, 224 px", scratch=True,
         accuracy=0.884, roc_auc=0.962, selection="no (own validation split)"),
    dict(work="MedMNIST+ (Doerrich et al. 2024)", model="DINO ViT-B/16, linear probe",
         scratch=False, accuracy=None, roc_auc=0.989, selection="no (own validation split)"),
    dict(work="Google AutoML Vision (reported in MedMNIST v2)", model="AutoML",
         scratch=False, accuracy=0.946, roc_auc=0.991, selection="not stated"),
]


def official_evaluation(evaluations: Path | None, model_dir: Path = SHIPPED_MODEL_DIR
                        ) -> dict:
    """The shipped model's evaluation on the official test split, if one matches it.

    ``evaluations``: a folder of JSON files written by ``pneumo evaluate`` with the model's
    ``model_sha256`` (``../shared/evaluations`` here). Returns ``{"status": "matches",
    "file", "block"}`` when one names the current ``model.keras``, ``{"status": "awaiting",
    "stale": [files of earlier models]}`` otherwise.
    """
    digest = files.sha256(ModelLayout(model_dir).model)
    stale = []
    for path in sorted(Path(evaluations).glob("*.json")) if evaluations else []:
        try:
            record = MetricsReport.read(path)
        except ValueError:  # not an evaluation of this project's shape: not ours to show
            continue
        sha = record.provenance.get("model_sha256")
        if not isinstance(sha, str):
            continue
        if sha == digest:
            return dict(status="matches", file=path.name, block=record, sha=digest[:8],
                        date=record.provenance.get("date"), n=record.n)
        stale.append(dict(file=path.name, sha=sha[:8], metrics=record.metrics))
    return dict(status="awaiting", stale=stale, sha=digest[:8])


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
    return (f"Five-block CNN: per-image standardisation, five convolution blocks "
            f"({'-'.join(map(str, filters))} filters; stride-2 stem, separable convolutions "
            "from block 2, batch normalisation), global average pooling, one sigmoid output; "
            f"{config.get('parameters', 0):,} parameters, {config.get('image_size', '?')} px "
            "grayscale."
            + (f" Encoder pretrained without labels for {config['pretrain_epochs']} epochs "
               "(two views of a film are one film)." if config.get("pretrain_epochs") else "")
            + (f" Trained on two views per film, consistency term weight "
               f"{config['consistency']:g}." if config.get("consistency") else ""))


def deck_context(run_dir, *, evaluations: Path | None = None) -> dict:
    """Everything the template shows, read from ``run_dir`` (and the evaluations folder)."""
    summary = report.summarize_run(run_dir)
    layout = RunLayout(summary.run_dir)
    results = summary.results
    config = summary.model_config
    test_auc, val_auc = _metric(results, "test", "roc_auc"), _metric(results, "val", "roc_auc")
    spec = _metric(results, "test", "specificity")
    sens = _metric(results, "test", "recall")
    threshold = next((b.threshold for b in results.values() if b.threshold), None)
    rule = next((b.rule for b in results.values() if b.rule), None)
    official_test = summary.test_source.startswith("the dataset's official test split")

    # Candidates of 04 with their full names; the chosen one (and its retrained final) marked.
    candidates = []
    for name, row in summary.models.iterrows():
        candidates.append(dict(name=name, chosen=name == summary.model,
                               roc_auc=_fmt(row["roc_auc"]),
                               recall=f"{row['recall'][0]:.2f}",
                               specificity=f"{row['specificity'][0]:.2f}"))
    # Baselines: the majority class, and the baseline CNN of 04.
    prevalence = report._prevalence(summary, "test")
    baseline_cnn = next((c for c in candidates if c["name"].startswith("baseline")), None)

    shifts_table = None
    if layout.val_shifts.is_file():
        stress = pd.read_csv(layout.val_shifts)
        shifts_table = [dict(shift=r.shift, roc_auc=f"{r.roc_auc:.3f}",
                             recall=f"{r.recall:.3f}", specificity=f"{r.specificity:.3f}")
                        for r in stress.itertuples()]
        crop15 = stress.set_index("shift").loc["crop 15% per side"] \
            if "crop 15% per side" in set(stress["shift"]) else None
    else:
        crop15 = None

    findings = []
    if summary.is_sample:
        findings.append("This deck was built from the small bundled sample: its numbers show "
                        "that the pipeline works, not how well a model does on real films.")
    if test_auc:
        findings.append(f"The chosen model ranks test films with ROC AUC {_fmt(test_auc)} "
                        f"(validation {_fmt(val_auc)}).")
    if sens and spec and threshold:
        findings.append(f"At the validation threshold {threshold:.3f} it finds "
                        f"{sens[0]:.0%} of pneumonias (sensitivity) and clears "
                        f"{spec[0]:.0%} of normal films (specificity) on test.")
    if not official_test:
        findings.append("Its test split is carved by patient from the training data, the "
                        "same source as training: the official test split is harder.")
    if crop15 is not None:
        findings.append(f"Cropping 15 % off each border of the validation films leaves "
                        f"ROC AUC {crop15['roc_auc']:.3f} and specificity "
                        f"{crop15['specificity']:.3f} at the unchanged threshold.")
    official = official_evaluation(evaluations)
    if official["status"] == "matches":
        b = official["block"].metrics
        findings.append(f"The shipped model on the official test split: ROC AUC "
                        f"{_fmt(b.get('roc_auc'))}, specificity {_fmt(b.get('specificity'))}.")

    def auc_title():
        if not test_auc:
            return "Results: no test metrics in this run"
        return (f"On held-out patients the model reaches ROC AUC {test_auc[0]:.3f}; "
                f"specificity {spec[0]:.2f} at sensitivity {sens[0]:.2f}"
                if spec and sens else f"Test ROC AUC {test_auc[0]:.3f}")

    table = report._formatted(report._results_frame(results), 3) if results else None
    return dict(
        title=report.DEFAULT_TITLE, run=shown_path(summary.run_dir),
        built=dt.date.today().isoformat(), disclaimer=report.DISCLAIMER,
        is_sample=summary.is_sample, official_test=official_test,
        findings=findings, auc_title=auc_title(),
        counts=None if summary.counts is None else [
            dict(split=split, normal=int(r["NORMAL"]), pneumonia=int(r["PNEUMONIA"]),
                 total=int(r["NORMAL"] + r["PNEUMONIA"]),
                 patients=int(r["patients"]) if "patients" in r else None,
                 share=r["PNEUMONIA"] / (r["NORMAL"] + r["PNEUMONIA"]))
            for split, r in summary.counts.iterrows()],
        raw_files=summary.raw_files, bad_files=summary.bad_files, dropped=summary.dropped,
        test_source=summary.test_source, model=summary.model,
        model_reason=summary.model_reason, architecture=_architecture(config) if config
        else None, config=config, candidates=candidates, rule=rule, threshold=threshold,
        results=None if table is None else dict(
            columns=list(table.columns),
            rows=[dict(metric=m, cells=list(r)) for m, r in zip(table.index,
                                                                table.itertuples(index=False))]),
        prevalence=prevalence, baseline_cnn=baseline_cnn, shifts=shifts_table,
        official=official, published=PUBLISHED, transfer_cost=report.transfer_cost(),
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
