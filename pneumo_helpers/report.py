"""Reviewer-facing results: a PDF slide deck and the README's headline table, from a run folder.

Everything shown is read from the files a run wrote (``runs/<name>/``): counts from the
manifests, metrics and their 95 % intervals from ``metrics.json``, settings from the chosen
model's ``config.json``, pictures from ``figures/``. No number is typed into this module, so the
deck and the README table always match the run they name. A missing file never stops the deck:
its slide says what was not produced, and the deck keeps its fixed number of pages.

Slides are plain matplotlib figures (16:9, large fonts) written with
:class:`~matplotlib.backends.backend_pdf.PdfPages`: no LaTeX, browser or office suite needed.

Command line::

    pneumo report RUN_DIR     # deck, notebooks PDF (notebooks_pdf) and README results block

**metrics.json shapes accepted** (:func:`read_results`):

- one block per split, ``{"val": BLOCK, "test": BLOCK}`` (also ``"train"``); other top-level
  keys (e.g. ``"model"``) are read as defaults for every block;
- or a single BLOCK, whose ``"split"`` key names its column (``"test"`` when absent).

A BLOCK is ``{"metrics": {NAME: ENTRY, ...}, "threshold": float, "rule": str, "n": int,
"split": str, "model": str}``, or the same with the metric names at the top level instead of
under ``"metrics"`` (what :func:`pneumo_helpers.evaluate.metrics_to_json` writes). Every key is
optional. An ENTRY is ``{"value": x, "ci_low": lo, "ci_high": hi}`` (nulls allowed) or a bare
number. ``"model"`` names the folder ``models/<model>/`` of the model evaluated. When a run
folder has no ``val`` block, the chosen model's ``models/<model>/val_metrics.json`` fills it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

from .config import SAMPLE_DIR
from .runs import ChosenModel, ModelLayout, RunLayout

__all__ = ["FIGURES", "METRIC_LABELS", "SLIDE_TITLES", "RunSummary", "summarize_run",
           "read_results", "results_table", "results_markdown", "format_ci", "make_slides",
           "build_deck", "readme_block", "replace_readme_block"]

DEFAULT_TITLE = "pneumo: pneumonia detection in pediatric chest X-rays"

# The figures the deck shows, by slide: file names under ``<run>/figures/``. The notebooks
# write them under exactly these names.
FIGURES: dict[str, str] = {
    "class_balance": "02_clean_counts",   # 02_scrub: clean images per split and class
    "confusion": "05_confusion",          # 05_interpret: test confusion matrix
    "roc": "05_roc_pr",                   # 05_interpret: ROC and precision-recall curves
    "explanations": "05_explanations",    # 05_interpret: LIME / Grad-CAM examples
}

# Row order and reader-facing names of the metrics; other metrics found follow in file order.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision (PPV)",
    "recall": "Recall (sensitivity)",
    "specificity": "Specificity",
    "f1_pneumonia": "F1 PNEUMONIA",
    "f1_normal": "F1 NORMAL",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier score (lower is better)",
}

SPLIT_ORDER = ("train", "val", "test")
_META_KEYS = ("threshold", "rule", "n", "split", "model")
CLASSES = ("NORMAL", "PNEUMONIA")
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
DISCLAIMER = ("NOT FOR CLINICAL USE: research and teaching project. The model has not been "
              "validated for diagnosis and must not be used to make decisions about patients.")

# Slide geometry and type sizes (points): 16:9 at 13.33 x 7.5 inches, read from the back row.
SLIDE_SIZE = (13.333, 7.5)
TITLE_PT, BODY_PT, TABLE_PT, SMALL_PT = 30, 19, 16, 12
INK, MUTED, ACCENT, WARN = "#1f2937", "#6b7280", "#2f5d8a", "#b91c1c"


# --------------------------------------------------------------------------- metrics

def _number(value) -> float:
    """JSON value -> float, with None/strings/NaN -> NaN."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def _entry(value) -> tuple[float, float, float] | None:
    """A metric ENTRY as ``(value, ci_low, ci_high)`` (NaN when absent); None if not a metric."""
    if isinstance(value, dict):
        if not ({"value", "ci_low", "ci_high"} & set(value)):
            return None
        return tuple(_number(value.get(k)) for k in ("value", "ci_low", "ci_high"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value), math.nan, math.nan)
    return None


