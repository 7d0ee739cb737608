"""Tests for pneumo_helpers.deck beyond tests/test_report.py's: the model's description, the
official-split receipt it shows, and the printed PDF."""

import json
import re

import pytest

from pneumo_helpers import deck, files


def run_with_model(tmp_path, config):
    """A run folder whose one model folder has ``config`` as its config.json."""
    folder = tmp_path / "run" / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder.parents[1]


def architecture(tmp_path, **config):
    return deck.deck_context(run_with_model(tmp_path, config))["architecture"]


def test_the_deck_says_how_the_five_block_cnn_was_trained(tmp_path):
    plain = architecture(tmp_path / "a", model="five_block", parameters=64321, image_size=112)
    assert "64,321 parameters" in plain and "112 px" in plain
    assert "without labels" not in plain and "shown twice" not in plain
    full = architecture(tmp_path / "b", model="five_block", parameters=64321, image_size=112,
                        pretrain_epochs=30, consistency=0.1)
    assert full.startswith(plain)
    assert "without labels, for 30 epochs" in full and "shown twice" in full


def test_the_deck_names_a_baseline_and_a_backbone_for_what_they_are(tmp_path):
    assert "Baseline CNN" in architecture(tmp_path / "a", model="baseline", parameters=10)
    backbone = architecture(tmp_path / "b", model="DenseNet121", parameters=7_038_785,
                            image_size=224, stages=[{"epochs": 1}, {"epochs": 2}])
    assert "DenseNet121" in backbone and "ImageNet weights" in backbone
    assert "7,038,785 parameters" in backbone and "224 px" in backbone


def receipt(folder, name, sha, *, date, roc_auc, external=False):
    block = {"threshold": 0.5, "rule": "sens>=0.95", "n": 309, "split": "test",
             "metrics": {"roc_auc": {"value": roc_auc, "ci_low": roc_auc - 0.02,
                                     "ci_high": roc_auc + 0.01}}}
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps({**block, "model_sha256": sha, "date": date,
                                           **({"external_half": {**block, "n": 315}}
                                              if external else {})}))


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"weights")
    return folder


def test_without_receipts_the_model_awaits_one(model_dir, tmp_path):
    digest = files.sha256(model_dir / "model.keras")
    for evaluations in (None, tmp_path / "none"):
        official = deck.official_evaluation(evaluations, model_dir)
        assert official["status"] == "awaiting" and official["sha"] == digest[:8]
        assert official["earlier"] == [] and official["earlier_auc"] == "n/a"


def test_the_receipt_naming_the_model_is_shown_and_the_others_are_earlier(model_dir, tmp_path):
    evaluations = tmp_path / "evaluations"
    receipt(evaluations, "b.json", "cd" * 32, date="2026-02-01", roc_auc=0.91)
    receipt(evaluations, "a.json", "ab" * 32, date="2026-01-01", roc_auc=0.95)
    (evaluations / "notes.json").write_text("[]")  # other JSON in the folder is not a receipt
    official = deck.official_evaluation(evaluations, model_dir)
    assert official["status"] == "awaiting"
    assert [e["sha"] for e in official["earlier"]] == ["abababab", "cdcdcdcd"]  # by date
    assert official["earlier_auc"] == "0.910–0.950"

    receipt(evaluations, "mine.json", files.sha256(model_dir / "model.keras"),
            date="2026-03-01", roc_auc=0.97, external=True)
    official = deck.official_evaluation(evaluations, model_dir)
    assert official["status"] == "matches" and official["file"] == "mine.json"
    assert len(official["earlier"]) == 2
    assert [(h["n"], h["cells"]["roc_auc"]) for h in official["halves"]] == [
        (309, "0.970 (0.950–0.980)"), (315, "0.970 (0.950–0.980)")]


def test_the_deck_prints_to_a_pdf(tmp_path):
    from pneumo_helpers import notebooks_pdf

    try:
        notebooks_pdf.find_chromium()
    except FileNotFoundError:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    run = run_with_model(tmp_path, dict(model="five_block", parameters=100, image_size=64))
    out = deck.build_deck(run, tmp_path / "deck.pdf")
    assert out.read_bytes().startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", out.read_bytes())) >= 10


def test_the_model_slides_say_which_model_they_study_and_how_it_relates_to_the_shipped_one(
        tmp_path):
    from pneumo_helpers.deck import studied_model

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "model.keras").write_bytes(b"weights")
    recipe = dict(model="five_block", balance="oversample", image_size=112, epochs=15,
                  augment={"zoom": 0.45}, consistency=0.1, pretrain_epochs=30)
    (shipped / "config.json").write_text(json.dumps({**recipe, "n_train": 4448}))
    sha = files.sha256(shipped / "model.keras")[:8]
    same = studied_model("five_block-oversample-final", {**recipe, "n_train": 3700}, shipped)
    assert "five_block-oversample-final, trained on 3,700 films" in same
    assert f"The shipped model {sha} is the same recipe, trained on 4,448 films" in same
    other = studied_model("five_block-none-final",
                          {**recipe, "balance": "none", "consistency": 0.0, "n_train": 3700},
                          shipped)
    assert "another recipe (it differs in class balance, consistency term)" in other
    assert studied_model(None, recipe, shipped) is None
    assert "no shipped model" in studied_model("m", recipe, tmp_path / "nothing")
