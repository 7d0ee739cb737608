"""Tests for pneumo_helpers.data and .images: layout checks, bad files, splits (patient ids: test_labels)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pneumo_helpers import data
from pneumo_helpers.config import PROFILES, SAMPLE_DIR, RunConfig
from pneumo_helpers.data import DatasetError
from pneumo_helpers.images import ImageError, read_gray


# --- Synthetic datasets written by the tests ------------------------------------------------

def _gray(seed, size=40):
    return np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)


def make_dataset(root, *, splits=("train", "test"), per_class=6):
    """A Kaggle-layout folder with `per_class` images per class, two images per patient."""
    for split in splits:
        for label in data.CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                name = (f"person{i // 2 + (100 if split == 'test' else 0)}_bacteria_{i}.jpeg"
                        if label == "PNEUMONIA"
                        else f"IM-{i // 2 + (500 if split == 'test' else 0):04d}-000{i % 2}.jpeg")
                Image.fromarray(_gray(hash((split, label, i)) % 2**32)).save(folder / name)
    return root


def test_manifest_columns_and_counts(tmp_path):
    make_dataset(tmp_path)
    manifest = data.build_manifest(tmp_path)
    assert list(manifest.columns) == data.MANIFEST_COLUMNS
    assert len(manifest) == 24
    counts = data.count_table(manifest)
    assert counts.loc["train", "NORMAL"] == 6 and counts.loc["test", "PNEUMONIA"] == 6
    assert set(manifest["mode"]) == {"L"} and (manifest["width"] == 40).all()
    assert manifest["sha256"].str.len().eq(64).all()


def test_bundled_sample_layout_and_imbalance():
    manifest = data.build_manifest(SAMPLE_DIR)
    counts = data.count_table(manifest)
    assert set(counts.index) == {"train", "val", "test"}
    assert counts.loc["train", "PNEUMONIA"] > 2 * counts.loc["train", "NORMAL"]
    size = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert size < 5_000_000
    assert (SAMPLE_DIR.parent / "ATTRIBUTION.md").read_text().count("CC BY 4.0") >= 1


def test_find_root_accepts_nested_kaggle_folder(tmp_path):
    make_dataset(tmp_path / "chest_xray" / "chest_xray")
    assert data.find_root(tmp_path) == (tmp_path / "chest_xray" / "chest_xray").resolve()


def test_wrong_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        data.build_manifest(tmp_path / "nope")


def test_missing_train_split_is_a_clear_error(tmp_path):
    make_dataset(tmp_path, splits=("test",))
    with pytest.raises(DatasetError, match="no train/ folder.*found: test"):
        data.build_manifest(tmp_path)


def test_empty_class_folder_is_a_clear_error(tmp_path):
    make_dataset(tmp_path)
    for f in (tmp_path / "test" / "NORMAL").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"test/NORMAL is empty"):
        data.build_manifest(tmp_path)


def test_misnamed_class_folder_is_a_clear_error(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "train" / "PNEUMONIA").rename(tmp_path / "train" / "Pneumonia")
    with pytest.raises(DatasetError, match="no PNEUMONIA folder.*found Pneumonia"):
        data.build_manifest(tmp_path)


def test_missing_test_split_is_cut_by_patient(tmp_path):
    make_dataset(tmp_path, splits=("train",), per_class=20)
    result = data.scrub(data.build_manifest(tmp_path), val_fraction=0.2, test_fraction=0.2)
    assert set(result.clean["split"]) == {"train", "val", "test"}
    assert data.patients_in_several_splits(result.clean).empty


def test_a_carved_test_split_never_holds_the_patients_that_chose():
    """pneumo train and the sweep (test_fraction 0) validate on the same patients as a run
    that carves a test split, so that test split is untouched by their choices."""
    manifest = data.build_manifest(SAMPLE_DIR)
    manifest = manifest[manifest["split"] == "train"].reset_index(drop=True)  # no test/
    fractions = PROFILES["full"]["val_fraction"], PROFILES["full"]["test_fraction"]
    run = data.scrub(manifest, val_fraction=fractions[0], test_fraction=fractions[1]).clean
    chooser = data.scrub(manifest, val_fraction=fractions[0], test_fraction=0.0).clean

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
    rgba = np.dstack([_gray(1), _gray(2), _gray(3), np.full((40, 40), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / "person53_virus_4.png")
    Image.fromarray(_gray(4).astype(np.uint16) * 16).save(folder / "person54_virus_5.png")

    manifest = data.build_manifest(tmp_path)
    good_rows, bad = data.validate_images(manifest)
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

    result = data.scrub(manifest)
    assert not result.clean["path"].isin(bad["path"]).any()


def test_read_gray_converts_every_mode_to_the_same_shape(tmp_path):
    rgb = np.dstack([_gray(1)] * 3)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpeg")
    Image.fromarray(np.dstack([rgb, np.full((40, 40), 9, np.uint8)])).save(
        tmp_path / "rgba.png")
    Image.fromarray(_gray(1).astype(np.uint16) * 256).save(tmp_path / "deep.png")
    Image.fromarray(_gray(1)).save(tmp_path / "gray.png")
    outs = [read_gray(tmp_path / n, size=32) for n in ("rgb.jpeg", "rgba.png", "deep.png",
                                                          "gray.png")]
    assert all(o.shape == (32, 32) and o.dtype == np.uint8 for o in outs)
    # 16-bit content is stretched to the 8-bit range, not truncated to black/white.
    deep = read_gray(tmp_path / "deep.png")
    assert deep.max() == 255 and len(np.unique(deep)) > 100
    with pytest.raises(ImageError, match="no such file"):
        read_gray(tmp_path / "missing.png")


def test_duplicates_within_and_across_splits(tmp_path):
    make_dataset(tmp_path)
    src = tmp_path / "train" / "NORMAL" / "IM-0000-0000.jpeg"
    (tmp_path / "train" / "NORMAL" / "IM-0900-0001.jpeg").write_bytes(src.read_bytes())
    (tmp_path / "test" / "NORMAL" / "IM-0901-0001.jpeg").write_bytes(src.read_bytes())
    manifest = data.build_manifest(tmp_path)
    dup = data.find_duplicates(manifest)
    assert len(dup) == 3 and set(dup["kind"]) == {"across splits"}
    result = data.scrub(manifest)
    # Only the test copy survives, so no test image is also trained on.
    survivors = result.clean[result.clean["sha256"] == dup["sha256"].iloc[0]]
    assert list(survivors["split"]) == ["test"]


def test_patient_in_train_and_test_is_dropped_from_training(tmp_path):
    make_dataset(tmp_path)
    src = tmp_path / "test" / "PNEUMONIA" / "person100_bacteria_0.jpeg"
    Image.fromarray(_gray(999)).save(tmp_path / "train" / "PNEUMONIA" / "person100_virus_7.jpeg")
    result = data.scrub(data.build_manifest(tmp_path))
    assert "person100" in set(result.leaks["patient"])
    in_training = result.clean[result.clean["split"] != "test"]
    assert "person100" not in set(in_training["patient"])
    assert src.exists()


def test_patient_split_is_grouped_stratified_and_seeded():
    manifest = data.build_manifest(SAMPLE_DIR)
    a = data.scrub(manifest, val_fraction=0.2, seed=1).clean
    b = data.scrub(manifest, val_fraction=0.2, seed=1).clean
    c = data.scrub(manifest, val_fraction=0.2, seed=2).clean
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])
    assert data.patients_in_several_splits(a).empty
    share = a.groupby("split")["label"].apply(lambda s: (s == "PNEUMONIA").mean())
    assert abs(share["val"] - share["train"]) < 0.1
    assert 0.12 < (a["split"] == "val").mean() < 0.28


def test_locate_dataset_falls_back_to_sample_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("PNEUMO_DATA_DIR", raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")

    def offline():
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(data, "_download_with_kagglehub", offline)
    where = data.locate_dataset()
    assert where.is_sample and "ConnectionError" in where.message
    assert "\n" not in where.message


def test_locate_dataset_prefers_given_path_then_environment(monkeypatch, tmp_path):
    make_dataset(tmp_path / "a")
    make_dataset(tmp_path / "b")
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(tmp_path / "b"))
    assert data.locate_dataset(tmp_path / "a").path == (tmp_path / "a").resolve()
    assert data.locate_dataset().path == (tmp_path / "b").resolve()


def test_run_config_profiles_and_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PNEUMO_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("PNEUMO_EPOCHS", "7")
    cfg = RunConfig.from_params()
    assert cfg.profile == "sample" and cfg.epochs == 7 and cfg.run_dir == str(tmp_path / "run")
    full = RunConfig.from_params(data_dir=str(tmp_path), epochs=None)
    assert full.profile == "full" and full.image_size == 112 and full.ensemble_seeds == ()
    assert cfg.ensemble_seeds == ()
    monkeypatch.setenv("PNEUMO_ENSEMBLE_SEEDS", "3, 4")
    assert RunConfig.from_params().ensemble_seeds == (3, 4)  # typed from the annotation
    with pytest.raises(TypeError, match="unknown run parameters"):
        RunConfig.from_params(imagesize=3)


def test_unknown_class_folder_is_an_error_unless_ignored_and_then_listed(tmp_path):
    import shutil

    from pneumo_helpers.config import SAMPLE_DIR

    root = tmp_path / "chest_xray"
    shutil.copytree(SAMPLE_DIR / "train", root / "train")
    extra = root / "train" / "normal_extra"
    extra.mkdir()
    first = sorted((root / "train" / "NORMAL").glob("*.jpeg"))[:2]
    shutil.copy(first[0], extra / "x.jpeg")
    shutil.copy(first[1], root / "train" / "loose.jpeg")
    with pytest.raises(data.DatasetError, match=r"normal_extra/ besides NORMAL/ and PNEUMONIA/"):
        data.build_manifest(root)
    manifest = data.build_manifest(root, ignore_unknown=True)
    assert len(manifest) == 400
    skipped = data.not_taken(root)
    assert [Path(p).name for p in skipped["path"]] == ["loose.jpeg", "x.jpeg"]
    assert skipped["reason"].tolist() == [
        "directly in train/, not in a class folder",
        "in train/normal_extra/, which is not a class (NORMAL, PNEUMONIA)"]


def test_checksums_name_a_moved_file_as_a_label_change(tmp_path):
    import shutil

    from pneumo_helpers.config import SAMPLE_DIR

    root = tmp_path / "chest_xray"
    shutil.copytree(SAMPLE_DIR, root)
    shutil.copy(SAMPLE_DIR.parent / "chest_xray.sha256", tmp_path)
    assert data.verify_checksums(data.build_manifest(root), root) == \
        "512 files match chest_xray.sha256"
    moved = sorted((root / "train" / "NORMAL").glob("*.jpeg"))[0]
    moved.rename(root / "train" / "PNEUMONIA" / moved.name)
    with pytest.raises(data.DatasetError, match=r"1 files do not match .*PNEUMONIA/"
                                                 rf"{moved.name} is listed as chest_xray/train/"
                                                 rf"NORMAL/{moved.name} \(moved"):
        data.verify_checksums(data.build_manifest(root), root)


def test_the_checksum_list_is_the_one_of_this_folder(tmp_path):
    (tmp_path / "chest_xray").mkdir()
    (tmp_path / "chest_xray_external.sha256").write_text(
        "ab  chest_xray_external/test/NORMAL/a.jpeg\n")
    assert data.checksum_file(tmp_path / "chest_xray") is None
    (tmp_path / "chest_xray_train.sha256").write_text("cd  chest_xray/train/NORMAL/b.jpeg\n")
    assert data.checksum_file(tmp_path / "chest_xray").name == "chest_xray_train.sha256"
    assert data.checksum_file(tmp_path / "chest_xray_external").name == \
        "chest_xray_external.sha256"