def _block(raw: dict, defaults: dict, where: str) -> dict:
    """One BLOCK normalised to ``{"metrics": {name: (v, lo, hi)}, threshold, rule, n, model}``."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object of metrics, got {type(raw).__name__}")
    nested = raw.get("metrics")
    if isinstance(nested, dict):
        candidates = nested
    else:
        # Flat layout: bare numbers only count under a known metric name, so that
        # "threshold" or "n" are never mistaken for metrics.
        candidates = {k: v for k, v in raw.items()
                      if k not in _META_KEYS and (isinstance(v, dict) or k in METRIC_LABELS)}
    metrics = {}
    for name, value in candidates.items():
        parsed = _entry(value)
        if parsed is not None:
            metrics[name] = parsed
    meta = {k: raw.get(k, defaults.get(k)) for k in _META_KEYS}
    return {"metrics": metrics, **meta}


def _parse_results(data: dict, where: str) -> dict[str, dict]:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    per_split = {k: v for k, v in data.items() if k in SPLIT_ORDER and isinstance(v, dict)}
    if per_split:
        defaults = {k: v for k, v in data.items() if k not in SPLIT_ORDER}
        return {split: {**_block(raw, defaults, f"{where} [{split}]"), "split": split}
                for split, raw in per_split.items()}
    block = _block(data, {}, where)
    split = block.get("split") or "test"
    return {str(split): {**block, "split": str(split)}}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-run the notebook that "
                         "writes it") from None


def read_results(source) -> dict[str, dict]:
    """Metrics per split from a metrics JSON file or a run folder.

    Args:
        source: a JSON file in one of the shapes of this module's docstring, or a run folder
            (its ``metrics.json``, plus ``models/<chosen>/val_metrics.json`` for a missing
            ``val`` block).

    Returns:
        ``{split: {"metrics": {name: (value, ci_low, ci_high)}, "threshold", "rule", "n",
        "split", "model"}}`` with splits in the order train, val, test; floats are NaN where
        the file has null, meta values None where absent. Empty when a run folder has neither.
    """
    source = Path(source).expanduser()
    if source.is_dir():
        return summarize_run(source).results
    if not source.is_file():
        raise FileNotFoundError(f"metrics file {source} not found; pass a run folder or the "
                                "metrics.json written by notebook 05_interpret")
    return _ordered(_parse_results(_read_json(source), str(source)))


def _ordered(results: dict[str, dict]) -> dict[str, dict]:
    rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return dict(sorted(results.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def results_table(source) -> pd.DataFrame:
    """Metrics as a table: one row per metric, columns ``(split, "value"|"ci_low"|"ci_high")``.

    Args:
        source: metrics JSON file or run folder (see :func:`read_results`).

    Returns:
        float DataFrame indexed by metric name (order of :data:`METRIC_LABELS`, then others),
        NaN where a split lacks a metric or an interval. ``df.attrs["meta"]`` holds
        ``{split: {"threshold", "rule", "n", "model"}}``.
    """
    results = read_results(source)
    if not results:
        raise FileNotFoundError(f"no metrics in {source}: expected metrics.json (notebook "
                                "05_interpret) or models/<model>/val_metrics.json (04_model)")
    return _results_frame(results)


def _results_frame(results: dict[str, dict]) -> pd.DataFrame:
    names = [m for m in METRIC_LABELS if any(m in r["metrics"] for r in results.values())]
    for block in results.values():
        names += [m for m in block["metrics"] if m not in names]
    columns = pd.MultiIndex.from_product([list(results), ["value", "ci_low", "ci_high"]],
                                         names=["split", "stat"])
    table = pd.DataFrame(np.nan, index=pd.Index(names, name="metric"), columns=columns)
    for split, block in results.items():
        for name, triple in block["metrics"].items():
            table.loc[name, split] = triple
    table.attrs["meta"] = {split: {k: block.get(k) for k in ("threshold", "rule", "n", "model")}
                           for split, block in results.items()}
    return table


def format_ci(value, ci_low=math.nan, ci_high=math.nan, *, digits: int = 3) -> str:
    """``"0.953 (0.941–0.964)"``; ``"0.953"`` without an interval; ``"n/a"`` without a value."""
    value, ci_low, ci_high = (_number(v) for v in (value, ci_low, ci_high))
    if math.isnan(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    if not (math.isnan(ci_low) or math.isnan(ci_high)):
        text += f" ({ci_low:.{digits}f}–{ci_high:.{digits}f})"
    return text


def _split_header(split: str, meta: dict) -> str:
    n = meta.get("n")
    return f"{split} (n = {int(n):,})" if isinstance(n, (int, float)) and n == n else split


def _formatted(table: pd.DataFrame, digits: int) -> pd.DataFrame:
    """Display table: pretty metric names as index, one 'value (low–high)' column per split."""
    meta = table.attrs.get("meta", {})
    splits = list(dict.fromkeys(table.columns.get_level_values("split")))
    cells = {_split_header(s, meta.get(s, {})):
             [format_ci(*table.loc[m, s], digits=digits) for m in table.index] for s in splits}
    index = [METRIC_LABELS.get(m, m) for m in table.index]
    return pd.DataFrame(cells, index=pd.Index(index, name="metric"))


def results_markdown(source, *, digits: int = 3) -> str:
    """The results as a markdown table ``| metric | val (n = ..) | test (n = ..) |``.

    Cells read ``0.953 (0.941–0.964)``: point estimate and 95 % interval, ``digits`` decimals.
    ``source`` is a metrics JSON file or a run folder (see :func:`read_results`).
    """
    shown = _formatted(results_table(source), digits)
    lines = ["| metric | " + " | ".join(shown.columns) + " |",
             "|---|" + "---|" * len(shown.columns)]
    lines += [f"| {name} | " + " | ".join(row) + " |" for name, row in
              zip(shown.index, shown.itertuples(index=False))]
    return "\n".join(lines)


# --------------------------------------------------------------------------- run folder

@dataclass
class RunSummary:
    """What the deck and README say about one run, all read from its folder.

    Attributes:
        run_dir: the run folder.
        counts: clean images per split (rows train/val/test) and class (columns NORMAL,
            PNEUMONIA) plus ``patients``; None without ``clean_manifest.csv``.
        raw_files: rows of ``manifest.csv`` (None if absent).
        bad_files: rows of ``bad_files.csv`` (None if absent).
        dropped: files dropped by ``scrub`` per reason (``dropped.csv``).
        test_source: one sentence on where the test split comes from.
        is_sample: the run used the bundled sample.
        results: metrics per split (see :func:`read_results`).
        model: name of the chosen model folder under ``models/`` (None without one).
        model_reason: how it was chosen.
        model_config: its ``config.json`` ({} if absent).
        models: validation metrics of every model folder, as a table (may be empty).
    """

    run_dir: Path
    counts: pd.DataFrame | None = None
    raw_files: int | None = None
    bad_files: int | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    test_source: str = "unknown: clean_manifest.csv was not produced in this run"
    is_sample: bool = False
    results: dict[str, dict] = field(default_factory=dict)
    model: str | None = None
    model_reason: str = ""
    model_config: dict = field(default_factory=dict)
    models: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def name(self) -> str:
        return self.run_dir.name


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None


def _test_source(clean: pd.DataFrame, *, is_sample: bool = False) -> str:
    """Where the test images came from, judged by the original Kaggle split of each file."""
    test = clean.loc[clean["split"] == "test"]
    if test.empty:
        return "no test split in clean_manifest.csv"
    if is_sample:
        return ("the bundled sample's test folder: images of the dataset's training split, "
                "drawn by patient (the official test split is not in the sample)")
    if "orig_split" not in clean:
        return "the test split of clean_manifest.csv (its origin is not recorded)"
    official = (test["orig_split"] == "test").mean()
    if official == 1:
        return ("the dataset's official test split (patients also found in training were "
                "removed from training)")
    if official == 0:
        return ("test split carved by patient from the training data; the official test split "
                "was not available")
    return f"a mix: {official:.0%} official test images, the rest carved from training"


def _summarize_data(summary: RunSummary) -> None:
    run = RunLayout(summary.run_dir)
    manifest = _read_csv(run.manifest)
    clean = _read_csv(run.clean_manifest)
    bad = _read_csv(run.bad_files)
    dropped = _read_csv(run.dropped)
    summary.raw_files = None if manifest is None else len(manifest)
    summary.bad_files = None if bad is None else len(bad)
    if dropped is not None and "reason" in dropped:
        summary.dropped = {str(k): int(v) for k, v in dropped["reason"].value_counts().items()}
    described = clean if clean is not None else manifest
    if described is not None and {"split", "label"} <= set(described.columns):
        counts = (pd.crosstab(described["split"], described["label"])
                  .reindex(index=[s for s in SPLIT_ORDER if s in set(described["split"])],
                           columns=list(CLASSES), fill_value=0))
        if "patient" in described:
            counts["patients"] = described.groupby("split")["patient"].nunique()
        counts.attrs["source"] = (run.clean_manifest if clean is not None else run.manifest).name
        summary.counts = counts
        if "path" in described:
            summary.is_sample = bool(described["path"].astype(str)
                                     .str.startswith(str(SAMPLE_DIR)).all())
    if clean is not None and {"split"} <= set(clean.columns):
        summary.test_source = _test_source(clean, is_sample=summary.is_sample)


def _summarize_models(summary: RunSummary) -> None:
    run = RunLayout(summary.run_dir)
    folders = sorted(p for p in run.models.glob("*") if p.is_dir()) if run.models.is_dir() \
        else []
    rows = {}
    for folder in folders:
        path = ModelLayout(folder).val_metrics
        if path.is_file():
            block = _parse_results(_read_json(path), str(path))
            metrics = next(iter(block.values()))["metrics"]
            rows[folder.name] = {m: metrics.get(m, (math.nan,) * 3)
                                 for m in ("roc_auc", "recall", "specificity")}
    summary.models = pd.DataFrame.from_dict(rows, orient="index")

    named = next((b.get("model") for b in summary.results.values() if b.get("model")), None)
    if named:  # the model 05 evaluated
        summary.model, summary.model_reason = str(named), "named in metrics.json"
    elif run.chosen.is_file():  # what 04 chose, by 04's rule
        chosen = ChosenModel.read(run)
        summary.model, summary.model_reason = chosen.model, f"chosen in 04: {chosen.rule}"
    elif len(folders) == 1:
        summary.model, summary.model_reason = folders[0].name, "the only model of the run"
    elif rows:
        auc = {name: row["roc_auc"][0] for name, row in rows.items()}
        best = max(auc, key=lambda k: -math.inf if math.isnan(auc[k]) else auc[k])
        summary.model, summary.model_reason = best, "highest validation ROC AUC"
    elif folders:
        summary.model, summary.model_reason = folders[0].name, "first model folder"
    if summary.model:
        config = run.model(summary.model).config
        if config.is_file():
            summary.model_config = _read_json(config)
        val = run.model(summary.model).val_metrics
        if "val" not in summary.results and val.is_file():
            block = next(iter(_parse_results(_read_json(val), str(val)).values()))
            summary.results = _ordered({**summary.results,
                                        "val": {**block, "split": "val",
                                                "model": summary.model}})


def summarize_run(run_dir) -> RunSummary:
    """Read everything the deck shows from a run folder; missing files leave fields empty.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
        ValueError: a JSON file of the run is not valid JSON.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} not found; make one with `make run` "
                                "(or pneumo run --run-dir DIR)")
    summary = RunSummary(run_dir=run_dir)
    _summarize_data(summary)
    metrics = RunLayout(run_dir).metrics
    if metrics.is_file():
        summary.results = _ordered(_parse_results(_read_json(metrics), str(metrics)))
    _summarize_models(summary)
    return summary


