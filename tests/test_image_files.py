"""Tests for pneumo_helpers.image_files: which files a user's paths name."""

import os

import numpy as np
import pytest
from PIL import Image

from pneumo_helpers.image_files import collect_images
from pneumo_helpers.images import ImageError


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return path


def test_folders_are_searched_sorted_without_hidden_files(tmp_path):
    for name in ("b/2.png", "a/1.jpeg", ".git/x.png", "a/.hidden.png", "a/notes.txt"):
        if name.endswith(".txt"):
            (tmp_path / name).write_text("not an image")
        else:
            _png(tmp_path / name)
    assert collect_images([tmp_path]) == [str(tmp_path / "a/1.jpeg"), str(tmp_path / "b/2.png")]


def test_a_file_named_directly_is_kept_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _png(tmp_path / "-scan.png")
    assert collect_images(["./-scan.png"]) == ["./-scan.png"]


def test_a_linked_folder_is_listed_not_followed(tmp_path):
    _png(tmp_path / "real" / "1.png")
    (tmp_path / "films").mkdir()
    _png(tmp_path / "films" / "0.png")
    os.symlink(tmp_path / "real", tmp_path / "films" / "link")
    assert collect_images([tmp_path / "films"]) == [str(tmp_path / "films/0.png"),
                                                     str(tmp_path / "films/link")]


def test_missing_paths_and_empty_folders_are_named(tmp_path):
    with pytest.raises(ImageError, match=r"missing\.png: no such file or folder"):
        collect_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match=r"empty: folder holds no image files"):
        collect_images([tmp_path / "empty"])
