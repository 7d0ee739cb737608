"""Transfer candidates end to end, with random or stand-in weights: nothing is downloaded.

Each ImageNet backbone trains its two stages on a few sample films at 32 px (the smallest
size ``keras.applications`` takes without the classifier), saves, loads, exports to LiteRT and
explains; a missing-weights candidate is skipped with one line; a weights file placed in the
Keras cache makes the candidate train and compete in 04's comparison.
"""

import dataclasses
import hashlib
import json

import keras
import numpy as np
import pandas as pd
import pytest

from pneumo_helpers import (cli, experiment, gradcam, inference, lime_explain, models, obtain,
                            selection, transfer)
from pneumo_helpers.backbones import BACKBONES, transfer_backbone
from pneumo_helpers.config import SAMPLE_DIR, RunConfig
from pneumo_helpers.recipe import Recipe
from pneumo_helpers.runs import ModelLayout, RunLayout

SIZE = 32

# A one-epoch training on a few films: what these tests train.
TINY = Recipe(epochs=1, image_size=32, batch_size=8, balance="class_weight", augment="mild",
              consistency=0.0, pretrain_epochs=0)


def gray_films(n, channels=1):
    """``n`` random films of ``SIZE`` px in [0, 1]."""
    return np.random.default_rng(0).random((n, SIZE, SIZE, channels)).astype("float32")