# --------------------------------------------------------------------------- slide drawing

def _slide(title: str | None, summary: RunSummary, number: int, total: int
           ) -> tuple[Figure, object]:
    """A blank slide with title (none when None), footer and page number.

    Returns ``(figure, axes)``: the axes span the content area in axes-fraction units (0-1).
    """
    fig = Figure(figsize=SLIDE_SIZE)
    if title is not None:
        fig.text(0.05, 0.92, title, fontsize=TITLE_PT, weight="bold", color=INK, va="center")
        fig.add_artist(_rule(fig, 0.865))
    fig.text(0.05, 0.035, f"pneumo · run {summary.name}", fontsize=SMALL_PT, color=MUTED)
    fig.text(0.5, 0.035, "not for clinical use", fontsize=SMALL_PT, color=WARN, ha="center")
    fig.text(0.95, 0.035, f"{number} / {total}", fontsize=SMALL_PT, color=MUTED, ha="right")
    ax = fig.add_axes((0.05, 0.09, 0.9, 0.75))
    ax.set_axis_off()
    ax.set(xlim=(0, 1), ylim=(0, 1))
    return fig, ax


def _rule(fig: Figure, y: float) -> Line2D:
    return Line2D([0.05, 0.95], [y, y], transform=fig.transFigure, color=ACCENT, lw=2)


