"""The shipped model's card sections (pneumo_helpers.ship)."""

import pandas as pd

from pneumo_helpers import ship


def test_the_recipe_table_gives_mean_and_spread_and_leaves_unmeasured_cells_empty(tmp_path):
    rows = [dict(recipe="framing", seed=s, val_auc=a, val_spec=0.98, crop15_spec=c)
            for s, a, c in ((42, 0.994, 0.94), (7, 0.996, 0.95), (1, 0.995, 0.96))]
    rows += [dict(recipe="framing-acq-consistency", seed=s, val_auc=0.995, val_spec=0.98,
                  crop15_spec=0.95, clahe_spec=0.9 + s / 1000) for s in (42, 7, 1)]
    summary = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(summary, index=False)
    text = ship._sweep_section(summary)
    assert "seeds 1, 7, 42" in text
    assert "| recipe | ROC AUC | unshifted | 15 % crop | CLAHE |" in text
    framing = next(line for line in text.splitlines() if line.startswith("| framing |"))
    assert "0.995 ± 0.001" in framing and "0.950 ± 0.010" in framing
    assert framing.endswith("|  |")  # no CLAHE figure for this recipe: an empty cell
    assert "0.917 ± 0.022" in text  # CLAHE of the other recipe


def test_write_card_leaves_a_folder_that_holds_its_manifest(tmp_path, monkeypatch):
    # Into a folder pneumo treats as the shipped model, which must have a manifest, over a
    # previous model's files: each step loads the folder, and the result is checked whole.
    import json

    from pneumo_helpers import inference, models, train
    from pneumo_helpers.runs import MetricsReport, ModelLayout, RunLayout

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
    pd.DataFrame(dict(path=["a", "b", "c", "d"], split=["train", "train", "val", "val"],
                      label=["NORMAL", "PNEUMONIA"] * 2)).to_csv(work.clean_manifest,
                                                                  index=False)
    out = ModelLayout(tmp_path / "shipped")
    out.root.mkdir()
    (out.root / "stale.txt").write_text("a previous model's file, listed")
    out.write_manifest()
    (out.root / "stale.txt").unlink()  # the previous manifest no longer holds
    monkeypatch.setattr(inference, "SHIPPED_MODEL_DIR", out.root)
    monkeypatch.setattr(ship, "_stress_section", lambda *a: "stress")

    def card(folder, **kwargs):
        (folder / "MODEL_CARD.md").write_text("card\n")
        return folder / "MODEL_CARD.md"
    monkeypatch.setattr(train, "save_model_card", card)
    ship.write_card(work.root, out.root)
    listed = out.check_manifest()
    assert {"model.keras", "model.tflite", "export.json", "MODEL_CARD.md"} <= set(listed)
    assert inference.load_model(out.root).runtime == "litert"
