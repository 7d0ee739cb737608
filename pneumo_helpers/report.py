"""What a run shows, read from its folder: the summary the deck fills its slides from
(:mod:`pneumo_helpers.deck`) and the README's headline table.

Everything is read from the files a run wrote (``runs/<name>/``, through
:mod:`pneumo_helpers.runs`): counts from the manifests, metrics and their 95 % intervals from
``metrics/<split>.json`` (:class:`~pneumo_helpers.metrics_report.MetricsReport`), settings
from the chosen model's ``config.json``. No number is typed into this module, so the deck and
the README table (:mod:`pneumo_helpers.readme`) always match the run they name; a missing file
leaves its field empty. When a run has no ``val`` results, the chosen model's
``models/<model>/val_metrics.json`` fills them.

    pneumo report RUN_DIR     # deck, notebooks PDF (notebooks_pdf) and README results block
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import SAMPLE_DIR, project_root
from .labels import CLASSES
from .metrics_report import METRIC_LABELS, Estimate, MetricsReport
from .runs import ChosenModel, ModelLayout, RunLayout, read_json

__all__ = ["RunSummary", "summarize_run", "read_results", "results_table",
           "test_source", "frame_markdown", "count_words",
           "results_markdown", "format_ci", "transfer_cost"]

DEFAULT_TITLE = "pneumo: pneumonia detection in pediatric chest X-rays"

SPLIT_ORDER = ("train", "val", "test")
DISCLAIMER = ("NOT FOR CLINICAL USE: research and teaching project. The model has not been "
              "validated for diagnosis and must not be used to make decisions about patients.")


# --------------------------------------------------------------------------- metrics

def read_results(source) -> dict[str, MetricsReport]:
    """Metrics per split from a metrics report file or a run folder.

    Args:
        source: a :class:`~pneumo_helpers.metrics_report.MetricsReport` JSON file
            (``pneumo evaluate -o``, ``val_metrics.json``), or a run folder (its
            ``metrics/<split>.json``, plus ``models/<chosen>/val_metrics.json`` for a missing
            ``val``).

    Returns:
        ``{split: MetricsReport}`` with splits in the order train, val, test (a file's split
        is the one it records, ``"test"`` when it records none). Empty when a run folder has
        no metrics yet.
    """
    source = Path(source).expanduser()
    if source.is_dir():
        return summarize_run(source).results
    if not source.is_file():
        raise FileNotFoundError(f"metrics file {source} not found; pass a run folder or a "
                                "metrics file written by notebook 05 or pneumo evaluate")
    record = MetricsReport.read(source)
    return {record.split or "test": record}


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


def _results_frame(results: dict[str, MetricsReport]) -> pd.DataFrame:
    names = [m for m in METRIC_LABELS if any(m in r.metrics for r in results.values())]
    for block in results.values():
        names += [m for m in block.metrics if m not in names]
    table = pd.concat({split: block.table() for split, block in results.items()}, axis=1,
                      names=["split", "stat"]).reindex(pd.Index(names, name="metric"))
    table.attrs["meta"] = {split: {k: getattr(block, k) for k in ("threshold", "rule", "n",
                                                                   "model")}
                           for split, block in results.items()}
    return table


#: Reader-facing names of other columns the notebooks show.
COLUMN_LABELS = {**METRIC_LABELS, "shift": "shift", "mean_p_normal": "mean P of NORMAL films",
                 "recall": "Sensitivity", "brier": "Brier score"}


def frame_markdown(frame: pd.DataFrame, *, digits: int = 3, index: bool = False) -> str:
    """A table as Markdown with plain-language headings (:data:`COLUMN_LABELS`) and floats to
    ``digits`` decimals, for a notebook cell or a card (no ``tabulate`` needed)."""
    if index:
        frame = frame.reset_index()
        frame.columns = [str(c) if c != "index" else "" for c in frame.columns]
    heads = [COLUMN_LABELS.get(str(c), str(c)) for c in frame.columns]

    def text(value):
        if isinstance(value, float):
            return "—" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(text(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def count_words(values) -> str:
    """Each distinct value with how often it occurs, most frequent first, as one line of
    text: ``"RGB 5,206; L 10"``."""
    return "; ".join(f"{value} {n:,}" for value, n in pd.Series(values).value_counts().items())


def format_ci(value, ci_low=math.nan, ci_high=math.nan, *, digits: int = 3) -> str:
    """``"0.953 (0.941–0.964)"``; ``"0.953"`` without an interval; ``"n/a"`` without a value."""
    value, ci_low, ci_high = (math.nan if v is None else float(v)
                              for v in (value, ci_low, ci_high))
    if math.isnan(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    if not (math.isnan(ci_low) or math.isnan(ci_high)):
        text += f" ({ci_low:.{digits}f}–{ci_high:.{digits}f})"
    return text


#: Each split's name in a table heading, with what it was used for.
SPLIT_USES = {"train": "train (fitted the weights)",
              "val": "validation (chose epochs, model, threshold)",
              "test": "test (chose nothing)",
              "external": "external films (chose the recipe earlier, nothing in this run)"}


def _split_header(split: str, meta: dict) -> str:
    n = meta.get("n")
    name = SPLIT_USES.get(split, split)
    return f"{name}, n = {int(n):,}" if isinstance(n, (int, float)) and n == n else name


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
        results: metrics per split (``{split: MetricsReport}``, see :func:`read_results`).
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
    results: dict[str, MetricsReport] = field(default_factory=dict)
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


def test_source(clean: pd.DataFrame, *, is_sample: bool = False) -> str:
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
        return ("test split carved by patient from the training data, apart from the "
                "validation patients that chose recipes, models and thresholds (the dataset "
                "folder has no test/ of its own)")
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
        summary.test_source = test_source(clean, is_sample=summary.is_sample)


def _summarize_models(summary: RunSummary) -> None:
    run = RunLayout(summary.run_dir)
    folders = sorted(p for p in run.models.glob("*") if p.is_dir()) if run.models.is_dir() \
        else []
    rows = {}
    for folder in folders:
        path = ModelLayout(folder).val_metrics
        if path.is_file():
            metrics = MetricsReport.read(path).metrics
            rows[folder.name] = {m: metrics.get(m, Estimate(math.nan))
                                 for m in ("roc_auc", "recall", "specificity", "brier")}
    summary.models = pd.DataFrame.from_dict(rows, orient="index")

    named = next((b.model for b in summary.results.values() if b.model), None)
    chosen = ChosenModel.read(run) if run.chosen.is_file() else None
    if named and chosen and chosen.model == named:  # 05 evaluated what 04 chose
        summary.model, summary.model_reason = str(named), f"chosen in 04: {chosen.rule}"
    elif named:  # the model 05 evaluated (e.g. the shipped one)
        summary.model, summary.model_reason = str(named), "named in its metrics files"
    elif chosen:  # what 04 chose, by 04's rule
        summary.model, summary.model_reason = chosen.model, f"chosen in 04: {chosen.rule}"
    elif len(folders) == 1:
        summary.model, summary.model_reason = folders[0].name, "the only model of the run"
    elif folders:  # choosing is 04's job (models/chosen.json); never re-chosen here
        summary.model_reason = "none chosen yet: run 04_model"
    if summary.model:
        config = run.model(summary.model).config
        if config.is_file():
            summary.model_config = read_json(config)
        val = run.model(summary.model).val_metrics
        if "val" not in summary.results and val.is_file():
            block = dataclasses.replace(MetricsReport.read(val), split="val",
                                        model=summary.model)
            summary.results = _ordered({**summary.results, "val": block})


def summarize_run(run_dir) -> RunSummary:
    """Read everything the deck shows from a run folder; missing files leave fields empty.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
        ValueError: a JSON file of the run is not valid JSON, or a metrics file not a
            :class:`~pneumo_helpers.metrics_report.MetricsReport`.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} not found; make one with `make run` "
                                "(or pneumo run --run-dir DIR)")
    summary = RunSummary(run_dir=run_dir)
    _summarize_data(summary)
    summary.results = _ordered(RunLayout(run_dir).results())
    _summarize_models(summary)
    return summary