def _wrap(text: str, size: float, width: float = 1.0, *, bold: bool = False) -> str:
    """``text`` wrapped to fit ``width`` (fraction of the content area) at ``size`` points."""
    # DejaVu Sans averages ~0.55 em per character (0.62 in bold); content area is 0.9 wide.
    em = 0.62 if bold else 0.55
    chars = max(10, int(width * 0.9 * SLIDE_SIZE[0] * 72 / (size * em)))
    return "\n".join(textwrap.wrap(text, chars))


def _bullets(ax, items: list[str], *, top: float = 0.97, left: float = 0.0,
             width: float = 0.97, size: float = BODY_PT, gap: float = 0.035) -> float:
    """Write wrapped bullet points from ``top`` down; return the y below the last one."""
    line = size / 72 * 1.45 / (0.75 * SLIDE_SIZE[1])   # line height in axes fraction
    y = top
    for item in items:
        wrapped = _wrap(item, size, width)
        ax.text(left, y, "•", fontsize=size, color=ACCENT, va="top")
        ax.text(left + 0.025, y, wrapped, fontsize=size, color=INK, va="top", linespacing=1.35)
        y -= line * (wrapped.count("\n") + 1) + gap
    return y


def _table(ax, cells: list[list[str]], columns: list[str], *, bbox, size: float = TABLE_PT,
           col_widths: list[float] | None = None, left_cols: tuple[int, ...] = (0,)):
    """A readable matplotlib table inside ``bbox`` (axes fraction x, y, w, h); the columns
    ``left_cols`` are left-aligned, the others centred."""
    table = ax.table(cellText=cells, colLabels=columns, bbox=bbox, cellLoc="center",
                     colWidths=col_widths)
    table.auto_set_font_size(False)
    table.set_fontsize(size)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#d1d5db")
        if row == 0:
            cell.set_facecolor("#e5edf5")
            cell.get_text().set_weight("bold")
        elif row % 2 == 0:
            cell.set_facecolor("#f7f9fb")
        if col in left_cols:
            cell.get_text().set_ha("left")
            cell.PAD = 0.03
    return table


def _caption(ax, text: str, *, top: float = 0.14, size: float = SMALL_PT + 3):
    ax.text(0, top, _wrap(text, size), fontsize=size, color=INK, va="top", linespacing=1.3)


