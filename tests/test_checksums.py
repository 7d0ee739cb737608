"""Tests of pneumo_helpers.checksums: files checked against the list the dataset came with."""

import shutil

import pytest

from pneumo_helpers import obtain
from pneumo_helpers.checksums import checksum_file, verify_checksums
from pneumo_helpers.config import SAMPLE_DIR
from pneumo_helpers.dataset import DatasetError


def test_checksums_name_a_moved_file_as_a_label_change(tmp_path):
    root = tmp_path / "chest_xray"
    shutil.copytree(SAMPLE_DIR, root)
    shutil.copy(SAMPLE_DIR.parent / "chest_xray.sha256", tmp_path)
    assert verify_checksums(obtain.build_manifest(root), root) == \
        "512 files match chest_xray.sha256"
    moved = sorted((root / "train" / "NORMAL").glob("*.jpeg"))[0]
    moved.rename(root / "train" / "PNEUMONIA" / moved.name)
    with pytest.raises(DatasetError, match=r"1 files do not match .*PNEUMONIA/"
                                                 rf"{moved.name} is listed as chest_xray/train/"
                                                 rf"NORMAL/{moved.name} \(moved"):
        verify_checksums(obtain.build_manifest(root), root)


def test_the_checksum_list_is_the_one_of_this_folder(tmp_path):
    (tmp_path / "chest_xray").mkdir()
    (tmp_path / "chest_xray_external.sha256").write_text(
        "ab  chest_xray_external/test/NORMAL/a.jpeg\n")
    assert checksum_file(tmp_path / "chest_xray") is None
    (tmp_path / "chest_xray_train.sha256").write_text("cd  chest_xray/train/NORMAL/b.jpeg\n")
    assert checksum_file(tmp_path / "chest_xray").name == "chest_xray_train.sha256"
    assert checksum_file(tmp_path / "chest_xray_external").name == \
        "chest_xray_external.sha256"
