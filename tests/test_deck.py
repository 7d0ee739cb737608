"""Tests for pneumo_helpers.deck: the numbers and sentences of each slide, read from the run
folder and the evaluations, and the printed PDF."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pneumo_helpers import deck, files, report
from pneumo_helpers.runs import RunLayout
from pneumo_helpers.recipe import Recipe
from run_folders import demo_run, metric_block


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
    recipe = {"model": "five_block", "recipe": Recipe().to_dict()}
    (shipped / "config.json").write_text(json.dumps({**recipe, "n_train": 4448}))
    sha = files.sha256(shipped / "model.keras")[:8]
    # Another seed is the same recipe; the settings dict older folders stored is not compared.
    again = {"model": "five_block", "augment": {"zoom": 0.3}, "n_train": 3700,
             "recipe": Recipe(seed=7).to_dict()}
    same = studied_model("five_block-oversample-final", again, shipped)
    assert "(five-block CNN, oversampling, retrained in full), trained on 3,700 films" in same
    assert f"The shipped model {sha} is the same recipe, trained on 4,448 films" in same
    changed = Recipe(balance="none", consistency=0.0).to_dict()
    other = studied_model("five_block-none-final", {"recipe": changed, "n_train": 3700}, shipped)
    assert "another recipe (it differs in class balance, two-view consistency term)" in other
    assert studied_model(None, recipe, shipped) is None
    assert "no shipped model" in studied_model("m", recipe, tmp_path / "nothing")


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return demo_run(tmp_path)


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


def test_deck_names_models_in_words_and_marks_the_chosen_one(run_dir):
    for name in ("tiny", "five_block-oversample", "five_block-undersample"):
        folder = run_dir / "models" / name
        folder.mkdir(exist_ok=True)
        (folder / "val_metrics.json").write_text(json.dumps(
            {"metrics": {"roc_auc": {"value": 0.99, "ci_low": 0.98, "ci_high": 1.0}}}))
    html = deck.deck_html(run_dir)
    assert "five-block CNN, oversampling" in html and "five-block CNN, undersampling" in html
    assert "five_block-" not in html
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
    assert "awaits its receipt on the official split's locked half" in html
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


def stress_rows(**specificity):
    return [dict(shift=shift, roc_auc=0.99, specificity=spec)
            for shift, spec in specificity.items()]


def test_the_crop_finding_reports_20_percent_and_says_when_framing_matters(tmp_path):
    run = demo_run(tmp_path)
    for name, spec20 in (("leans", 0.72), ("holds", 0.97)):
        pd.DataFrame(stress_rows(**{"none": 0.99, "crop 15% per side": 0.95,
                                    "crop 20% per side": spec20})).to_csv(
            RunLayout(run).val_shifts, index=False)
        findings = " ".join(deck.deck_context(run)["findings"])
        assert "20 % per side brings specificity to " + f"{spec20:.3f}" in findings
        assert ("leans partly on the field of view" in findings) == (name == "leans")
        assert ("does not lean on the field of view up to 20 %" in findings) == (name == "holds")


def test_site_curve_line_follows_the_shipped_model_file(tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "model.keras").write_bytes(b"weights")
    row = dict(films_per_class=50, draws=200, site_sensitivity=[0.94, 0.03],
               site_specificity=[0.91, 0.05], validation_sensitivity=[0.97, 0.01],
               validation_specificity=[0.84, 0.03])
    curve = tmp_path / "site_threshold.json"
    curve.write_text(json.dumps(dict(model_sha256=files.sha256(shipped / "model.keras"),
                                     rows=[row])))
    line = deck.site_curve_line(shipped, curve=curve)
    assert "Chosen on 50 films per class and scored on the rest" in line
    assert "sensitivity 0.94 and specificity 0.91 (mean of 200 draws)" in line
    assert "against 0.97 and 0.84 at the validation threshold" in line
    (shipped / "model.keras").write_bytes(b"other weights")
    assert deck.site_curve_line(shipped, curve=curve) is None
