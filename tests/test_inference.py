"""Tests for pneumo_helpers.inference: loading a model folder, its contract, predicting files."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from pneumo_helpers.config import SAMPLE_DIR
from pneumo_helpers.files import sha256
from pneumo_helpers.image_files import collect_images
from pneumo_helpers.inference import SHIPPED_MODEL_DIR, ModelError, load_model, predict_files


@pytest.fixture(scope="module")
def shipped():
    return load_model(runtime="keras")


def test_the_shipped_model_loads_with_its_recorded_settings(shipped):
    config = json.loads((SHIPPED_MODEL_DIR / "config.json").read_text())
    assert shipped.image_size == config["image_size"]
    assert 0 < shipped.threshold < 1
    assert shipped.sha256 == sha256(SHIPPED_MODEL_DIR / "model.keras")


def test_predict_files_keeps_order_and_gives_bad_files_an_error_row(shipped, tmp_path):
    good = collect_images([SAMPLE_DIR / "test"])[:3]
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(b"not a jpeg")
    table = predict_files(shipped, [good[0], str(broken), *good[1:]], batch_size=2)
    assert list(table["file"]) == [good[0], str(broken), *good[1:]]
    assert table["error"].iloc[1] and np.isnan(table["probability"].iloc[1])
    assert table["label"].iloc[1] == ""
    ok = table.drop(index=1)
    assert ok["probability"].between(0, 1).all() and (ok["error"] == "").all()
    assert list(ok["label"]) == list(shipped.label(ok["probability"]))


def test_label_is_empty_where_there_is_no_probability(shipped):
    labels = shipped.label([0.0, 1.0, np.nan])
    assert list(labels) == ["NORMAL", "PNEUMONIA", ""]


def test_a_folder_without_a_model_or_with_a_changed_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no model at"):
        load_model(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(SHIPPED_MODEL_DIR, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "image_size": 64}))
    with pytest.raises(ModelError, match="config.json"):  # the manifest no longer matches
        load_model(copy, runtime="keras")
    (copy / "manifest.json").unlink()  # without one, the size is checked against the model
    with pytest.raises(ModelError, match="image_size 64 but model.keras takes"):
        load_model(copy, runtime="keras")


def test_a_not_image_gets_a_row_not_an_exception(shipped, tmp_path):
    Image.fromarray(np.full((300, 300, 3), (255, 0, 0), np.uint8)).save(tmp_path / "red.png")
    table = predict_files(shipped, [str(tmp_path / "red.png")])
    assert table["error"].iloc[0] and table["label"].iloc[0] == ""