def _missing(ax, what: str, detail: str = ""):
    """A clear placeholder where a figure or file was not produced."""
    ax.add_patch(FancyBboxPatch((0.1, 0.3), 0.8, 0.4, boxstyle="round,pad=0.01",
                                facecolor="#f3f4f6", edgecolor="#9ca3af", linestyle="--"))
    ax.text(0.5, 0.55, what, fontsize=BODY_PT + 2, ha="center", va="center", color=INK)
    if detail:
        ax.text(0.5, 0.42, _wrap(detail, SMALL_PT + 2, 0.75), fontsize=SMALL_PT + 2,
                ha="center", va="center", color=MUTED)


def _figure(ax, summary: RunSummary, key: str, caption: str, *, producer: str):
    """Show ``figures/FIGURES[key]`` fitted into the content area, or a 'not produced' note."""
    path = RunLayout(summary.run_dir).figure(FIGURES[key])
    name = path.name
    try:
        image = imread(path)
    except (FileNotFoundError, OSError, SyntaxError, ValueError):
        _missing(ax, f"figure not produced in this run: {name}",
                 f"expected as {summary.name}/figures/{name}, written by notebook {producer}")
        return
    inner = ax.inset_axes((0, 0.17, 1, 0.83))
    inner.imshow(image, interpolation="antialiased")
    inner.set_axis_off()
    _caption(ax, caption)


# --------------------------------------------------------------------------- the slides

def _title_slide(fig, ax, summary: RunSummary, title: str):
    ax.text(0.5, 0.72, _wrap(title, TITLE_PT + 8, 0.95, bold=True), fontsize=TITLE_PT + 8,
            weight="bold", ha="center", va="center", color=INK)
    source = "the bundled sample of the Kermany et al. (2018) data" if summary.is_sample \
        else "Kermany et al. (2018) Chest X-Ray Images (Pneumonia)"
    ax.text(0.5, 0.45, f"Run: {summary.name} — data: {source}", fontsize=BODY_PT + 1,
            ha="center", color=INK)
    ax.text(0.5, 0.36, "Keras convolutional network · OSEMiN notebooks · pneumo_helpers",
            fontsize=BODY_PT, ha="center", color=MUTED)
    where = f"{summary.run_dir.parent.name}/{summary.name}"
    ax.text(0.5, 0.27, f"deck built {_dt.date.today().isoformat()} from {where}",
            fontsize=SMALL_PT + 1, ha="center", color=MUTED)
    ax.text(0.5, 0.1, _wrap(DISCLAIMER, SMALL_PT + 3, 0.9, bold=True), fontsize=SMALL_PT + 3,
            ha="center", va="center", color=WARN, weight="bold")


def _problem_slide(fig, ax, summary: RunSummary):
    _bullets(ax, [
        "Pneumonia is a leading cause of death of young children worldwide; a chest X-ray is "
        "the usual imaging test, and reading it takes a trained radiologist, who is scarce "
        "where pneumonia is common.",
        "Question: can a small convolutional network tell NORMAL from PNEUMONIA on pediatric "
        "chest X-rays, and how sure can we be of its error rates?",
        "Task: binary classification, NORMAL = 0, PNEUMONIA = 1. The model outputs "
        "P(PNEUMONIA); a threshold chosen on validation data turns it into a call.",
        "What matters: recall (a missed pneumonia is costly) at a specificity that does not "
        "flood readers with false alarms; every figure comes with a 95 % confidence interval.",
        "Audience of this deck: reviewers of the method, not clinicians.",
    ])


def _data_slide(fig, ax, summary: RunSummary):
    counts = summary.counts
    if counts is None:
        _missing(ax, "no manifest in this run: manifest.csv / clean_manifest.csv",
                 "written by notebooks 01_obtain and 02_scrub")
        return
    has_patients = "patients" in counts
    columns = ["split", *CLASSES, "total", *(["patients"] if has_patients else []),
               "% PNEUMONIA"]
    cells = []
    for split, row in counts.iterrows():
        total = int(row["NORMAL"] + row["PNEUMONIA"])
        cells.append([split, f"{int(row['NORMAL']):,}", f"{int(row['PNEUMONIA']):,}",
                      f"{total:,}", *([f"{int(row['patients']):,}"] if has_patients else []),
                      f"{row['PNEUMONIA'] / total:.0%}" if total else "n/a"])
    _table(ax, cells, columns, bbox=(0, 0.45, 1, 0.5))
    facts = [f"Counts after cleaning, read from {counts.attrs['source']}; splits are cut by "
             "patient, so no child appears in two splits."]
    if summary.raw_files is not None:
        cleaning = [f"{summary.raw_files:,} files listed in manifest.csv"]
        if summary.bad_files is not None:
            cleaning.append(f"{summary.bad_files:,} unreadable")
        cleaning += [f"{n:,} dropped: {reason}" for reason, n in summary.dropped.items()]
        facts.append("; ".join(cleaning) + ".")
    source = ("Source: bundled sample of the Kermany et al. (2018) training images, "
              "downscaled (CC BY 4.0)." if summary.is_sample else
              "Source: Kermany et al. (2018), Chest X-Ray Images (Pneumonia), CC BY 4.0.")
    _bullets(ax, [*facts, source], top=0.38, size=BODY_PT - 2)


