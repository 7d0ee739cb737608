"""`pneumo` against hostile and degenerate input: each case a user or an attacker tried.

Every test here failed before the fix it guards (a traceback, a wrong label, a lost or forged
output). The rule throughout: one line per problem naming the file and what to do, the rest of
a batch still predicted, nothing written half-way, nothing printed on success.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pneumo_helpers import cli, files, inference, models
from pneumo_helpers.config import SAMPLE_DIR

NORMAL_FILM = sorted((SAMPLE_DIR / "test" / "NORMAL").glob("*.jpeg"))[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    models.build_baseline_cnn(image_size=32, channels=1).save(folder / "model.keras")
    (folder / "val_metrics.json").write_text(json.dumps({"threshold": 0.4, "rule": "youden", "metrics": {}}))
    return folder


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. numeric options have ranges -------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["predict", NORMAL_FILM, "--batch-size", "-1"],
    ["predict", NORMAL_FILM, "--batch-size", "0"],
    ["predict", NORMAL_FILM, "--batch-size", "4096"],
    ["predict", NORMAL_FILM, "--batch-size", "many"],
    ["evaluate", SAMPLE_DIR, "--n-boot", "-5"],
])
def test_out_of_range_numbers_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as stop:
        cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and ("out of range" in err or "not a whole number" in err)
    assert "Traceback" not in err


def test_predict_refuses_a_bad_batch_size_in_the_library_too(model_dir):
    loaded = inference.load_model(model_dir)
    with pytest.raises(ValueError, match="batch_size"):
        loaded.predict(np.zeros((1, 32, 32), np.uint8), batch_size=-1)


# --- 2, 4, 8. one bad file never kills the batch nor gets a label ----------------------------

def _bomb_png(path):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def test_hostile_files_are_listed_and_the_rest_predicted(capsys, model_dir, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(NORMAL_FILM, folder / "good.jpeg")
    _bomb_png(folder / "bomb.png")
    data = NORMAL_FILM.read_bytes()
    (folder / "half.jpeg").write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    Image.fromarray(np.full((1, 1), 90, np.uint8)).save(folder / "dot.png")
    Image.fromarray(np.full((256, 256), 90, np.uint8)).save(folder / "blank.png")
    code, out, err = run(capsys, "predict", folder, "--model", model_dir,
                         "-o", tmp_path / "p.csv")
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False).set_index("file")
    assert code == cli.EXIT_SOME_FAILED
    assert table.loc[str(folder / "good.jpeg"), "label"] in ("NORMAL", "PNEUMONIA")
    reasons = {Path(f).name: e for f, e in table["error"].items() if e}
    assert set(reasons) == {"bomb.png", "half.jpeg", "dot.png", "blank.png"}
    assert "corrupt" in reasons["half.jpeg"] and "too small" in reasons["dot.png"]
    assert "blank" in reasons["blank.png"] and "pixels" in reasons["bomb.png"]
    assert (table.loc[[f for f in table.index if Path(f).name in reasons], "label"] == "").all()
    assert err.count("\n") == 4 and "Traceback" not in err


def test_a_read_error_in_one_file_is_a_row_not_a_crash(model_dir, tmp_path, monkeypatch):
    for name in ("a.jpeg", "b.jpeg"):
        shutil.copy(NORMAL_FILM, tmp_path / name)
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "a.jpeg":
            raise PermissionError(13, "Permission denied")
        return real(self)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    table = inference.predict_files(inference.load_model(model_dir),
                                    [tmp_path / "a.jpeg", tmp_path / "b.jpeg"])
    assert "Permission denied" in table["error"].iloc[0] and table["error"].iloc[1] == ""


# --- 3, 6. file names: non-UTF-8, formulas, dashes, newlines ------------------------------

def test_odd_file_names_are_written_safely(capsys, model_dir, tmp_path, monkeypatch):
    names = ["=cmd|x.jpeg", "+1+1.jpeg", "@SUM(1+1).jpeg", "-dash.jpeg",
             os.fsdecode(b"caf\xe9.jpeg")]
    for name in names:
        shutil.copy(NORMAL_FILM, tmp_path / name)
    (tmp_path / "bad\nskipped x: forged.jpeg").write_text("not an image")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "predict", "--model", model_dir, "-o", "p.csv", "--", *names,
                         "./-dash.jpeg", "bad\nskipped x: forged.jpeg")
    text = (tmp_path / "p.csv").read_text(encoding="utf-8")  # valid UTF-8, complete
    files = pd.read_csv(tmp_path / "p.csv")["file"].tolist()
    assert files[:3] == ["'=cmd|x.jpeg", "'+1+1.jpeg", "'@SUM(1+1).jpeg"]
    assert files[3] == "'-dash.jpeg" and files[4] == "caf\\xe9.jpeg"
    assert files[5] == "./-dash.jpeg"
    assert "\\n" in files[6] and text.count("\n") == 8  # header + 7 rows, no forged line
    assert code == cli.EXIT_SOME_FAILED and err.count("\n") == 1 and "\\n" in err


def test_a_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.csv"

    with pytest.raises(UnicodeEncodeError):
        with files.atomic_write(target) as handle:
            handle.write("file,probability\n")
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "boom")
    assert list(tmp_path.iterdir()) == []


def test_written_files_are_readable_by_others(tmp_path):
    # A shipped val_metrics.json written private (mkstemp's 0600) cannot be read by the
    # users of a system-wide install: the model then has no threshold.
    with files.atomic_write(tmp_path / "m.json") as handle:
        handle.write("{}")
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


# --- 5. a model folder of the wrong kind ------------------------------------------------------

def _save(folder, model, metrics=None, config=None):
    folder.mkdir()
    model.save(folder / "model.keras")
    if metrics is not None:
        (folder / "val_metrics.json").write_text(metrics)
    if config is not None:
        (folder / "config.json").write_text(config)
    return folder


def _image_model(outputs=1, activation="sigmoid", shape=(32, 32, 1), inputs=1):
    first = [keras.Input(shape) for _ in range(inputs)]
    x = first[0] if inputs == 1 else keras.layers.Concatenate()(first)
    if len(shape) == 3:
        x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(first, keras.layers.Dense(outputs, activation=activation)(x))


@pytest.mark.parametrize("make, message", [
    (lambda d: _save(d, _image_model(2, "softmax")), "one output"),
    (lambda d: _save(d, _image_model(1, None)), "not probabilities"),
    (lambda d: _save(d, _image_model(1, "relu")), "not probabilities"),
    (lambda d: _save(d, _image_model(shape=(1024,))), "square image input"),
    (lambda d: _save(d, _image_model(inputs=2)), "square image input"),
    (lambda d: _save(d, _image_model(), metrics='{"threshold": 5, "metrics": {}}'), "threshold 5"),
    (lambda d: _save(d, _image_model(), metrics='{"threshold": NaN, "metrics": {}}'), "threshold nan"),
    (lambda d: _save(d, _image_model(), metrics='{"threshold": "high", "metrics": {}}'),
     "[threshold]: expected a number or null, got 'high'"),
    (lambda d: _save(d, _image_model(), metrics='{"threshold": 0.4}'), "a metrics report is"),
    (lambda d: _save(d, _image_model(), config='{"image_size": 3'), "not valid JSON"),
])
def test_a_model_of_the_wrong_kind_is_refused_on_loading(capsys, tmp_path, make, message):
    keras.utils.set_random_seed(0)
    folder = make(tmp_path / "model")
    code, _, err = run(capsys, "predict", NORMAL_FILM, "--model", folder)
    assert code == cli.EXIT_USER_ERROR and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


# --- 7. output paths ----------------------------------------------------------------------------

def test_output_paths(capsys, model_dir, tmp_path):
    code, out, _ = run(capsys, "predict", NORMAL_FILM, "--model", model_dir,
                       "-o", tmp_path / "new" / "deeper" / "p.csv")
    assert code == 0 and (tmp_path / "new" / "deeper" / "p.csv").is_file()
    (tmp_path / "adir").mkdir()
    for argv, message in [
            (["predict", NORMAL_FILM, "-o", tmp_path / "adir"], "is a folder"),
            (["evaluate", SAMPLE_DIR, "-o", tmp_path / "adir"], "is a folder"),
            (["explain", NORMAL_FILM, "-o", tmp_path / "picture"], "cannot write a picture"),
            (["explain", NORMAL_FILM, "-o", tmp_path / "x.txt"], "cannot write a picture")]:
        code, _, err = run(capsys, *argv, "--model", model_dir)
        assert code == cli.EXIT_USER_ERROR and message in err and "Traceback" not in err
    assert not (tmp_path / "picture.png").exists()


# --- 9. quiet, fast, and the home folder left alone ------------------------------------------

def _pneumo(args, home, **env):
    code = ("import sys; from pneumo_helpers import cli; status = cli.main(sys.argv[1:]); "
            "print('TF=' + str('tensorflow' in sys.modules)); sys.exit(status)")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=300,
                          env={k: v for k, v in {**os.environ, "HOME": str(home), **env}.items()
                               if k not in ("KERAS_HOME", "MPLCONFIGDIR",
                                            "TF_CPP_MIN_LOG_LEVEL")})


def test_predict_with_the_shipped_model_is_silent_and_skips_tensorflow(tmp_path):
    result = _pneumo(["predict", NORMAL_FILM], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "TF=False" in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written into the home folder


def test_explain_with_keras_is_silent_too(tmp_path):
    result = _pneumo(["explain", NORMAL_FILM, "--method", "gradcam",
                      "-o", tmp_path / "out" / "g.png"], tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and (tmp_path / "out" / "g.png").is_file()
    assert not (tmp_path / "home").exists() or list((tmp_path / "home").iterdir()) == []
