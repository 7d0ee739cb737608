"""Tests for pneumo_helpers.report (slide deck, results table, README block) and for
pneumo_helpers.notebooks_pdf (notebooks -> one PDF), on run folders made in tmp_path."""

import base64
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from pneumo_helpers import deck, report

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers

def pdf_pages(path: Path) -> int:
    """Page objects in a PDF (matplotlib and Chromium write them as plain dictionaries)."""
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def png(path: Path) -> None:
    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=40)


def metric_block(base: float, n: int, split: str) -> dict:
    return {"threshold": 0.4123, "rule": "youden", "n": n, "split": split,
            "metrics": {name: {"value": base - 0.01 * i, "ci_low": base - 0.01 * i - 0.03,
                               "ci_high": base - 0.01 * i + 0.02}
                        for i, name in enumerate(report.METRIC_LABELS)}}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A complete little run: manifests, metrics, one model, every figure but explanations."""
    run = tmp_path / "runs" / "demo"
    rows = [("train", "NORMAL", "p1", "train"), ("train", "PNEUMONIA", "p2", "train"),
            ("train", "PNEUMONIA", "p3", "train"), ("val", "NORMAL", "p4", "train"),
            ("val", "PNEUMONIA", "p5", "val"), ("test", "NORMAL", "p6", "train"),
            ("test", "PNEUMONIA", "p7", "train")]
    clean = pd.DataFrame(rows, columns=["split", "label", "patient", "orig_split"])
    clean["path"] = [f"/data/{i}.jpeg" for i in range(len(clean))]
    run.mkdir(parents=True)
    clean.to_csv(run / "clean_manifest.csv", index=False)
    clean.to_csv(run / "manifest.csv", index=False)
    pd.DataFrame({"path": ["/data/x.jpeg"], "reason": ["duplicate of another file"]}).to_csv(
        run / "dropped.csv", index=False)
    (run / "metrics").mkdir()
    for split, base, n in (("val", 0.95, 83), ("test", 0.90, 95)):
        (run / "metrics" / f"{split}.json").write_text(json.dumps(
            {**metric_block(base, n, split), "model": "tiny"}))
    (run / "models" / "tiny").mkdir(parents=True)
    (run / "models" / "tiny" / "config.json").write_text(json.dumps(
        {"image_size": 64, "balance": "class_weight", "parameters": 12345,
         "versions": {"keras": "3.15.0"}}))
    for key in ("class_balance", "confusion", "roc"):
        png(run / "figures" / f"{deck.FIGURES[key]}.png")
    return run


# --------------------------------------------------------------------------- deck

def slides(html: str) -> list[str]:
    """Text of each slide of the deck's HTML, tags removed, whitespace collapsed."""
    parts = html.split('<section class="slide')[1:]
    return [" ".join(re.sub(r"<[^>]+>", " ", part).split()) for part in parts]


def test_deck_numbers_are_the_run_metrics_file(run_dir):
    html = deck.deck_html(run_dir)
    results = next(s for s in slides(html) if s.startswith('"> Results') or "Results" in s[:40])
    for split in ("val", "test"):
        metrics = json.loads((run_dir / "metrics" / f"{split}.json").read_text())
        for name, cell in metrics["metrics"].items():
            shown = report.format_ci(cell["value"], cell["ci_low"], cell["ci_high"])
            assert shown in results, (split, name, shown)
    assert "test (chose nothing), n = 95" in results and "0.412" in results
    assert "carved by patient from the training data" in results


def test_deck_names_models_in_full_and_marks_the_chosen_one(run_dir):
    for name in ("tiny", "five_block-oversample", "five_block-undersample"):
        folder = run_dir / "models" / name
        folder.mkdir(exist_ok=True)
        (folder / "val_metrics.json").write_text(json.dumps(
            {"metrics": {"roc_auc": {"value": 0.99, "ci_low": 0.98, "ci_high": 1.0}}}))
    html = deck.deck_html(run_dir)
    assert "five_block-oversample" in html and "five_block-undersample" in html
    assert 'class="chosen"><td>tiny ←' in html
    text = " ".join(slides(html))
    assert "12,345 parameters" in text and "normal films weighted up in the loss" in text
    assert "1 dropped (duplicate of another file)" in text


def test_missing_files_give_notes_not_errors(tmp_path):
    empty = tmp_path / "runs" / "empty"
    empty.mkdir(parents=True)
    text = " ".join(slides(deck.deck_html(empty)))
    for key, name in deck.FIGURES.items():
        if key != "class_balance":  # its slide says the manifests are missing instead
            assert f"figure not produced in this run: figures/{name}.png" in text
    assert "no manifest in this run" in text and "metrics not produced in this run" in text
    assert len(slides(deck.deck_html(empty))) == 14


