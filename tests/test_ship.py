"""Tests for pneumo_helpers.ship: the shipped model's folder and card (write_card), on a small
finished run made in tmp_path."""

import json

import pandas as pd
import pytest

from pneumo_helpers import inference, ship
from pneumo_helpers.config import SAMPLE_DIR
from pneumo_helpers.metrics_report import MetricsReport
from pneumo_helpers.runs import ModelLayout, RunLayout, SiteThreshold


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty checkout as the working directory: no sweep of a developer's runs/ counts."""
    folder = tmp_path / "project"
    (folder / "pneumo_helpers").mkdir(parents=True)
    (folder / "pyproject.toml").write_text("")
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def finished_run(tmp_path, monkeypatch, project):
    """(run folder, model folder to ship into): a 32 px baseline CNN as `pneumo train` leaves
    it, validated on the sample's validation films. The model folder is the one pneumo treats
    as the shipped model, which must have a manifest, and holds a previous model's files."""
    from pneumo_helpers import models, obtain

    work = RunLayout(tmp_path / "run")
    trained = work.shipped
    trained.root.mkdir(parents=True)
    models.build_baseline_cnn(image_size=32, channels=1).save(trained.model)
    trained.config.write_text(json.dumps({"image_size": 32, "manifest_hash": "0" * 16,
                                          "mean_seconds_per_epoch": 1.0}))
    trained.history_csv.write_text("epoch,loss\n0,0.7\n")
    MetricsReport(metrics={}, threshold=0.5, rule="youden").write(trained.val_metrics)
    work.training_record.write_text(json.dumps(dict(minutes=1.0, files=4, bad=0, dropped=0,
                                                    split_seed=42)))
    rows = obtain.build_manifest(SAMPLE_DIR)
    rows[rows["split"].isin(["train", "val"])].to_csv(work.clean_manifest, index=False)
    out = ModelLayout(tmp_path / "shipped")
    out.root.mkdir()
    (out.root / "stale.txt").write_text("a previous model's file, listed")
    out.write_manifest()
    (out.root / "stale.txt").unlink()  # the previous manifest no longer holds
    monkeypatch.setattr(inference, "SHIPPED_MODEL_DIR", out.root)
    return work.root, out.root


def test_write_card_leaves_a_folder_that_holds_its_manifest(finished_run):
    work, out = finished_run
    card = ship.write_card(work, out)
    listed = ModelLayout(out).check_manifest()
    assert {"model.keras", "model.tflite", "export.json", "MODEL_CARD.md"} <= set(listed)
    assert inference.load_model(out).runtime == "litert"
    text = card.read_text()
    assert "| shift | ROC AUC | sensitivity | specificity | Brier |" in text
    assert "Recipe choice across seeds" not in text  # no sweep in this project


def test_the_card_gives_each_recipes_mean_and_spread_over_seeds(finished_run, project):
    rows = [dict(recipe="framing", seed=s, val_auc=a, val_spec=0.98, crop15_spec=c)
            for s, a, c in ((42, 0.994, 0.94), (7, 0.996, 0.95), (1, 0.995, 0.96))]
    rows += [dict(recipe="framing-acq-consistency", seed=s, val_auc=0.995, val_spec=0.98,
                  crop15_spec=0.95, clahe_spec=0.9 + s / 1000) for s in (42, 7, 1)]
    (project / ship.SWEEP_SUMMARY).parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(project / ship.SWEEP_SUMMARY, index=False)
    text = ship.write_card(*finished_run).read_text()
    assert "seeds 1, 7, 42" in text
    assert "| recipe | ROC AUC | unshifted | 15 % crop | CLAHE |" in text
    framing = next(line for line in text.splitlines() if line.startswith("| framing |"))
    assert "0.995 ± 0.001" in framing and "0.950 ± 0.010" in framing
    assert framing.endswith("|  |")  # no CLAHE figure for this recipe: an empty cell
    assert "0.917 ± 0.022" in text  # CLAHE of the other recipe


def test_the_card_scores_external_films_and_writes_their_site_threshold(finished_run):
    work, out = finished_run
    text = ship.write_card(work, out, external_dir=SAMPLE_DIR / "train").read_text()
    loaded = inference.load_model(out, runtime="keras")
    site = SiteThreshold.read(out)
    assert site.model_sha256 == loaded.sha256 and site.n_films == 400
    assert f"| {site.threshold:.3f} (these films, in-sample) |" in text
    assert MetricsReport.read(ModelLayout(out).external_metrics).n == 400
    assert loaded.threshold_source == "site"
