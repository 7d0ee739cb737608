"""Tests for pneumo_helpers.interpret: 05's steps on the shipped model and the bundled sample."""

import numpy as np
import pandas as pd
import pytest

from pneumo_helpers import inference, interpret, obtain
from pneumo_helpers.config import SAMPLE_DIR, RunConfig
from pneumo_helpers.labels import CLASSES, call


@pytest.fixture(scope="module")
def loaded():
    return inference.load_model(runtime="keras")  # Grad-CAM needs the Keras model


@pytest.fixture(scope="module")
def rows():
    """Eight sample films, four per class, shuffled so order is not class order."""
    manifest = obtain.build_manifest(SAMPLE_DIR)
    return manifest.groupby("label").head(4).sample(frac=1, random_state=0)


@pytest.fixture(scope="module")
def scored(loaded, rows, tmp_path_factory):
    return interpret.score(loaded, rows, cache_dir=tmp_path_factory.mktemp("cache"))


def test_score_keeps_film_order_and_matches_predicting_the_files(loaded, rows, scored):
    assert scored.films.dtype == np.uint8
    assert scored.films.shape == (8, loaded.image_size, loaded.image_size)
    assert list(scored.rows["path"]) == list(rows["path"])
    assert list(np.asarray(CLASSES)[scored.y]) == list(rows["label"])
    from_files = inference.predict_files(loaded, list(rows["path"]))
    np.testing.assert_allclose(scored.p, from_files["probability"], atol=1e-5)
    np.testing.assert_array_equal(scored.calls, call(scored.p, loaded.threshold))


def test_calibration_and_stress_write_what_they_return(loaded, scored, tmp_path):
    bins = interpret.calibration(scored, path=tmp_path / "bins.csv")
    assert bins["films"].sum() == 8
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "bins.csv"), bins,
                                  check_dtype=False)
    table = interpret.stress(loaded, scored, path=tmp_path / "shifts.csv")
    assert table["shift"].iloc[0] == "none"
    assert table.loc[0, "recall"] == pytest.approx(
        scored.calls[scored.y == 1].mean())
    assert len(pd.read_csv(tmp_path / "shifts.csv")) == len(table)


def test_gradcam_heat_counts_every_film_and_reads_back_by_class_and_call(loaded, scored,
                                                                          tmp_path):
    table, uniform = interpret.gradcam_heat(loaded, scored, path=tmp_path / "heat.csv")
    assert table.loc[("all", "all"), "films"] == 8
    assert 0 < uniform < 1
    back = pd.read_csv(tmp_path / "heat.csv", index_col=[0, 1])
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_score_splits_reads_the_run_manifest_and_the_external_folder(loaded, rows, tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path / "run"), external_dir=str(SAMPLE_DIR))
    clean = rows.assign(split=["val", "test"] * 4)
    cfg.layout.clean_manifest.parent.mkdir(parents=True, exist_ok=True)
    clean.to_csv(cfg.layout.clean_manifest, index=False)
    splits = interpret.score_splits(cfg, loaded)
    assert sorted(splits) == ["external", "test", "val"]
    assert len(splits["val"].films) == len(splits["test"].films) == 4
    assert len(splits["external"].films) == len(obtain.build_manifest(SAMPLE_DIR)
                                                .query("split == 'test'"))