def test_deck_shows_an_official_evaluation_only_for_the_shipped_model(tmp_path, run_dir):
    from pneumo_helpers import files
    from pneumo_helpers.inference import SHIPPED_MODEL_DIR

    folder = tmp_path / "evaluations"
    folder.mkdir()
    block = metric_block(0.8, 624, "test")
    (folder / "old.json").write_text(json.dumps({**block, "model_sha256": "ab" * 32}))
    (folder / "old.json").write_text(json.dumps({**block, "model_sha256": "ab" * 32,
                                                 "external_half": {**block}}))
    html = deck.deck_html(run_dir, evaluations=folder)
    digest = files.sha256(SHIPPED_MODEL_DIR / "model.keras")
    assert f"awaits its receipt on the official split's locked half" in html
    assert "abababab" in html  # named as an earlier model's, with its figures
    assert "1 earlier shipped models scored ROC AUC 0.740–0.740 there" in html
    (folder / "new.json").write_text(json.dumps({**block, "model_sha256": digest,
                                                 "external_half": {**block, "n": 315}}))
    html = deck.deck_html(run_dir, evaluations=folder)
    assert "on the official split's locked half: ROC AUC 0.740" in html
    text = " ".join(slides(html))
    assert "locked half B (judged) 624 0.740 (0.710–0.760)" in text
    assert "external half A (used in development) 315" in text
    # The scorecard slide has the receipt's line for the shipped model, and no other.
    assert text.count("locked half B, 624") == 1


def test_deck_rejects_a_missing_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="run folder"):
        deck.deck_html(tmp_path / "nope")


# --------------------------------------------------------------------------- results

def test_format_ci():
    assert report.format_ci(0.95312, 0.94071, 0.96449) == "0.953 (0.941–0.964)"
    assert report.format_ci(0.5) == "0.500"
    assert report.format_ci(None, None, None) == "n/a"
    assert report.format_ci(0.5, None, 0.6, digits=2) == "0.50"


def test_results_markdown(run_dir):
    lines = report.results_markdown(run_dir).splitlines()
    assert lines[0] == ("| metric | validation (chose epochs, model, threshold), n = 83 | "
                        "test (chose nothing), n = 95 |")
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| Accuracy | 0.950 (0.920–0.970) | 0.900 (0.870–0.920) |"
    assert len(lines) == 2 + len(report.METRIC_LABELS)


def test_one_metrics_report_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"threshold": 0.5, "rule": "0.5", "n": 40, "split": "test",
                                "model": "m", "model_sha256": "ab" * 32, "metrics": {
                                    "roc_auc": {"value": 0.91, "ci_low": 0.88, "ci_high": 0.94},
                                    "recall": {"value": 0.8, "ci_low": None, "ci_high": None},
                                    "brier": {"value": 0.12, "ci_low": None,
                                              "ci_high": None}}}))
    table = report.results_table(path)
    assert list(table.columns.get_level_values("split").unique()) == ["test"]
    assert list(table.index) == ["recall", "roc_auc", "brier"]   # METRIC_LABELS order
    assert table.attrs["meta"]["test"]["n"] == 40
    markdown = report.results_markdown(path)
    assert "| Recall (sensitivity) | 0.800 |" in markdown
    assert "| Brier score (lower is better) | 0.120 |" in markdown


def test_a_shape_nothing_writes_is_refused_not_guessed(tmp_path):
    # Metric names at the top level next to the threshold: the old flat file.
    path = tmp_path / "flat.json"
    path.write_text(json.dumps({"roc_auc": {"value": 0.91, "ci_low": 0.88, "ci_high": 0.94},
                                "threshold": 0.5}))
    with pytest.raises(ValueError, match=r"flat\.json: a metrics report is a JSON object"):
        report.results_table(path)
    path.write_text(json.dumps({"metrics": {"roc_auc": 0.91}}))   # a bare number
    with pytest.raises(ValueError, match="'roc_auc' must be an object"):
        report.results_table(path)


def test_val_column_falls_back_to_val_metrics_json(run_dir):
    (run_dir / "metrics" / "val.json").unlink()
    (run_dir / "models" / "tiny" / "val_metrics.json").write_text(json.dumps(
        {"metrics": {"roc_auc": {"value": 0.97, "ci_low": 0.9, "ci_high": 0.99}}}))
    table = report.results_table(run_dir)
    assert list(table.columns.get_level_values("split").unique()) == ["val", "test"]
    assert table.loc["roc_auc", ("val", "value")] == pytest.approx(0.97)


