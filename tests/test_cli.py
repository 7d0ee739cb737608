"""Tests for the `pneumo` command and pneumo_helpers.inference, on a tiny model saved here."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pneumo_helpers.image_files import collect_images
from pneumo_helpers import cli, files, inference, models
from pneumo_helpers.metrics_report import MetricsReport
from pneumo_helpers.config import SAMPLE_DIR


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = models.build_baseline_cnn(image_size=32, channels=1)
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({"image_size": 32}))
    (folder / "val_metrics.json").write_text(json.dumps({"threshold": 0.37, "rule": "youden", "metrics": {}}))
    return folder


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    film = next((SAMPLE_DIR / "test" / "NORMAL").glob("*.jpeg"))
    for name in ("a.jpeg", "b.jpeg"):
        shutil.copy(film, folder / name)
    gray = np.asarray(Image.open(film).convert("L").resize((40, 50)))
    alpha = np.random.default_rng(0).integers(0, 255, gray.shape, dtype=np.uint8)
    Image.fromarray(np.dstack([gray, gray, gray, alpha])).save(folder / "c.png")  # RGBA
    Image.fromarray(gray.astype(np.uint16) * 200).save(folder / "d.png")  # 16-bit
    return folder


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_folder_writes_csv_at_the_model_threshold(capsys, model_dir, images, tmp_path):
    code, _, err = run(capsys, "predict", images, "--model", model_dir, "-o", tmp_path / "p.csv")
    table = pd.read_csv(tmp_path / "p.csv")
    assert code == 0 and len(table) == 4 and table["probability"].between(0, 1).all()
    expected = np.where(table["probability"] >= 0.37, "PNEUMONIA", "NORMAL")
    assert (table["label"] == expected).all()
    assert "threshold 0.370" in _ and err == ""


def test_one_bad_file_still_predicts_the_rest(capsys, model_dir, images):
    (images / "broken.jpeg").write_text("not a jpeg")
    code, out, err = run(capsys, "predict", images, "--model", model_dir)
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert code == cli.EXIT_SOME_FAILED
    assert table["probability"].notna().sum() == 4
    assert "broken.jpeg" in err and err.count("\n") == 1


@pytest.mark.parametrize("make_args, message", [
    (lambda d, m: ["predict", d / "missing.png", "--model", m], "no such file"),
    (lambda d, m: ["predict", d / "empty", "--model", m], "holds no image files"),
    (lambda d, m: ["predict", d / "x.png", "--model", d / "fake.keras"], "not a Keras model"),
    (lambda d, m: ["predict", d / "x.png", "--model", d / "nowhere"], "no model at"),
    (lambda d, m: ["evaluate", d / "empty", "--model", m], "expected NORMAL/ and PNEUMONIA/"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path, model_dir, make_args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.keras").write_text("hello")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    code, _, err = run(capsys, *make_args(tmp_path, model_dir))
    assert code == cli.EXIT_USER_ERROR
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_evaluate_kaggle_layout_writes_metrics_with_intervals(capsys, model_dir, tmp_path):
    code, out, _ = run(capsys, "evaluate", SAMPLE_DIR, "--split", "val", "--model", model_dir,
                       "-o", tmp_path / "m.json", "--n-boot", 50)
    record = MetricsReport.read(tmp_path / "m.json")
    assert code == 0 and record.n == 16 and record.threshold == pytest.approx(0.37)
    assert record.split == "val" and record.provenance["model_sha256"] == \
        files.sha256(model_dir / "model.keras")
    assert record["roc_auc"].ci_low <= record["roc_auc"].value <= record["roc_auc"].ci_high
    assert "specificity" in out


@pytest.mark.parametrize("method", ["lime", "gradcam"])
def test_explain_writes_a_picture(capsys, model_dir, images, tmp_path, method):
    out_png = tmp_path / f"{method}.png"
    code, out, _ = run(capsys, "explain", images / "a.jpeg", "--method", method,
                       "--model", model_dir, "-o", out_png)
    assert code == 0 and out_png.stat().st_size > 1000 and "P(pneumonia)" in out


def test_console_script_help_documents_every_command():
    result = subprocess.run([sys.executable, "-m", "pneumo_helpers.cli", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert all(cmd in result.stdout for cmd in ("predict", "evaluate", "explain"))


def test_loaded_model_reads_threshold_and_size(model_dir):
    loaded = inference.load_model(model_dir)
    assert (loaded.image_size, loaded.channels, loaded.threshold) == (32, 1, 0.37)


def test_streamed_batches_match_one_call_and_keep_the_file_order(model_dir, images):
    (images / "broken.jpeg").write_text("not a jpeg")
    loaded = inference.load_model(model_dir)
    files = collect_images([images])
    # batch 2 with 5 files: two full batches, one padded, one bad file in the middle.
    streamed = inference.predict_files(loaded, files, batch_size=2, prefetch=1)
    assert streamed["file"].tolist() == [str(f) for f in files]
    good = [f for f in files if not f.endswith("broken.jpeg")]
    from pneumo_helpers.images import read_gray
    direct = loaded.predict(np.stack([read_gray(f, size=32) for f in good]), batch_size=64)
    np.testing.assert_allclose(streamed.set_index("file").loc[[str(f) for f in good],
                                                              "probability"], direct, atol=1e-6)
    assert streamed.set_index("file").loc[str(images / "broken.jpeg"), "error"] != ""


def test_predict_reads_dicom_like_the_same_pixels_as_png(capsys, model_dir, tmp_path):
    pytest.importorskip("pydicom")
    from hostile_files import dicom

    from pneumo_helpers.images import read_gray

    pixels = read_gray(next((SAMPLE_DIR / "test" / "NORMAL").glob("*.jpeg")), size=48)
    pixels[0, 0], pixels[0, 1] = 0, 255  # full range: the DICOM min-max stretch is exact
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(pixels).save(folder / "a.png")
    dicom(folder / "b.dcm", pixels)
    code, out, _ = run(capsys, "predict", folder, "--model", model_dir)
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert code == 0 and len(table) == 2
    assert table["probability"].iloc[0] == pytest.approx(table["probability"].iloc[1], abs=1e-6)