def infer(model, x):
    """Inference-mode predictions without tracing a predict function (faster in tests)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


# --- one model, random weights -----------------------------------------------------------

@pytest.fixture(scope="module")
def transfer_model():
    return transfer.build_transfer_model(backbone="EfficientNetB0", image_size=32, weights=None)


def head_weight_names(model):
    return sorted(w.path for w in model.trainable_weights)


def test_transfer_model_grayscale_and_frozen_backbone(transfer_model):
    x = gray_films(2)
    p = infer(transfer_model, x)
    assert p.shape == (2, 1) and np.all((p >= 0) & (p <= 1))
    # Only the head's Dense kernel and bias train while the backbone is frozen.
    assert head_weight_names(transfer_model) == ["pneumonia/bias", "pneumonia/kernel"]
    assert len(transfer_model.non_trainable_weights) > 100


def test_transfer_model_rgb_input():
    model = transfer.build_transfer_model(backbone="EfficientNetB0", image_size=32, channels=3,
                                        weights=None)
    assert infer(model, gray_films(2, channels=3)).shape == (2, 1)


def test_unfreeze_top_unfreezes_exactly_the_top_non_bn_layers():
    model = transfer.build_transfer_model(backbone="EfficientNetB0", image_size=32, weights=None)
    backbone = transfer.backbone_layers(model)
    assert backbone[0].name != "backbone_preprocessing" and backbone[-1].name == "top_activation"
    transfer.unfreeze_top(model, n_layers=7, learning_rate=1e-5)
    non_bn = [l for l in backbone if not isinstance(l, keras.layers.BatchNormalization)]
    assert [l.name for l in backbone if l.trainable] == [l.name for l in non_bn[-7:]]
    assert not any(l.trainable for l in backbone
                   if isinstance(l, keras.layers.BatchNormalization))
    assert len(model.trainable_weights) > 2  # head plus the unfrozen convs
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-5)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_transfer_model_save_load_and_weights_from_file(tmp_path, transfer_model):
    x = gray_films(2)
    transfer_model.save(tmp_path / "t.keras")
    loaded = keras.models.load_model(tmp_path / "t.keras")
    np.testing.assert_allclose(infer(loaded, x),
                               infer(transfer_model, x), atol=1e-6)
    # weights=<path>: a no-top weights file of the same backbone (HDF5, as Keras' ImageNet
    # files are) is loaded into the backbone's layers.
    keras.utils.set_random_seed(11)
    alone = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                              input_shape=(32, 32, 3))
    alone.save(tmp_path / "b.h5")
    again = transfer.build_transfer_model(image_size=32, weights=str(tmp_path / "b.h5"))
    a = [w for layer in transfer.backbone_layers(again) for w in layer.get_weights()]
    assert len(a) == len(alone.get_weights())
    assert all(np.array_equal(u, v) for u, v in zip(a, alone.get_weights()))


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_missing_imagenet_weights_raise_one_clear_line(empty_home):
    assert not transfer.imagenet_weights_available("EfficientNetB0")
    with pytest.raises(transfer.WeightsUnavailable) as err:
        transfer.build_transfer_model(image_size=32, download=False)
    assert str(err.value) == (
        "no ImageNet weights for EfficientNetB0 in ~/.keras/models and downloads are off "
        "(PNEUMO_DOWNLOAD_WEIGHTS=0): place efficientnetb0_notop.h5 there, or drop it from "
        "PNEUMO_CANDIDATES")
    assert err.value.line("choose another --architecture").endswith(
        "there, or choose another --architecture")


def test_corrupt_cached_weights_are_not_used(empty_home):
    cache = empty_home / ".keras" / "models"
    cache.mkdir(parents=True)
    (cache / BACKBONES["DenseNet121"].weights_file).write_bytes(b"partial download")
    assert not transfer.imagenet_weights_available("DenseNet121")
    with pytest.raises(transfer.WeightsUnavailable, match=r"\(the file there is incomplete\) "
                       "and no network"):
        transfer.build_transfer_model(backbone="DenseNet121", image_size=32)


def test_efficientnet_weights_never_fetched_from_another_cache(tmp_path, monkeypatch):
    # Valid-looking weights under a KERAS_HOME set after Keras was imported: Keras itself
    # would look in its old folder and try to download, so the build must refuse.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "efficientnetb0_notop.h5").write_bytes(b"stand-in")
    monkeypatch.setattr(transfer, "_md5", lambda path: BACKBONES["EfficientNetB0"].md5)
    assert transfer.imagenet_weights_available("EfficientNetB0")
    with pytest.raises(transfer.WeightsUnavailable, match="KERAS_HOME changed"):
        transfer.build_transfer_model(image_size=32)


def test_bad_transfer_arguments(tmp_path):
    with pytest.raises(ValueError, match="backbone must be one of"):
        transfer.build_transfer_model(backbone="VGG16", weights=None)
    with pytest.raises(transfer.WeightsUnavailable, match="does not exist"):
        transfer.build_transfer_model(image_size=32, weights=str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="not a transfer model"):
        transfer.unfreeze_top(models.build_baseline_cnn(image_size=32))


# --- candidates end to end ---------------------------------------------------------------

@pytest.fixture(scope="module")
def films():
    """(train rows, val rows): 8 training films per class and 16 validation films."""
    rows = obtain.build_manifest(SAMPLE_DIR)
    return (rows[rows["split"] == "train"].groupby("label").head(8).reset_index(drop=True),
            rows[rows["split"] == "val"].groupby("label").head(8).reset_index(drop=True))


@pytest.fixture(scope="module", params=list(BACKBONES))
def trained(request, films, tmp_path_factory):
    """One backbone, random weights, trained one epoch per stage: (backbone, result)."""
    train_rows, val_rows = films
    out = tmp_path_factory.mktemp(request.param)
    result = experiment.run_candidate(
        train_rows, val_rows,
        TINY.replace(architecture=request.param, epochs=2, image_size=SIZE, batch_size=8),
        out_dir=out, model_kwargs=dict(weights=None), n_boot=10, verbose=0)
    return request.param, result


def test_two_stages_train_the_head_then_the_top_at_the_lower_rate(trained):
    backbone, result = trained
    history = result.history
    assert list(history["stage"]) == ["head", "fine-tune"]
    assert list(history["epoch"]) == [0, 1]
    assert history["learning_rate"].iloc[0] == pytest.approx(1e-3)
    assert history["learning_rate"].iloc[1] == pytest.approx(experiment.FINE_TUNE["learning_rate"])
    config = json.loads(ModelLayout(result.out_dir).config.read_text())
    assert config["stages"] == {"head": 1, "fine_tune": 1} and config["epochs_run"] == 2
    assert config["model"] == backbone and len(config["seconds_per_epoch"]) == 2
    saved = pd.read_csv(ModelLayout(result.out_dir).history_csv)
    assert list(saved["stage"]) == ["head", "fine-tune"]
    assert not ModelLayout(result.out_dir / "head").model.exists()  # spent once stage 2 ran


def test_the_saved_model_loads_takes_gray_films_and_exports_to_litert(trained):
    backbone, result = trained
    loaded = inference.load_model(result.out_dir, runtime="keras")
    assert loaded.image_size == SIZE and transfer_backbone(loaded.model) == backbone
    assert loaded.model.input_shape == (None, SIZE, SIZE, 1)
    p = loaded.predict(np.random.default_rng(0).integers(0, 255, (3, SIZE, SIZE), np.uint8))
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))
    # export_litert refuses (ModelError) an export further than 1e-4 from Keras on the sample.
    inference.export_litert(result.out_dir)
    record = json.loads(ModelLayout(result.out_dir).export.read_text())
    assert record["max_abs_difference"] <= 1e-4
    assert inference.load_model(result.out_dir, runtime="auto").runtime == "litert"


def test_grad_cam_reads_the_backbone_last_activation(trained):
    backbone, result = trained
    model = inference.load_model(result.out_dir, runtime="keras").model
    cam = gradcam.GradCam(model)
    assert cam.layer.name == BACKBONES[backbone].feature_layer
    assert cam.layer.output.shape[1:3] == (1, 1)  # 32 px / 32: the backbone's last maps
    maps = cam(np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE), np.uint8))
    assert maps.shape == (2, SIZE, SIZE) and np.isfinite(maps).all() and maps.max() <= 1


def test_lime_explains_a_transfer_model(trained):
    _, result = trained
    model = inference.load_model(result.out_dir, runtime="keras").model
    image = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE), np.uint8)
    explanation = lime_explain.LimeExplainer(model, num_samples=20, n_segments=8).explain(image)
    assert explanation.segments.shape == (SIZE, SIZE)


def _offline(calls):
    def fail(backbone):
        calls.append(backbone)
        raise OSError("Name or service not known")
    return fail


def test_missing_weights_and_no_network_give_the_issue_line(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(transfer, "_download", _offline(calls))
    with pytest.raises(transfer.WeightsUnavailable) as err:
        transfer.build_densenet121(image_size=SIZE)
    assert calls == ["DenseNet121"]  # a download was tried, and failed
    assert str(err.value) == (
        "no ImageNet weights for DenseNet121 in ~/.keras/models and no network: place "
        "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 there, or drop it from "
        "PNEUMO_CANDIDATES")


def test_a_downloaded_file_is_used_where_keras_caches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = BACKBONES["ResNet50V2"]

    def fetch(backbone):  # what keras.utils.get_file leaves behind
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / spec.weights_file).write_bytes(b"weights")

    monkeypatch.setattr(transfer, "_download", fetch)
    monkeypatch.setitem(BACKBONES, "ResNet50V2",
                        dataclasses.replace(spec, md5=hashlib.md5(b"weights").hexdigest()))
    assert transfer.imagenet_weights("ResNet50V2") == tmp_path / "models" / spec.weights_file


def _config(tmp_path, **kwargs):
    """A run on tiny films whose comparison trains each candidate for one epoch."""
    return RunConfig(**{**dict(run_dir=str(tmp_path / "run"), image_size=SIZE, batch_size=8,
                               compare_epochs=1, epochs=1), **kwargs})


def test_a_candidate_without_weights_is_skipped_and_the_series_goes_on(tmp_path, films,
                                                                       monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    train_rows, val_rows = films
    cfg = _config(tmp_path, candidates=("DenseNet121", "baseline-class_weight"),
                  download_weights=False)
    lines = []
    results = selection.compare_candidates(train_rows, val_rows, cfg, n_boot=10,
                                            report=lines.append)
    assert [r.name for r in results] == ["baseline-class_weight"]
    assert list(results.skipped) == ["DenseNet121-class_weight"]
    assert lines[0].startswith("DenseNet121-class_weight   skipped: no ImageNet weights for "
                               "DenseNet121 in ")
    assert lines[0].endswith("and downloads are off (PNEUMO_DOWNLOAD_WEIGHTS=0): place "
                             "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 there, "
                             "or drop it from PNEUMO_CANDIDATES")
    table = selection.comparison_table(results)
    assert list(table.index) == ["baseline-class_weight", "DenseNet121-class_weight"]
    assert table.loc["baseline-class_weight", "status"] == "trained"
    why = results.skipped["DenseNet121-class_weight"]
    assert table.loc["DenseNet121-class_weight", "status"] == f"skipped: {why}"
    assert table.loc["DenseNet121-class_weight"].drop("status").isna().all()
    assert selection.choose(results, train_rows, val_rows, cfg).name == "baseline-class_weight"
    assert not (tmp_path / "run" / "models" / "DenseNet121-class_weight" / "model.keras").exists()


def test_a_weights_file_in_the_cache_makes_the_candidate_train_and_compete(tmp_path, films,
                                                                           monkeypatch):
    """The stand-in for ImageNet's file: a DenseNet121 with random weights saved as HDF5
    under the file name Keras caches, with its hash as the expected one."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    spec = BACKBONES["DenseNet121"]
    cached = tmp_path / "keras" / "models" / spec.weights_file
    cached.parent.mkdir(parents=True)
    keras.utils.set_random_seed(5)
    stand_in = keras.applications.DenseNet121(include_top=False, weights=None,
                                              input_shape=(SIZE, SIZE, 3))
    stand_in.save(cached)
    md5 = hashlib.md5(cached.read_bytes()).hexdigest()
    monkeypatch.setitem(BACKBONES, "DenseNet121", dataclasses.replace(spec, md5=md5))
    calls = []
    monkeypatch.setattr(transfer, "_download", _offline(calls))
    train_rows, val_rows = films
    cfg = _config(tmp_path, candidates=("baseline-class_weight", "DenseNet121-oversample"))
    results = selection.compare_candidates(train_rows, val_rows, cfg, n_boot=10,
                                            report=lambda line: None)
    assert calls == [] and not results.skipped
    assert [r.name for r in results] == ["baseline-class_weight", "DenseNet121-oversample"]
    # Its frozen first convolution holds the cached file's weights, not a fresh draw.
    model = inference.load_model(results[1].out_dir, runtime="keras").model
    np.testing.assert_array_equal(model.get_layer("conv1_conv").get_weights()[0],
                                  stand_in.get_layer("conv1_conv").get_weights()[0])
    table = selection.compare(results)
    assert set(table["model"]) == {"baseline-class_weight", "DenseNet121-oversample"}
    assert selection.pick_best(table) in set(table["model"])
    checks = selection.learning_checks(table, floor=0.0)
    assert [line.split(":")[0] for line in checks] == ["DenseNet121", "baseline"]
    assert (selection.comparison_table(results)["status"] == "trained").all()