_NAMES = RunLayout(Path())  # file names only, for the process slide
_PROCESS = [
    ("Obtain", "01_obtain", "find the data; list every file and its patient",
     _NAMES.manifest.name),
    ("Scrub", "02_scrub", "drop bad files and duplicates; split by patient",
     _NAMES.clean_manifest.name),
    ("Explore", "03_explore", "class balance, image sizes, example images",
     f"{_NAMES.figures.name}/"),
    ("Model", "04_model", "train Keras CNNs, balancing classes", f"{_NAMES.models.name}/<name>/"),
    ("iNterpret", "05_interpret", "threshold; test metrics with 95 % CIs; LIME, Grad-CAM",
     _NAMES.metrics.name),
]


def _process_slide(fig, ax, summary: RunSummary):
    cells = [[step, nb, what, out] for step, nb, what, out in _PROCESS]
    _table(ax, cells, ["step", "notebook", "what it does", "writes"], bbox=(0, 0.3, 1, 0.66),
           col_widths=[0.11, 0.15, 0.52, 0.22], size=TABLE_PT - 1, left_cols=(0, 1, 2, 3))
    _bullets(ax, [
        "Each notebook reads only what the one before wrote into runs/<name>/, so any notebook "
        "can be re-run alone; all logic lives in the tested package pneumo_helpers.",
        "`make run` executes the five notebooks with papermill; this deck and the notebooks "
        "PDF are drawn from that run folder.",
    ], top=0.24, size=BODY_PT - 3)


def _balance_slide(fig, ax, summary: RunSummary):
    counts = summary.counts
    caption = "Clean images per split and class."
    if counts is not None and "train" in counts.index and counts.loc["train", "NORMAL"]:
        ratio = counts.loc["train", "PNEUMONIA"] / counts.loc["train", "NORMAL"]
        balance = summary.model_config.get("balance")
        caption += (f" Training holds {ratio:.1f} PNEUMONIA images per NORMAL image"
                    + (f"; balancing strategy: {balance}." if balance else ".")
                    + " Accuracy alone would reward always answering PNEUMONIA.")
    _figure(ax, summary, "class_balance", caption, producer="02_scrub")


_MODEL_KEYS = [("architecture", "architecture"), ("model", "model"),
               ("parameters", "parameters"), ("image_size", "input size (px)"),
               ("channels", "channels"), ("balance", "class balancing"),
               ("batch_size", "batch size"), ("epochs_run", "epochs run"),
               ("epochs_max", "epochs (max)"), ("best_epoch", "best epoch"),
               ("monitor", "checkpoint monitor"), ("best_value", "best monitored value"),
               ("mean_seconds_per_epoch", "seconds per epoch"), ("seed", "seed")]


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_short(v)}" for k, v in value.items())
    return str(value)


def _model_slide(fig, ax, summary: RunSummary):
    if not summary.model:
        _missing(ax, "no model in this run: models/<name>/",
                 "written by notebook 04_model (config.json, val_metrics.json, model.keras)")
        return
    config = summary.model_config
    rows = [[label, _short(config[key])] for key, label in _MODEL_KEYS
            if config.get(key) not in (None, "", {})]
    versions = config.get("versions")
    if isinstance(versions, dict):
        # One row per library keeps the cells narrow enough for the half-width table.
        rows += [[name, str(versions[name])] for name in ("keras", "tensorflow")
                 if name in versions]
    wide = len(summary.models) > 1
    width = 0.42 if wide else 0.75
    ax.text(0, 0.98, f"Chosen model: {summary.model} ({summary.model_reason})",
            fontsize=BODY_PT, color=INK, va="top", weight="bold")
    if rows:
        _table(ax, rows[:15], ["setting", "value"], bbox=(0, 0.02, width, 0.86),
               size=TABLE_PT - 2, col_widths=[0.5, 0.5])
    else:
        _missing(ax, f"models/{summary.model}/config.json not produced in this run",
                 "written by pneumo_helpers.train.train_model in notebook 04_model")
    if wide:
        cells = [[name, *(format_ci(*row[m], digits=2) for m in ("roc_auc", "recall",
                                                                  "specificity"))]
                 for name, row in summary.models.iterrows()]
        shown = cells[:10]
        height = 0.075 * (len(shown) + 1)
        ax.text(0.45, 0.9, "All models, validation split (95 % CI)", fontsize=SMALL_PT + 3,
                color=MUTED, va="top")
        _table(ax, shown, ["model", "ROC AUC", "recall", "specificity"],
               bbox=(0.45, 0.84 - height, 0.55, height), size=SMALL_PT,
               col_widths=[0.22, 0.26, 0.26, 0.26])


