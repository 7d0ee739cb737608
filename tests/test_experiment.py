"""Tests for pneumo_helpers.experiment: one training (run_candidate) and an average of seeds."""

import pandas as pd
import pytest

from pneumo_helpers import experiment
from pneumo_helpers.config import SAMPLE_DIR
from pneumo_helpers.recipe import Recipe
from pneumo_helpers.runs import ModelLayout

# A one-epoch training on a few films: what these tests train.
TINY = Recipe(epochs=1, image_size=32, batch_size=8, balance="class_weight", augment="mild",
              consistency=0.0, pretrain_epochs=0)


@pytest.fixture(scope="module")
def sample_split():
    """(train rows, val rows) of the bundled sample: 16 training films per class, every
    validation film; enough for one-epoch trainings."""
    from pneumo_helpers import obtain

    rows = obtain.build_manifest(SAMPLE_DIR)
    return (rows[rows["split"] == "train"].groupby("label").head(16).reset_index(drop=True),
            rows[rows["split"] == "val"].reset_index(drop=True))


def test_a_candidate_trains_the_same_way_under_a_distribution_strategy(tmp_path, sample_split):
    import pandas as pd

    train_rows, val_rows = sample_split
    result = experiment.run_candidate(
        train_rows, val_rows, TINY,
        out_dir=tmp_path / "m", n_boot=10, verbose=0, distribution="mirrored")
    assert result.config["distribution"] == "mirrored"
    assert (tmp_path / "m" / "model.keras").is_file() and len(result.history) == 1
    assert isinstance(result.metrics, pd.DataFrame)


def test_a_consistency_candidate_trains_on_paired_views_and_ships_as_a_plain_model(
        tmp_path, sample_split):
    import numpy as np

    from pneumo_helpers import gradcam, inference, models

    train_rows, val_rows = sample_split
    result = experiment.run_candidate(
        train_rows, val_rows,
        TINY.replace(consistency=0.1),
        out_dir=tmp_path / "c", n_boot=10, verbose=0, cache_dir=tmp_path)
    assert result.config["consistency"] == 0.1
    loaded = inference.load_model(tmp_path / "c", runtime="keras")
    assert isinstance(loaded.model.layers[-1], models.ViewConsistency)
    images = (np.random.default_rng(0).uniform(size=(3, 32, 32)) * 255).astype(np.uint8)
    assert loaded.predict(images).shape == (3,)
    # Grad-CAM sees through the pass-through layer: the maps of the model without it.
    import keras

    plain = keras.Model(loaded.model.inputs, models.output_layer(loaded.model).output)
    maps = gradcam.GradCam(loaded.model)(images)
    assert maps.shape == (3, 32, 32)
    np.testing.assert_allclose(maps, gradcam.GradCam(plain)(images), atol=1e-5)
    # The fast runtime exports it too (checked against Keras on the sample by export_litert).
    inference.export_litert(tmp_path / "c")
    lite = inference.load_model(tmp_path / "c", runtime="litert")
    np.testing.assert_allclose(lite.predict(images), loaded.predict(images), atol=1e-4)
    # Under a distribution strategy too, in whole batches of both views.
    mirrored = experiment.run_candidate(
        train_rows, val_rows,
        TINY.replace(consistency=0.1),
        out_dir=tmp_path / "d", n_boot=10, verbose=0, distribution="mirrored", cache_dir=tmp_path)
    assert mirrored.config["consistency"] == 0.1 and len(mirrored.history) == 1


def test_a_pretrained_candidate_records_its_pretraining_and_trains_as_usual(tmp_path,
                                                                            sample_split):
    train_rows, val_rows = sample_split
    result = experiment.run_candidate(
        train_rows, val_rows,
        TINY.replace(pretrain_epochs=2),
        out_dir=tmp_path / "p", n_boot=10, verbose=0, cache_dir=tmp_path)
    assert result.config["pretrain_epochs"] == 2 and len(result.history) == 1
    pretrained = pd.read_csv(ModelLayout(tmp_path / "p").pretrain_history)
    assert len(pretrained) == 2 and pretrained["loss"].notna().all()
    # Another candidate on the same films, seed and architecture reuses the pretraining
    # (04's candidates differ only after it) and trains from the same state.
    cached = sorted(tmp_path.glob("pretrained-*.weights.h5"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = experiment.run_candidate(
        train_rows, val_rows,
        TINY.replace(pretrain_epochs=2),
        out_dir=tmp_path / "r", n_boot=10, verbose=0, cache_dir=tmp_path)
    assert cached[0].stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(pd.read_csv(ModelLayout(tmp_path / "r").pretrain_history),
                                  pretrained)
    assert again.history["loss"].iloc[0] == pytest.approx(result.history["loss"].iloc[0],
                                                          rel=1e-3)
    # Another seed pretrains anew.
    experiment.run_candidate(
        train_rows, val_rows,
        TINY.replace(pretrain_epochs=2, seed=7),
        out_dir=tmp_path / "s", n_boot=10, verbose=0, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pretrained-*.weights.h5"))) == 2
    # Under a distribution strategy: pretrained on one device, then trained distributed.
    mirrored = experiment.run_candidate(
        train_rows, val_rows,
        TINY.replace(pretrain_epochs=1, consistency=0.1),
        out_dir=tmp_path / "q", n_boot=10, verbose=0, distribution="mirrored")
    assert mirrored.config["pretrain_epochs"] == 1 and len(mirrored.history) == 1
    assert len(pd.read_csv(ModelLayout(tmp_path / "q").pretrain_history)) == 1