def test_candidates_come_from_the_config_and_the_environment(tmp_path, monkeypatch):
    cfg = RunConfig(run_dir=str(tmp_path))
    pairs = selection.candidate_pairs(cfg)
    assert pairs[:5] == [("baseline", "class_weight"), ("five_block", "none"),
                         ("five_block", "undersample"), ("five_block", "oversample"),
                         ("five_block", "class_weight")]
    assert pairs[5:] == [(b, "class_weight") for b in BACKBONES]
    monkeypatch.setenv("PNEUMO_CANDIDATES", "five_block-oversample, DenseNet121")
    monkeypatch.setenv("PNEUMO_DOWNLOAD_WEIGHTS", "1")
    cfg = RunConfig.from_params(run_dir=str(tmp_path), profile="full")
    assert selection.candidate_pairs(cfg) == [("five_block", "oversample"),
                                               ("DenseNet121", "oversample")]
    assert selection.candidate_recipe(cfg, model="DenseNet121").download_weights is True
    assert selection.candidate_recipe(cfg, model="DenseNet121").pretrain_epochs == 0
    assert selection.candidate_recipe(cfg).pretrain_epochs == cfg.pretrain_epochs
    with pytest.raises(ValueError, match="candidate 'VGG16-none'"):
        selection.candidate_pairs(RunConfig(run_dir=str(tmp_path), candidates=("VGG16-none",)))