def _results_slide(fig, ax, summary: RunSummary):
    if not summary.results:
        _missing(ax, "metrics not produced in this run: metrics.json",
                 "written by notebook 05_interpret (val_metrics.json by 04_model)")
        return
    table = _results_frame(summary.results)
    shown = _formatted(table, 3)
    cells = [[name, *row] for name, row in zip(shown.index, shown.itertuples(index=False))]
    height = min(0.72, 0.068 * (len(cells) + 1))
    _table(ax, cells, ["metric", *shown.columns], bbox=(0, 0.98 - height, 1, height),
           col_widths=[0.34] + [0.66 / len(shown.columns)] * len(shown.columns))
    meta = table.attrs["meta"]
    notes = ["Point estimate (95 % bootstrap confidence interval), read from metrics.json."]
    thresholds = {(m.get("threshold"), m.get("rule")) for m in meta.values()
                  if m.get("threshold") is not None}
    for threshold, rule in sorted(thresholds, key=str):
        notes.append(f"Decision threshold on P(PNEUMONIA): {_number(threshold):.3f}"
                     + (f" (rule: {rule}, chosen on validation)." if rule else "."))
    if "test" in meta:
        notes.append(f"Test numbers come from {summary.test_source}.")
    _bullets(ax, notes, top=0.98 - height - 0.03, size=SMALL_PT + 3, gap=0.005)


def _confusion_slide(fig, ax, summary: RunSummary):
    _figure(ax, summary, "confusion",
            "Test images by true class (rows) and predicted class (columns) at the chosen "
            "threshold. Off-diagonal cells are the errors: missed pneumonia (false negatives) "
            "and false alarms (false positives).", producer="05_interpret")


def _roc_slide(fig, ax, summary: RunSummary):
    _figure(ax, summary, "roc",
            "ROC and precision-recall curves on the test split; the marker shows the chosen "
            "threshold. The PR curve depends on the share of PNEUMONIA in the split.",
            producer="05_interpret")


def _explanations_slide(fig, ax, summary: RunSummary):
    _figure(ax, summary, "explanations",
            "Where the model looked: LIME superpixels and Grad-CAM heat maps on test images. "
            "They show regions that moved the score, not medical reasons; attention outside "
            "the lungs (text markers, borders, devices) is a warning sign.",
            producer="05_interpret")


def _prevalence(summary: RunSummary, split: str) -> float | None:
    counts = summary.counts
    if counts is None or split not in counts.index:
        return None
    total = counts.loc[split, "NORMAL"] + counts.loc[split, "PNEUMONIA"]
    return counts.loc[split, "PNEUMONIA"] / total if total else None


def _limitations_slide(fig, ax, summary: RunSummary):
    items = []
    if summary.is_sample:
        n = "" if summary.raw_files is None else f" ({summary.raw_files:,} images)"
        items.append(f"This run used the small bundled sample{n}: its numbers show that the "
                     "pipeline works, not how well a model would do on real data.")
    items.append(f"Test data: {summary.test_source}.")
    items.append("One source: children aged one to five of one hospital (Guangzhou). "
                 "Performance on other hospitals, ages and X-ray machines is unknown.")
    prevalence = _prevalence(summary, "test")
    share = "" if prevalence is None else f" ({prevalence:.0%} PNEUMONIA in this test split)"
    items.append("Precision and PR AUC depend on how common pneumonia is in the data"
                 f"{share}; in a clinic it differs.")
    items.append("Labels are graders' reads of the images, not confirmed diagnoses; bacterial "
                 "and viral pneumonia are merged into one class.")
    items.append("LIME and Grad-CAM show where the model looked, not why it is right.")
    y = _bullets(ax, items, size=BODY_PT - 2, gap=0.02)
    bottom = max(0.0, min(y - 0.2, 0.02))
    ax.add_patch(FancyBboxPatch((0, bottom), 1, 0.15, boxstyle="round,pad=0.01",
                                facecolor="#fef2f2", edgecolor=WARN, lw=2))
    ax.text(0.5, bottom + 0.075, _wrap(DISCLAIMER, BODY_PT - 3, 0.95, bold=True),
            fontsize=BODY_PT - 3, ha="center", va="center", color=WARN, weight="bold")


def _recommendations_slide(fig, ax, summary: RunSummary):
    rule = next((b.get("rule") for b in summary.results.values() if b.get("rule")), None)
    brier = summary.results.get("test", {}).get("metrics", {}).get("brier")
    items = [
        "Treat this model as a research baseline. Before any clinical study: external "
        "validation on X-rays from other hospitals and ages, then a prospective study.",
        "Choose the threshold for the clinical goal on validation data (e.g. the rule "
        "sens>=X for a required recall) and report the specificity it costs"
        + (f"; this run used the rule '{rule}'." if rule else "."),
        "Check calibration before showing probabilities to readers"
        + (f" (test Brier score {format_ci(*brier)})." if brier else ".")
        + " Recalibrate on validation data if needed.",
        "Have a radiologist review Grad-CAM / LIME maps for shortcut cues (markers, tubes, "
        "image borders) and the model's errors.",
        "Improve the data before the model: more NORMAL images and more centres; report "
        "recall separately for bacterial and viral pneumonia.",
    ]
    _bullets(ax, items, size=BODY_PT - 1)


