"""Tests for pneumo_helpers.selection: 04's candidates, comparison and choice, and the model
05 interprets."""

import numpy as np
import pandas as pd
import pytest

from pneumo_helpers import selection
from pneumo_helpers.config import SAMPLE_DIR, RunConfig
from pneumo_helpers.runs import ChosenModel


def _table(rows):
    """rows: {model: {metric: (value, low, high)}} -> the tidy comparison table."""
    return pd.DataFrame([dict(model=m, metric=k, value=v[0], ci_low=v[1], ci_high=v[2])
                         for m, metrics in rows.items() for k, v in metrics.items()])


TABLE = _table({
    "baseline-class_weight": {"roc_auc": (0.90, 0.85, 0.94), "brier": (0.10, 0.08, 0.12)},
    "five_block-none": {"roc_auc": (0.970, 0.95, 0.99), "brier": (0.05, 0.04, 0.06)},
    "five_block-oversample": {"roc_auc": (0.972, 0.95, 0.99), "brier": (0.03, 0.02, 0.04)},
    "five_block-undersample": {"roc_auc": (0.30, 0.20, 0.40), "brier": (0.25, 0.22, 0.28)},
})


# --- The choice and its sentences, on a given table -----------------------------------------

def test_pick_best_breaks_near_ties_by_brier_not_auc():
    assert selection.pick_best(TABLE) == "five_block-oversample"
    # five_block-none now calibrates better: within the tie it wins, without the tie rule
    # the (slightly) higher AUC still does.
    flipped = TABLE.copy()
    flipped.loc[(flipped.model == "five_block-none") & (flipped.metric == "brier"), "value"] = 0.01
    assert selection.pick_best(flipped) == "five_block-none"
    assert selection.pick_best(flipped, tie=0.0) == "five_block-oversample"


def test_findings_name_overlaps_baseline_spread_and_failures():
    lines = selection.findings(TABLE, "five_block-oversample")
    text = "\n".join(lines)
    assert lines[0].startswith("Best in the comparison: **five-block CNN, oversampling**")
    assert "0.972 (95% CI 0.950–0.990)" in lines[0]
    overlap = next(line for line in lines if "overlaps" in line)
    assert "five-block CNN, no rebalancing" in overlap and "baseline" not in overlap
    assert "The baseline (baseline CNN, class weights) reached ROC AUC 0.900" in text
    assert ("span ROC AUC 0.300 (five-block CNN, undersampling) to 0.972 (five-block CNN, "
            "oversampling)") in text
    assert "five-block CNN, undersampling ranks validation images worse than chance" in text
    assert "five_block" not in text


def test_findings_say_when_the_lead_is_clear():
    clear = TABLE[TABLE.model != "five_block-none"]
    lines = selection.findings(clear, "five_block-oversample")
    assert any("No other candidate's ROC AUC interval overlaps" in line for line in lines)


def test_findings_reject_an_unknown_model():
    with pytest.raises(ValueError, match="no 'roc_auc' for model 'nope'"):
        selection.findings(TABLE, "nope")


def test_learning_checks_judge_each_architecture_by_its_best_candidate():
    lines = selection.learning_checks(TABLE, floor=0.95)
    assert len(lines) == 2  # baseline, five_block
    baseline, five_block = lines
    assert baseline.startswith("baseline:") and "NO" in baseline
    # The undersampled five-block CNN failed, but its best sibling clears the floor.
    assert five_block.startswith("five_block:") and "yes" in five_block
    assert all("yes" in line for line in selection.learning_checks(TABLE, floor=0.5))


# --- Candidates from the run's settings ---------------------------------------------------

def test_candidate_pairs_read_both_forms_and_name_a_bad_entry(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), balance="oversample",
                    candidates=("baseline-class_weight", "DenseNet121"))
    assert selection.candidate_pairs(cfg) == [("baseline", "class_weight"),
                                              ("DenseNet121", "oversample")]
    for bad in ("five_block-sideways", "six_block"):
        with pytest.raises(ValueError, match=bad):
            selection.candidate_pairs(RunConfig(run_dir=str(tmp_path), candidates=(bad,)))


