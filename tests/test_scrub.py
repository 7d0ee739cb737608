"""Tests of pneumo_helpers.scrub: bad files, duplicates, leaks, patient splits, and step 02 on
the bundled sample."""

import numpy as np
import pandas as pd
from PIL import Image

from pneumo_helpers import obtain, scrub
from pneumo_helpers.config import PROFILES, SAMPLE_DIR, RunConfig
from synthetic_dataset import gray, make_dataset


def test_missing_test_split_is_cut_by_patient(tmp_path):
    make_dataset(tmp_path, splits=("train",), per_class=20)
    result = scrub.scrub(obtain.build_manifest(tmp_path), val_fraction=0.2, test_fraction=0.2)
    assert set(result.clean["split"]) == {"train", "val", "test"}
    assert scrub.patients_in_several_splits(result.clean).empty


def test_a_carved_test_split_never_holds_the_patients_that_chose():
    """pneumo train and the sweep (test_fraction 0) validate on the same patients as a run
    that carves a test split, so that test split is untouched by their choices."""
    manifest = obtain.build_manifest(SAMPLE_DIR)
    manifest = manifest[manifest["split"] == "train"].reset_index(drop=True)  # no test/
    fractions = PROFILES["full"]["val_fraction"], PROFILES["full"]["test_fraction"]
    run = scrub.scrub(manifest, val_fraction=fractions[0], test_fraction=fractions[1]).clean
    chooser = scrub.scrub(manifest, val_fraction=fractions[0], test_fraction=0.0).clean

    def patients(table, split):
        return set(table.loc[table["split"] == split, "patient"])
    assert patients(run, "val") == patients(chooser, "val")
    assert patients(run, "test") and not patients(run, "test") & patients(chooser, "val")
    assert not patients(run, "test") & patients(run, "val")


def test_bad_files_are_reported_and_left_on_disk(tmp_path):
    make_dataset(tmp_path)
    folder = tmp_path / "train" / "PNEUMONIA"
    good = folder / "person0_bacteria_0.jpeg"
    truncated = folder / "person50_bacteria_1.jpeg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (folder / "person51_virus_2.jpeg").write_text("this is not an image")
    (folder / "person52_virus_3.jpeg").write_bytes(b"")
    rgba = np.dstack([gray(1), gray(2), gray(3), np.full((40, 40), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / "person53_virus_4.png")
    Image.fromarray(gray(4).astype(np.uint16) * 16).save(folder / "person54_virus_5.png")

    manifest = obtain.build_manifest(tmp_path)
    good_rows, bad = scrub.validate_images(manifest)
    reasons = dict(zip(bad["path"].map(lambda p: p.rsplit("/", 1)[-1]), bad["reason"]))
    assert set(reasons) == {"person50_bacteria_1.jpeg", "person51_virus_2.jpeg",
                            "person52_virus_3.jpeg"}
    assert "truncated" in reasons["person50_bacteria_1.jpeg"]
    assert "not an image" in reasons["person51_virus_2.jpeg"]
    assert "empty" in reasons["person52_virus_3.jpeg"]
    # RGBA and 16-bit PNGs are valid inputs, recorded with their mode.
    modes = dict(zip(manifest["path"].map(lambda p: p.rsplit("/", 1)[-1]), manifest["mode"]))
    assert modes["person53_virus_4.png"] == "RGBA" and modes["person54_virus_5.png"].startswith("I")
    assert len(good_rows) == len(manifest) - 3
    assert truncated.exists() and (folder / "person52_virus_3.jpeg").exists()

    result = scrub.scrub(manifest)
    assert not result.clean["path"].isin(bad["path"]).any()


def test_duplicates_within_and_across_splits(tmp_path):
    make_dataset(tmp_path)
    src = tmp_path / "train" / "NORMAL" / "IM-0000-0000.jpeg"
    (tmp_path / "train" / "NORMAL" / "IM-0900-0001.jpeg").write_bytes(src.read_bytes())
    (tmp_path / "test" / "NORMAL" / "IM-0901-0001.jpeg").write_bytes(src.read_bytes())
    manifest = obtain.build_manifest(tmp_path)
    dup = scrub.find_duplicates(manifest)
    assert len(dup) == 3 and set(dup["kind"]) == {"across splits"}
    result = scrub.scrub(manifest)
    # Only the test copy survives, so no test image is also trained on.
    survivors = result.clean[result.clean["sha256"] == dup["sha256"].iloc[0]]
    assert list(survivors["split"]) == ["test"]


def test_patient_in_train_and_test_is_dropped_from_training(tmp_path):
    make_dataset(tmp_path)
    src = tmp_path / "test" / "PNEUMONIA" / "person100_bacteria_0.jpeg"
    Image.fromarray(gray(999)).save(tmp_path / "train" / "PNEUMONIA" / "person100_virus_7.jpeg")
    result = scrub.scrub(obtain.build_manifest(tmp_path))
    assert "person100" in set(result.leaks["patient"])
    in_training = result.clean[result.clean["split"] != "test"]
    assert "person100" not in set(in_training["patient"])
    assert src.exists()


def test_patient_split_is_grouped_stratified_and_seeded():
    manifest = obtain.build_manifest(SAMPLE_DIR)
    a = scrub.scrub(manifest, val_fraction=0.2, seed=1).clean
    b = scrub.scrub(manifest, val_fraction=0.2, seed=1).clean
    c = scrub.scrub(manifest, val_fraction=0.2, seed=2).clean
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])
    assert scrub.patients_in_several_splits(a).empty
    share = a.groupby("split")["label"].apply(lambda s: (s == "PNEUMONIA").mean())
    assert abs(share["val"] - share["train"]) < 0.1
    assert 0.12 < (a["split"] == "val").mean() < 0.28


def test_the_step_scrubs_the_run_manifest_and_writes_every_table(tmp_path):
    cfg = RunConfig(data_dir=str(SAMPLE_DIR), run_dir=str(tmp_path / "run"))
    obtain.run(cfg)
    result = scrub.run(cfg)
    layout = cfg.layout
    for path, table in ((layout.clean_manifest, result.clean), (layout.bad_files, result.bad),
                        (layout.duplicates, result.duplicates), (layout.dropped, result.dropped)):
        assert len(pd.read_csv(path)) == len(table), path.name
    clean = pd.read_csv(layout.clean_manifest)
    assert set(clean["split"]) == {"train", "val", "test"} and len(result.manifest) == 512
    assert scrub.patients_in_several_splits(clean).empty
    counts = result.before_after()
    assert counts[["before NORMAL", "before PNEUMONIA"]].to_numpy().sum() == 512
    assert counts[["after NORMAL", "after PNEUMONIA"]].to_numpy().sum() == len(clean)
