"""Tests for pneumo_helpers.report (results table, README block, ``pneumo report``), on run
folders made in tmp_path."""

import json
from pathlib import Path

import pytest

from pneumo_helpers import report
from pneumo_helpers.metrics_report import METRIC_LABELS
from run_folders import demo_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return demo_run(tmp_path)



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
    assert len(lines) == 2 + len(METRIC_LABELS)


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




def test_count_words_lists_values_most_frequent_first():
    assert report.count_words(["RGB"] * 1200 + ["L"] * 3) == "RGB 1,200; L 3"
    assert report.count_words([]) == ""