def test_report_does_not_choose_a_model_itself(run_dir):
    # Choosing is 04's job (selection.choose, models/chosen.json): without that record and
    # without metrics naming a model, the report names none rather than re-choosing by
    # another rule.
    for path in (run_dir / "metrics").glob("*.json"):
        path.unlink()
    for name, auc in [("a", 0.7), ("b", 0.9)]:
        folder = run_dir / "models" / name
        folder.mkdir()
        (folder / "val_metrics.json").write_text(json.dumps(
            {"metrics": {"roc_auc": {"value": auc, "ci_low": None, "ci_high": None}}}))
    summary = report.summarize_run(run_dir)
    assert summary.model is None and "04_model" in summary.model_reason
    (run_dir / "models" / "chosen.json").write_text(json.dumps({"model": "a", "rule": "r"}))
    assert report.summarize_run(run_dir).model == "a"


def test_invalid_metrics_json_names_the_file(run_dir):
    (run_dir / "metrics" / "test.json").write_text("{not json")
    with pytest.raises(ValueError, match="test.json"):
        report.results_table(run_dir)


def test_table_and_errors(run_dir, tmp_path, capsys):
    from pneumo_helpers import cli

    assert "| ROC AUC |" in report.results_markdown(run_dir)
    assert cli.main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "pdf")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- notebooks PDF

def load_renderer():
    from pneumo_helpers import notebooks_pdf

    return notebooks_pdf


@pytest.fixture
def executed_run(tmp_path) -> Path:
    """Two small 'executed' notebooks with outputs, as papermill leaves them."""
    import nbformat
    from nbformat.v4 import (new_code_cell, new_markdown_cell, new_notebook, new_output)

    buffer = io.BytesIO()
    png_fig = Figure(figsize=(2, 1.5))
    png_fig.add_subplot().plot([0, 1], [1, 0])
    png_fig.savefig(buffer, format="png", dpi=40)
    image = base64.b64encode(buffer.getvalue()).decode()
    folder = tmp_path / "runs" / "demo" / "notebooks"
    folder.mkdir(parents=True)
    for i, name in enumerate(["01_first", "02_second"], start=1):
        params = new_code_cell("SECRET_PARAMETER = 1")
        params.metadata["tags"] = ["parameters"]
        cells = [
            new_markdown_cell(f"# 0{i} · Notebook number {i}\n\nSome *text*."),
            params,
            new_code_cell("print('visible output')", outputs=[
                new_output("stream", name="stdout", text="visible output\n"),
                new_output("stream", name="stderr", text="tensorflow start-up noise\n")]),
            new_code_cell("plot()", outputs=[new_output(
                "display_data", data={"image/png": image, "text/plain": "<Figure>"})]),
            new_code_cell("silent = 1"),
        ]
        nbformat.write(new_notebook(cells=cells), folder / f"{name}.ipynb")
    return folder.parent


def test_notebooks_html_is_offline_and_hides_code(executed_run):
    renderer = load_renderer()
    notebooks = renderer.find_notebooks(executed_run)
    assert [p.name for p in notebooks] == ["01_first.ipynb", "02_second.ipynb"]
    page = renderer.build_html(notebooks, run_name="demo")
    assert "<script" not in page
    assert not re.search(r'(src|href)="https?:', page)          # nothing to fetch
    assert "visible output" in page and "data:image/png;base64," in page
    assert "SECRET_PARAMETER" not in page                       # parameters cell dropped
    assert "print(" not in page and "silent = 1" not in page    # code hidden
    assert "start-up noise" not in page                         # stderr dropped
    assert 'href="#nb-2">02 · Notebook number 2' in page        # contents entry


def test_find_notebooks_explains_an_empty_run(tmp_path):
    renderer = load_renderer()
    with pytest.raises(FileNotFoundError, match="pneumo run"):
        renderer.find_notebooks(tmp_path)


def test_notebooks_pdf_with_chromium(executed_run, tmp_path):
    renderer = load_renderer()
    try:
        renderer.find_chromium()
    except FileNotFoundError:
        pytest.skip("Chromium is not installed (apt-get install chromium); the PDF step "
                    "of pneumo_helpers.notebooks_pdf cannot run here")
    out = renderer.render(executed_run, tmp_path / "notebooks.pdf")
    assert out.read_bytes().startswith(b"%PDF")
    assert pdf_pages(out) >= 4          # cover, contents, one page per notebook at least


def test_the_deck_says_how_the_model_was_trained():
    from pneumo_helpers import deck

    plain = deck._architecture(dict(model="five_block", parameters=1000, image_size=112))
    assert "without labels" not in plain and "shown twice" not in plain
    full = deck._architecture(dict(model="five_block", parameters=1000, image_size=112,
                                   pretrain_epochs=30, consistency=0.1))
    assert "learned without labels, for 30 epochs" in full
    assert "each film is shown twice" in full
