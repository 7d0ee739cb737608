"""Tests of pneumo_helpers.obtain: finding the dataset, the manifest, what it leaves out, and
step 01 on the bundled sample."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pneumo_helpers import obtain
from pneumo_helpers.config import SAMPLE_DIR, RunConfig
from pneumo_helpers.dataset import MANIFEST_COLUMNS, DatasetError, count_table
from synthetic_dataset import make_dataset


def test_manifest_columns_and_counts(tmp_path):
    make_dataset(tmp_path)
    manifest = obtain.build_manifest(tmp_path)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 24
    counts = count_table(manifest)
    assert counts.loc["train", "NORMAL"] == 6 and counts.loc["test", "PNEUMONIA"] == 6
    assert set(manifest["mode"]) == {"L"} and (manifest["width"] == 40).all()
    assert manifest["sha256"].str.len().eq(64).all()


def test_bundled_sample_layout_and_imbalance():
    manifest = obtain.build_manifest(SAMPLE_DIR)
    counts = count_table(manifest)
    assert set(counts.index) == {"train", "val", "test"}
    assert counts.loc["train", "PNEUMONIA"] > 2 * counts.loc["train", "NORMAL"]
    size = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert size < 5_000_000
    assert (SAMPLE_DIR.parent / "ATTRIBUTION.md").read_text().count("CC BY 4.0") >= 1


def test_find_root_accepts_nested_kaggle_folder(tmp_path):
    make_dataset(tmp_path / "chest_xray" / "chest_xray")
    assert obtain.find_root(tmp_path) == (tmp_path / "chest_xray" / "chest_xray").resolve()


def test_wrong_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        obtain.build_manifest(tmp_path / "nope")


def test_missing_train_split_is_a_clear_error(tmp_path):
    make_dataset(tmp_path, splits=("test",))
    with pytest.raises(DatasetError, match="no train/ folder.*found: test"):
        obtain.build_manifest(tmp_path)


def test_empty_class_folder_is_a_clear_error(tmp_path):
    make_dataset(tmp_path)
    for f in (tmp_path / "test" / "NORMAL").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"test/NORMAL is empty"):
        obtain.build_manifest(tmp_path)


def test_misnamed_class_folder_is_a_clear_error(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "train" / "PNEUMONIA").rename(tmp_path / "train" / "Pneumonia")
    with pytest.raises(DatasetError, match="no PNEUMONIA folder.*found Pneumonia"):
        obtain.build_manifest(tmp_path)


def test_unknown_class_folder_is_an_error_unless_ignored_and_then_listed(tmp_path):
    root = tmp_path / "chest_xray"
    shutil.copytree(SAMPLE_DIR / "train", root / "train")
    extra = root / "train" / "normal_extra"
    extra.mkdir()
    first = sorted((root / "train" / "NORMAL").glob("*.jpeg"))[:2]
    shutil.copy(first[0], extra / "x.jpeg")
    shutil.copy(first[1], root / "train" / "loose.jpeg")
    with pytest.raises(DatasetError, match=r"normal_extra/ besides NORMAL/ and PNEUMONIA/"):
        obtain.build_manifest(root)
    manifest = obtain.build_manifest(root, ignore_unknown=True)
    assert len(manifest) == 400
    skipped = obtain.not_taken(root)
    assert [Path(p).name for p in skipped["path"]] == ["loose.jpeg", "x.jpeg"]
    assert skipped["reason"].tolist() == [
        "directly in train/, not in a class folder",
        "in train/normal_extra/, which is not a class (NORMAL, PNEUMONIA)"]


def test_locate_dataset_falls_back_to_sample_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("PNEUMO_DATA_DIR", raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")

    def offline():
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(obtain, "_download_with_kagglehub", offline)
    where = obtain.locate_dataset()
    assert where.is_sample and "ConnectionError" in where.message
    assert "\n" not in where.message


def test_locate_dataset_prefers_given_path_then_environment(monkeypatch, tmp_path):
    make_dataset(tmp_path / "a")
    make_dataset(tmp_path / "b")
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(tmp_path / "b"))
    assert obtain.locate_dataset(tmp_path / "a").path == (tmp_path / "a").resolve()
    assert obtain.locate_dataset().path == (tmp_path / "b").resolve()


def test_the_step_writes_the_manifest_and_what_it_leaves_out(tmp_path):
    cfg = RunConfig(data_dir=str(SAMPLE_DIR), run_dir=str(tmp_path / "run"))
    obtained = obtain.run(cfg)
    assert obtained.location.source == "given" and not obtained.location.is_sample
    assert obtained.checksums == "512 files match chest_xray.sha256"
    written = pd.read_csv(cfg.layout.manifest)
    assert list(written.columns) == MANIFEST_COLUMNS and len(written) == 512
    assert written["sha256"].tolist() == obtained.manifest["sha256"].tolist()
    assert pd.read_csv(cfg.layout.not_taken).empty and obtained.not_taken.empty
