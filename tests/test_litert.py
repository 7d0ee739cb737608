"""Tests for pneumo_helpers.litert: the LiteRT export of a model folder, used only while it
matches the folder's model.keras."""

import json
import shutil

import numpy as np
import pytest

from pneumo_helpers import inference
from pneumo_helpers.config import SAMPLE_DIR
from pneumo_helpers.files import sha256
from pneumo_helpers.image_files import collect_images
from pneumo_helpers.litert import ExportChanged, LiteModel, matching_export
from pneumo_helpers.runs import ModelLayout


def test_auto_runtime_is_the_litert_export_while_it_matches(tmp_path):
    assert inference.load_model().runtime == "litert"
    copy = tmp_path / "model"
    shutil.copytree(inference.SHIPPED_MODEL_DIR, copy)
    record = json.loads((copy / "export.json").read_text())
    (copy / "export.json").write_text(json.dumps({**record, "model_sha256": "0" * 64}))
    ModelLayout(copy).write_manifest()  # a change of the owner's, not a tampered file
    assert inference.load_model(copy).runtime == "keras"  # stale export: Keras
    with pytest.raises(inference.ModelError, match="no LiteRT export matching"):
        inference.load_model(copy, runtime="litert")


def test_litert_export_matches_keras_on_the_whole_sample():
    files = collect_images([SAMPLE_DIR])
    keras_p = inference.predict_files(inference.load_model(runtime="keras"), files)
    lite_p = inference.predict_files(inference.load_model(runtime="litert"), files)
    difference = np.abs(keras_p["probability"] - lite_p["probability"]).max()
    assert difference <= 1e-4, difference


def test_the_export_record_must_name_the_model_it_was_made_from(tmp_path):
    folder = inference.SHIPPED_MODEL_DIR
    model_sha = sha256(folder / "model.keras")
    assert matching_export(folder, model_sha)["lite_sha256"] == sha256(folder / "model.tflite")
    assert matching_export(folder, "0" * 64) is None
    assert matching_export(tmp_path, model_sha) is None  # no export at all


def test_a_changed_tflite_file_is_refused_by_its_hash(tmp_path):
    lite = tmp_path / "model.tflite"
    shutil.copy(inference.SHIPPED_MODEL_DIR / "model.tflite", lite)
    model = LiteModel(lite, expected_sha256=sha256(lite))
    x = np.zeros((2, *model.input_shape[1:]), np.float32)
    assert model.predict_on_batch(x).shape == (2, 1)
    with pytest.raises(ExportChanged, match="sha256 differs"):
        LiteModel(lite, expected_sha256="0" * 64)