def test_pneumo_train_refuses_a_backbone_without_weights_in_one_line(tmp_path, monkeypatch,
                                                                      capfd):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    code = cli.main(["train", "--data", str(SAMPLE_DIR), "--architecture", "ResNet50V2",
                     "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == cli.EXIT_USER_ERROR and out == ""
    assert err.strip().count("\n") == 0
    assert err.startswith("pneumo: error: no ImageNet weights for ResNet50V2 in ")
    assert err.strip().endswith("there, or choose another --architecture")
    assert not RunLayout(tmp_path / "run").clean_manifest.exists()  # refused before any work


def test_the_cli_knows_every_builder():
    assert set(cli.ARCHITECTURES) == set(experiment.BUILDERS)
    assert set(experiment.TRANSFER) == set(BACKBONES) < set(experiment.BUILDERS)


def test_the_card_and_deck_line_quotes_the_benchmark(tmp_path):
    from pneumo_helpers import report

    record = dict(image_size=224, batch_size=32, timed_steps=5, n_train=4448, n_val=742,
                  machine=dict(cpus=2),
                  backbones=[dict(backbone="DenseNet121", head_epoch_seconds=135.4,
                                  fine_tune_epoch_seconds=160.6)])
    (tmp_path / "transfer.json").write_text(json.dumps(record))
    line = report.transfer_cost(tmp_path / "transfer.json")
    assert "\n" not in line
    assert "4,448 training and 742 validation films at 224 px on 2 CPU cores" in line
    assert "DenseNet121 135 s (head) and 161 s (top layers fine-tuned)" in line
    assert "quality on new films is not measured" in line
    assert report.transfer_cost(tmp_path / "missing.json") is None
    assert report.transfer_cost() is not None  # the project's own benchmarks/results file


def test_the_deck_describes_a_transfer_model():
    from pneumo_helpers import deck

    text = deck._architecture(dict(model="DenseNet121", parameters=7_038_785, image_size=224,
                                   stages=dict(head=8, fine_tune=7)))
    assert text.startswith("DenseNet121 (keras.applications, ImageNet weights)")
    assert "7,038,785 parameters, 224 px" in text