def _prevalence(summary: RunSummary, split: str) -> float | None:
    counts = summary.counts
    if counts is None or split not in counts.index:
        return None
    total = counts.loc[split, "NORMAL"] + counts.loc[split, "PNEUMONIA"]
    return counts.loc[split, "PNEUMONIA"] / total if total else None


# Written by benchmarks/bench_transfer.py; the model card and the deck quote it.
TRANSFER_BENCH = Path("benchmarks") / "results" / "transfer.json"
# Written by tools/site_threshold_curve.py; the deck's findings quote it.
SITE_CURVE = Path("benchmarks") / "results" / "site_threshold.json"


def transfer_cost(path: str | Path | None = None) -> str | None:
    """One sentence for the model card and the deck: what a transfer candidate costs per
    epoch on this machine, and that its quality on new films was not measured here.

    ``path``: the JSON of ``benchmarks/bench_transfer.py`` (default: the project's
    :data:`TRANSFER_BENCH`); ``None`` when it has not been written.
    """
    path = Path(path) if path else project_root() / TRANSFER_BENCH
    if not path.is_file():
        return None
    record = read_json(path)
    costs = ", ".join(f"{b['backbone']} {b['head_epoch_seconds']:.0f} s (head) and "
                      f"{b['fine_tune_epoch_seconds']:.0f} s (top layers fine-tuned)"
                      for b in record["backbones"])
    return (f"A network pretrained on ImageNet would cost per epoch of {record['n_train']:,} "
            f"training and {record['n_val']:,} validation films at {record['image_size']} px on "
            f"{record['machine']['cpus']} CPU cores: {costs} (timed with random weights). Its "
            "quality on new films is not measured: this machine cannot download the ImageNet "
            "weights.")

