"""The run folder's layout and the chosen-model record (pneumo_helpers.runs)."""

import pytest

from pneumo_helpers.metrics_report import Estimate, MetricsReport
from pneumo_helpers.runs import ChosenModel, ModelLayout, RunLayout


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


def test_results_reads_every_split_metrics_file(tmp_path):
    run = RunLayout(tmp_path)
    assert run.results() == {}
    for split in ("val", "test"):
        MetricsReport(metrics={"roc_auc": Estimate(0.9)}, split=split).write(
            run.split_metrics(split))
    assert {split: r.split for split, r in run.results().items()} == {"test": "test",
                                                                      "val": "val"}
