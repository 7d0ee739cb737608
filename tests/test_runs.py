"""The run folder's layout and the chosen-model record (pneumo_helpers.runs)."""

import math

import pytest

from pneumo_helpers.runs import ChosenModel, Estimate, MetricsReport, ModelLayout, RunLayout


def test_reading_a_layout_creates_nothing(tmp_path):
    run = RunLayout(tmp_path / "run")
    paths = [run.manifest, run.clean_manifest, run.figure("05_roc_pr"),
             run.model("a").val_metrics, run.chosen, run.cache, run.kernel_log("01_obtain")]
    assert all(p.is_relative_to(tmp_path / "run") for p in paths)
    assert not (tmp_path / "run").exists()
    assert run.figure("05_roc_pr").name == "05_roc_pr.png"
    assert run.model("a") == ModelLayout(tmp_path / "run" / "models" / "a")


def test_split_metrics_folder_is_made_for_the_writer(tmp_path):
    target = RunLayout(tmp_path).split_metrics("test")
    assert target.parent.is_dir() and target.name == "test.json"


def test_chosen_model_round_trip_and_strict_reading(tmp_path):
    run = RunLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match="run 04_model first"):
        ChosenModel.read(run)
    ChosenModel(model="five_block-oversample", rule="best ROC AUC").write(run)
    assert ChosenModel.read(run) == ChosenModel("five_block-oversample", "best ROC AUC")
    run.chosen.write_text('{"model": "x"}')  # no rule: a record nothing here writes
    with pytest.raises(ValueError, match="'model' and 'rule'"):
        ChosenModel.read(run)


def test_metrics_report_is_one_typed_shape(tmp_path):
    import math

    from pneumo_helpers.runs import Estimate, MetricsReport

    record = MetricsReport(metrics={"roc_auc": Estimate(0.9, 0.85, 0.95),
                                    "brier": Estimate(0.1)},
                           threshold=0.4, rule="youden", n=10, split="test", model="m",
                           provenance={"model_sha256": "ab" * 32})
    run = RunLayout(tmp_path)
    record.write(run.split_metrics("test"))
    back = run.results()["test"]
    assert back.metrics["roc_auc"] == (0.9, 0.85, 0.95) and math.isnan(back["brier"].ci_low)
    assert (back.threshold, back.rule, back.n, back.model) == (0.4, "youden", 10, "m")
    assert back.provenance == {"model_sha256": "ab" * 32}
    for text, message in [('{"metrics": {}, "n": 2.5}', "whole number"),
                          ('{"metrics": {}, "rule": 3}', "rule must be a string"),
                          ('{"metrics": {}, "extra": {"a": 1}}', "unexpected keys"),
                          ('{"metrics": {"auc": {"value": 1}}}', "exactly")]:
        with pytest.raises(ValueError, match=message):
            MetricsReport.from_json(text)


def test_a_metrics_report_is_one_table_in_its_own_order():
    report = MetricsReport(metrics={"roc_auc": Estimate(0.99, 0.98, 1.0),
                                    "brier": Estimate(0.03, math.nan, math.nan)})
    table = report.table()
    assert list(table.index) == ["roc_auc", "brier"] and table.index.name == "metric"
    assert list(table.columns) == ["value", "ci_low", "ci_high"]
    assert table.loc["roc_auc", "ci_low"] == 0.98 and math.isnan(table.loc["brier", "ci_high"])
    assert MetricsReport(metrics={}).table().empty