SLIDE_TITLES = ["title", "The problem", "The data", "The process: OSEMiN in five notebooks",
                "Class balance", "The model", "Results", "Confusion matrix (test)",
                "ROC and precision-recall (test)", "Explanations: LIME and Grad-CAM",
                "Limitations", "Recommendations"]
_DRAW = [_title_slide, _problem_slide, _data_slide, _process_slide, _balance_slide,
         _model_slide, _results_slide, _confusion_slide, _roc_slide, _explanations_slide,
         _limitations_slide, _recommendations_slide]


def make_slides(run_dir, *, title: str = DEFAULT_TITLE) -> list[Figure]:
    """The deck's slides as matplotlib figures (16:9), one per entry of :data:`SLIDE_TITLES`.

    Everything shown is read from ``run_dir`` (see :func:`summarize_run`); a missing file
    gives a slide that says so instead of an error.
    """
    summary = summarize_run(run_dir)
    slides = []
    for number, (name, draw) in enumerate(zip(SLIDE_TITLES, _DRAW), start=1):
        if draw is _title_slide:
            fig, ax = _slide(None, summary, number, len(_DRAW))
            draw(fig, ax, summary, title)
        else:
            fig, ax = _slide(name, summary, number, len(_DRAW))
            draw(fig, ax, summary)
        slides.append(fig)
    return slides


def build_deck(run_dir, out_pdf, *, title: str = DEFAULT_TITLE) -> Path:
    """Write the slide deck of a run as a PDF (one landscape 16:9 page per slide).

    Args:
        run_dir: run folder (``runs/<name>/``).
        out_pdf: PDF to write; parent folders are created.
        title: text of the title slide and the PDF's Title metadata.

    Returns:
        Path of the PDF written.
    """
    out_pdf = Path(out_pdf).expanduser()
    if out_pdf.suffix.lower() != ".pdf":
        raise ValueError(f"output {out_pdf} must end in .pdf")
    slides = make_slides(run_dir, title=title)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(out_pdf, metadata={"Title": title, "Creator": "pneumo_helpers.report",
                                     "Subject": f"run {Path(run_dir).resolve().name}"}) as pdf:
        for fig in slides:
            pdf.savefig(fig)
    return out_pdf


# --------------------------------------------------------------------------- README block

def readme_block(run_dir, *, readme_dir=None, digits: int = 3) -> str:
    """Markdown for the README: the results table, the threshold, the test's origin and the
    command that made it (``run_dir`` shown relative to ``readme_dir`` when inside it)."""
    run_dir = Path(run_dir).expanduser().resolve()
    summary = summarize_run(run_dir)
    shown = run_dir
    if readme_dir is not None:
        try:
            shown = run_dir.relative_to(Path(readme_dir).resolve())
        except ValueError:
            pass
    table = results_table(run_dir)
    intro = f"Run `{shown}`"
    if summary.model:
        intro += f", model `{summary.model}`"
    if summary.is_sample:
        intro += " (bundled sample: these numbers only show that the pipeline works)"
    lines = [intro + ":", "", results_markdown(run_dir, digits=digits), ""]
    meta = table.attrs["meta"]
    facts = ["Cells: estimate (95 % bootstrap confidence interval)."]
    decision = meta.get("test", {}) if "test" in meta else next(iter(meta.values()), {})
    if decision.get("threshold") is not None:
        facts.append(f"Decision threshold on P(PNEUMONIA): {_number(decision['threshold']):.3f}"
                     + (f" (rule `{decision['rule']}`)." if decision.get("rule") else "."))
    if "test" in meta:
        facts.append(f"Test data: {summary.test_source}.")
    lines += [f"- {fact}" for fact in facts]
    lines += ["", f"Made with `pneumo report {shown}`."]
    return "\n".join(lines)


def replace_readme_block(readme, text: str) -> Path:
    """Replace what lies between ``<!-- results:start -->`` and ``<!-- results:end -->``.

    The markers stay; ``text`` goes between them on its own lines. Raises ValueError naming
    the file when the markers are missing, repeated or out of order.
    """
    readme = Path(readme)
    if not readme.is_file():
        raise FileNotFoundError(f"{readme} not found; pass --readme PATH")
    content = readme.read_text()
    starts, ends = content.count(README_START), content.count(README_END)
    if starts != 1 or ends != 1 or content.index(README_START) > content.index(README_END):
        raise ValueError(f"{readme} needs exactly one '{README_START}' followed by one "
                         f"'{README_END}' (found {starts} and {ends}); add them where the "
                         "results table should go")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    new = pattern.sub(lambda _: f"{README_START}\n{text.strip()}\n{README_END}", content)
    readme.write_text(new)
    return readme


# --------------------------------------------------------------------------- CLI
