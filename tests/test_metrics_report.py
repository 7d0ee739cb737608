"""Tests of pneumo_helpers.metrics_report: the one metrics record, its JSON and its table."""

import math

import pytest

from pneumo_helpers.metrics_report import Estimate, MetricsReport


def test_metrics_report_is_one_typed_shape(tmp_path):
    record = MetricsReport(metrics={"roc_auc": Estimate(0.9, 0.85, 0.95),
                                    "brier": Estimate(0.1)},
                           threshold=0.4, rule="youden", n=10, split="test", model="m",
                           provenance={"model_sha256": "ab" * 32})
    back = MetricsReport.read(record.write(tmp_path / "metrics" / "test.json"))
    assert back.metrics["roc_auc"] == (0.9, 0.85, 0.95) and math.isnan(back["brier"].ci_low)
    assert (back.threshold, back.rule, back.n, back.model) == (0.4, "youden", 10, "m")
    assert back.provenance == {"model_sha256": "ab" * 32}
    for text, message in [('{"metrics": {}, "n": 2.5}', "whole number"),
                          ('{"metrics": {}, "rule": 3}', "rule must be a string"),
                          ('{"metrics": {}, "extra": {"a": 1}}', "unexpected keys"),
                          ('{"metrics": {"auc": {"value": 1}}}', "exactly"),
                          ("not json", "not valid JSON")]:
        with pytest.raises(ValueError, match=message):
            MetricsReport.from_json(text)
    with pytest.raises(FileNotFoundError, match="pneumo evaluate"):
        MetricsReport.read(tmp_path / "missing.json")


def test_a_metrics_report_is_one_table_in_its_own_order():
    report = MetricsReport(metrics={"roc_auc": Estimate(0.99, 0.98, 1.0),
                                    "brier": Estimate(0.03, math.nan, math.nan)})
    table = report.table()
    assert list(table.index) == ["roc_auc", "brier"] and table.index.name == "metric"
    assert list(table.columns) == ["value", "ci_low", "ci_high"]
    assert table.loc["roc_auc", "ci_low"] == 0.98 and math.isnan(table.loc["brier", "ci_high"])
    assert MetricsReport(metrics={}).table().empty
