"""The scorecard: every figure of the table comes from the record it names."""

import json
import math
import shutil

import pytest

from pneumo_helpers import files, inference, scorecard
from pneumo_helpers.report import format_ci
from pneumo_helpers.metrics_report import Estimate, MetricsReport
from pneumo_helpers.runs import ChosenModel, ModelLayout, RunLayout
from pneumo_helpers.runs import SiteThreshold


def report(split, n, threshold, auc, sens, spec):
    return MetricsReport(metrics={"roc_auc": Estimate(*auc), "recall": Estimate(*sens),
                                  "specificity": Estimate(*spec)},
                         threshold=threshold, n=n, split=split, model="m")


@pytest.fixture
def shipped(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    for name in ("model.keras", "config.json"):
        shutil.copy(inference.SHIPPED_MODEL_DIR / name, folder / name)
    layout = ModelLayout(folder)
    report("val", 742, 0.574, (0.997, 0.994, 0.999), (0.951, 0.93, 0.97),
           (0.99, 0.98, 1.0)).write(layout.val_metrics)
    report("external", 315, 0.574, (0.978, 0.96, 0.99), (0.97, 0.95, 0.99),
           (0.8, 0.72, 0.87)).write(layout.external_metrics)
    sha = files.sha256(layout.model)
    SiteThreshold(threshold=0.713, rule="sens>=0.95", model_sha256=sha, sample_sha256="s",
                  n_films=315, n_normal=118, n_pneumonia=197, sensitivity=[0.954, 0.92, 0.98],
                  specificity=[0.898, 0.84, 0.94], roc_auc=[0.978, 0.96, 0.99]).write(folder)
    receipts = tmp_path / "evaluations"
    receipts.mkdir()
    block = {"roc_auc": {"value": 0.96, "ci_low": 0.93, "ci_high": 0.98},
             "recall": {"value": 0.93, "ci_low": 0.9, "ci_high": 0.96},
             "specificity": {"value": 0.83, "ci_low": 0.76, "ci_high": 0.89}}
    (receipts / "official-test-x.json").write_text(json.dumps(dict(
        model_sha256=sha, threshold=0.713, n=309, date="2026-12-08", metrics=block,
        external_half={"n": 315, "metrics": block})))
    (receipts / "official-test-old.json").write_text(json.dumps(dict(
        model_sha256="0" * 64, threshold=0.5, n=309, metrics=block)))
    (receipts / "README.json").write_text("[]")  # not a receipt: ignored
    return folder, receipts


def parse(table: str) -> list[dict]:
    head, _, *rows = table.splitlines()
    keys = [k.strip() for k in head.strip("|").split("|")]
    return [dict(zip(keys, (c.strip() for c in row.strip("|").split("|")))) for row in rows]


def test_every_shipped_figure_is_its_records(shipped):
    folder, receipts = shipped
    lines = scorecard.shipped_lines(folder, evaluations=receipts)
    assert [(l.split, l.source) for l in lines] == [
        ("val", "val_metrics.json"), ("external", "external_metrics.json"),
        ("external", "site_threshold.json"), ("locked", "official-test-x.json")]
    rows = parse(scorecard.markdown(lines))
    layout = ModelLayout(folder)
    site = SiteThreshold.read(folder)
    records = [MetricsReport.read(layout.val_metrics), MetricsReport.read(layout.external_metrics)]
    for row, record in zip(rows, records):
        assert row["ROC AUC"] == format_ci(*record["roc_auc"])
        assert row["sensitivity"] == format_ci(*record["recall"])
        assert row["specificity"] == format_ci(*record["specificity"])
        assert row["threshold (chosen on)"] == f"{record.threshold:.3f} (validation)"
    assert rows[2]["specificity"] == "0.898 (0.840–0.940)"
    assert rows[2]["threshold (chosen on)"] == f"{site.threshold:.3f} (these films, in-sample)"
    assert rows[3]["films"] == "locked half B, 309"
    assert rows[3]["ROC AUC"] == "0.960 (0.930–0.980)"
    assert rows[3]["threshold (chosen on)"] == "0.713 (external half A (site))"
    assert rows[0]["model"].startswith("shipped ") and rows[1]["model"] == ""


def test_a_receipt_for_another_model_is_not_shown(shipped, tmp_path):
    folder, receipts = shipped
    (receipts / "official-test-x.json").unlink()
    lines = scorecard.shipped_lines(folder, evaluations=receipts)
    assert "locked" not in {l.split for l in lines}


def test_run_lines_say_what_each_split_chose(tmp_path):
    layout = RunLayout(tmp_path)
    for split, n in (("val", 742), ("test", 745), ("external", 315)):
        report(split, n, 0.5, (0.99, 0.98, 1.0), (0.95, 0.9, 1.0),
               (0.9, 0.8, 1.0)).write(layout.split_metrics(split))
    layout.models.mkdir()
    ChosenModel(model="m", rule="best validation ROC AUC").write(layout)
    lines = scorecard.run_lines(tmp_path)
    assert [(l.split, l.films, l.chose) for l in lines] == [
        ("val", 742, "epochs, model, threshold"), ("test", 745, "nothing"),
        ("external", 315, "recipe, earlier; nothing in this run")]
    assert all(l.model == "run: m" and math.isclose(l.threshold, 0.5) for l in lines)