def test_a_candidate_is_the_runs_recipe_with_its_own_model_balance_and_epochs(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), image_size=48, seed=3, epochs=9)
    recipe = selection.candidate_recipe(cfg, model="baseline", strategy="none", epochs=2)
    assert (recipe.architecture, recipe.balance, recipe.epochs) == ("baseline", "none", 2)
    assert recipe.replace(architecture="five_block", balance=cfg.balance, epochs=9,
                          pretrain_epochs=cfg.pretrain_epochs) == cfg.recipe
    assert selection.candidate_recipe(cfg) == cfg.recipe


def test_a_run_pretrains_every_five_block_training_and_leaves_the_baseline_plain(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PNEUMO_PRETRAIN_EPOCHS", "5")
    cfg = RunConfig.from_params(run_dir=str(tmp_path))
    assert cfg.pretrain_epochs == 5 and RunConfig(run_dir=str(tmp_path)).pretrain_epochs == 0
    assert selection.candidate_recipe(cfg).pretrain_epochs == 5
    assert selection.candidate_recipe(cfg, model="baseline").pretrain_epochs == 0


# --- A comparison trained on a few sample films ---------------------------------------------

@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """(cfg, train rows, val rows, Comparison) of two one-epoch candidates at 32 px, and an
    ImageNet backbone skipped for want of weights."""
    from pneumo_helpers import obtain

    run = tmp_path_factory.mktemp("run")
    cfg = RunConfig(run_dir=str(run), image_size=32, batch_size=8, epochs=1, compare_epochs=1,
                    augment="mild", candidates=("baseline-class_weight", "five_block-none",
                                                "DenseNet121"))
    rows = obtain.build_manifest(SAMPLE_DIR)
    train = rows[rows["split"] == "train"].groupby("label").head(16).reset_index(drop=True)
    val = rows[rows["split"] == "val"].reset_index(drop=True)
    lines = []
    results = selection.compare_candidates(train, val, cfg, n_boot=10, report=lines.append)
    return cfg, train, val, results, lines


def test_every_candidate_trains_or_says_why_it_was_skipped(compared):
    cfg, _, _, results, lines = compared
    assert [r.name for r in results] == ["baseline-class_weight", "five_block-none"]
    assert list(results.skipped) == ["DenseNet121-class_weight"]
    assert len(lines) == 3 and "skipped" in lines[2] and "val ROC AUC" in lines[0]
    for result in results:
        assert cfg.layout.model(result.name).val_metrics.is_file()


def test_the_comparison_table_has_every_candidate_in_order(compared):
    _, _, _, results, _ = compared
    table = selection.comparison_table(results)
    assert list(table.index) == ["baseline-class_weight", "five_block-none",
                                 "DenseNet121-class_weight"]
    assert list(table["status"][:2]) == ["trained", "trained"]
    assert table["status"].iloc[2].startswith("skipped: ")
    assert table.loc["DenseNet121-class_weight", "roc_auc"] != \
        table.loc["DenseNet121-class_weight", "roc_auc"]  # NaN: nothing measured
    assert 0 <= table.loc["five_block-none", "roc_auc"] <= 1


def test_the_table_read_back_from_the_run_folder_is_the_one_compared(compared):
    cfg, _, _, results, _ = compared
    compared_table = selection.compare(results).set_index(["model", "metric"]).sort_index()
    read = selection.read_candidates(cfg.layout.models).set_index(["model", "metric"])
    read = read.sort_index()
    assert list(read.index) == list(compared_table.index)
    np.testing.assert_allclose(read["value"], compared_table["value"], atol=1e-6)


def test_the_choice_is_recorded_and_is_what_05_interprets(compared):
    cfg, train, val, results, _ = compared
    chosen = selection.choose(results, train, val, cfg, n_boot=10)
    assert chosen.name == selection.pick_best(selection.compare(results))  # no retraining
    record = ChosenModel.read(cfg.layout)
    assert record == ChosenModel(model=chosen.name, rule=selection.CHOICE_RULE)
    loaded = selection.interpreted_model(cfg)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32)).astype(np.uint8)
    assert loaded.predict(images).shape == (2,)
    assert loaded.model.count_params() == chosen.config["parameters"]
