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


# === Round two (issue 24): one test per failure class ==========================================
# Against the shipped model (LiteRT: fast, no TensorFlow) unless a test needs Keras.

import signal  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402

import hostile_files as make  # noqa: E402

from pneumo_helpers import images as images_module  # noqa: E402
from pneumo_helpers.runs import ModelLayout  # noqa: E402


def predict_table(capsys, *inputs, model=None, extra=()):
    """Run ``pneumo predict`` to a CSV; (exit status, table indexed by file name, stderr)."""
    out = Path(tempfile.mkdtemp()) / "p.csv"
    argv = ["predict", *inputs, "-o", out, *(["--model", model] if model else []), *extra]
    code, _, err = run(capsys, *argv)
    table = pd.read_csv(out, keep_default_na=False) if out.exists() else None
    if table is not None:
        table.index = [Path(f).name for f in table["file"]]
    return code, table, err


def assert_abstained(table, name, *words):
    """``name`` got no probability and no label, and its error says each of ``words``."""
    row = table.loc[name]
    assert row["label"] == "" and row["probability"] == "", row.to_dict()
    for word in words:
        assert word in row["error"], row["error"]


def assert_one_line_each(err, n):
    assert err.count("\n") == n and "Traceback" not in err, err


# --- 1. a corrupt JPEG gets no label, whatever the decoder behind ------------------------------

@pytest.mark.parametrize("source", [make.NORMAL_FILM, make.PNEUMONIA_FILM])
def test_1_a_zero_byte_in_the_huffman_table_refuses_the_film(capsys, tmp_path, source):
    for at in range(0, 58, 4):
        make.jpeg_with_zero_inserted(tmp_path / f"c{at:02d}.jpeg", at, source)
    shutil.copy(source, tmp_path / "intact.jpeg")
    code, table, err = predict_table(capsys, tmp_path)
    assert code == cli.EXIT_SOME_FAILED and table.loc["intact.jpeg", "label"] != ""
    for name in table.index.drop("intact.jpeg"):
        assert_abstained(table, name, "JPEG")
    assert_one_line_each(err, len(table) - 1)


def test_1_no_fallback_decoder_is_reached(tmp_path, monkeypatch):
    path = make.jpeg_with_zero_inserted(tmp_path / "c.jpeg", 8)
    monkeypatch.setattr(images_module, "_open", lambda *a: pytest.fail("PIL was asked"))
    with pytest.raises(images_module.ImageError, match="libjpeg-turbo"):
        images_module.read_gray(path, size=112)


# --- 2. the model folder is checked as a whole ---------------------------------------------------

@pytest.fixture
def shipped_copy(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(inference.SHIPPED_MODEL_DIR, copy)
    return copy


def test_2_the_shipped_model_has_a_manifest_that_holds():
    listed = ModelLayout(inference.SHIPPED_MODEL_DIR).check_manifest()
    assert {"model.keras", "model.tflite", "export.json", "config.json",
            "site_threshold.json", "val_metrics.json"} <= set(listed)


@pytest.mark.parametrize("change, named", [
    (lambda d: (d / "model.tflite").write_bytes((d / "model.tflite").read_bytes()[:-8]),
     "model.tflite: differs"),
    (lambda d: (d / "config.json").unlink(), "config.json: listed in manifest.json but missing"),
    (lambda d: (d / "notes.txt").write_text("x"), "notes.txt: not listed"),
    (lambda d: (d / "manifest.json").write_text("[]"), "manifest.json: not a model manifest"),
])
def test_2_a_changed_file_in_the_model_folder_is_refused(capsys, shipped_copy, change, named):
    change(shipped_copy)
    code, table, err = predict_table(capsys, make.PNEUMONIA_FILM, model=shipped_copy)
    assert code == cli.EXIT_USER_ERROR and table is None
    assert named in err and "pneumo manifest" in err
    assert_one_line_each(err, 1)


def test_2_a_replaced_export_is_refused_without_a_manifest_too(capsys, shipped_copy, tmp_path):
    (shipped_copy / "manifest.json").unlink()
    (shipped_copy / "model.tflite").write_bytes(b"\x00" * 4 + (shipped_copy / "model.tflite")
                                                .read_bytes()[4:])
    code, _, err = predict_table(capsys, make.PNEUMONIA_FILM, model=shipped_copy)
    assert code == cli.EXIT_USER_ERROR and "model.tflite: not the export" in err


def test_2_evaluate_records_what_ran(capsys, tmp_path):
    code, _, _ = run(capsys, "evaluate", SAMPLE_DIR, "--n-boot", "0", "-o", tmp_path / "m.json")
    record = json.loads((tmp_path / "m.json").read_text())
    lite = inference.SHIPPED_MODEL_DIR / "model.tflite"
    assert code == 0 and record["runtime"] == "litert" and record["ran_file"] == "model.tflite"
    assert record["ran_sha256"] == files.sha256(lite)
    assert record["model_sha256"] == files.sha256(inference.SHIPPED_MODEL_DIR / "model.keras")
    assert record["manifest_sha256"] == files.sha256(inference.SHIPPED_MODEL_DIR
                                                     / "manifest.json")


def test_2_pneumo_manifest_writes_the_contract_for_a_folder(capsys, shipped_copy):
    (shipped_copy / "notes.txt").write_text("added on purpose")
    code, out, _ = run(capsys, "manifest", shipped_copy)
    assert code == 0 and "manifest.json" in out
    assert "notes.txt" in ModelLayout(shipped_copy).check_manifest()
    assert inference.load_model(shipped_copy).digests["notes.txt"] == files.sha256(
        shipped_copy / "notes.txt")


def test_2_calibrate_rewrites_the_manifest_it_checked(capsys, shipped_copy):
    before = json.loads((shipped_copy / "manifest.json").read_text())["files"]
    code, _, err = run(capsys, "calibrate", SAMPLE_DIR, "--split", "train", "--n-boot", "0",
                       "--model", shipped_copy)
    after = ModelLayout(shipped_copy).check_manifest()
    assert code in (0, cli.EXIT_SOME_FAILED) and "Traceback" not in err  # 1: gate abstained
    assert after["site_threshold.json"] != before["site_threshold.json"]
    assert after["site_threshold.json"] == files.sha256(shipped_copy / "site_threshold.json")
    assert inference.load_model(shipped_copy).threshold_source == "site"


# --- 3. one crafted file never kills the batch ----------------------------------------------------

def test_3_crafted_files_are_rows_and_the_good_films_are_kept(capsys, tmp_path):
    pytest.importorskip("pydicom")
    shutil.copy(make.NORMAL_FILM, tmp_path / "good.jpeg")
    make.png_text_bomb(tmp_path / "text-bomb.png")
    assert (tmp_path / "text-bomb.png").stat().st_size < 64_000
    for name, width in (("w0.dcm", "0"), ("wtext.dcm", "abc"), ("wnan.dcm", "nan")):
        make.dicom(tmp_path / name, make.film()[:256, :256], window_width=width)
    code, table, err = predict_table(capsys, tmp_path)
    assert code == cli.EXIT_SOME_FAILED and table.loc["good.jpeg", "label"] == "NORMAL"
    assert_abstained(table, "text-bomb.png", "crafted", "too large")
    for name in ("w0.dcm", "wtext.dcm", "wnan.dcm"):
        assert_abstained(table, name, "window width")
    assert_one_line_each(err, 4)


def test_3_an_unforeseen_failure_on_one_file_is_a_row(capsys, tmp_path, monkeypatch):
    for name in ("a.jpeg", "b.jpeg"):
        shutil.copy(make.NORMAL_FILM, tmp_path / name)
    real = inference.read_gray

    def read_gray(path, **kwargs):
        if Path(path).name == "a.jpeg":
            raise RuntimeError("a decoder bug")
        return real(path, **kwargs)
    monkeypatch.setattr(inference, "read_gray", read_gray)
    code, table, err = predict_table(capsys, tmp_path)
    assert code == cli.EXIT_SOME_FAILED and table.loc["b.jpeg", "label"] == "NORMAL"
    assert_abstained(table, "a.jpeg", "RuntimeError", "please report")


def test_3_a_bug_outside_the_files_has_its_own_status_and_one_line(capsys, monkeypatch):
    monkeypatch.setattr(inference, "predict_files", lambda *a, **k: 1 / 0)
    code, _, err = run(capsys, "predict", make.NORMAL_FILM)
    assert code == cli.EXIT_INTERNAL not in (cli.EXIT_SOME_FAILED, cli.EXIT_USER_ERROR)
    assert "ZeroDivisionError" in err and "PNEUMO_DEBUG" in err
    assert_one_line_each(err, 1)


def test_3_every_exit_status_is_documented_in_help():
    result = subprocess.run([sys.executable, "-m", "pneumo_helpers.cli", "--help"],
                            capture_output=True, text=True, timeout=60)
    for status in (0, cli.EXIT_SOME_FAILED, cli.EXIT_USER_ERROR, cli.EXIT_INTERNAL,
                   cli.EXIT_INTERRUPTED):
        assert f"\n  {status} " in result.stdout, result.stdout


# --- 4. bombs are refused from the header, before decoding --------------------------------------

def test_4_a_deflated_dicom_bomb_and_a_sparse_giant_are_refused_cheaply(capsys, tmp_path):
    pytest.importorskip("pydicom")
    import resource

    make.deflated_dicom_bomb(tmp_path / "bomb.dcm")
    make.sparse_jpeg(tmp_path / "giant.jpeg")
    assert (tmp_path / "bomb.dcm").stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, table, _ = predict_table(capsys, tmp_path / "bomb.dcm", tmp_path / "giant.jpeg")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert code == cli.EXIT_SOME_FAILED and grown_mb < 200, grown_mb
    assert_abstained(table, "bomb.dcm", "inflates to more than")
    assert_abstained(table, "giant.jpeg", "6,442,450,944 bytes")


# --- 5. outputs that are not regular files are refused, modes kept ------------------------------

def test_5_outputs_that_are_not_regular_files_are_refused(capsys, tmp_path):
    target = tmp_path / "target.csv"
    target.write_text("keep me\n")
    (tmp_path / "link.csv").symlink_to(target)
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "locked.csv").write_text("read-only\n")
    (tmp_path / "locked.csv").chmod(0o444)
    for name, message in (("link.csv", "symbolic link"), ("pipe.csv", "FIFO"),
                          ("locked.csv", "read-only")):
        code, _, err = run(capsys, "predict", make.NORMAL_FILM, "-o", tmp_path / name)
        assert code == cli.EXIT_USER_ERROR and message in err, err
        assert_one_line_each(err, 1)
    assert (tmp_path / "link.csv").is_symlink() and target.read_text() == "keep me\n"
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe.csv").st_mode)
    assert (tmp_path / "locked.csv").stat().st_mode & 0o777 == 0o444
    assert (tmp_path / "locked.csv").read_text() == "read-only\n"


def test_5_a_replaced_output_keeps_its_mode(capsys, tmp_path):
    out = tmp_path / "p.csv"
    out.write_text("old\n")
    out.chmod(0o600)
    code, _, _ = run(capsys, "predict", make.NORMAL_FILM, "-o", out)
    assert code == 0 and out.stat().st_mode & 0o777 == 0o600 and "NORMAL" in out.read_text()


# --- 6. what is not a chest film gets no label ----------------------------------------------------

NON_FILMS = {"noise.png": make.noise, "text.png": make.text_screenshot,
             "checkerboard.png": make.checkerboard, "photo.jpeg": make.colour_photo,
             "one-bit.png": make.one_bit_film, "two-grey.png": make.two_grey_film}


def test_6_things_that_are_not_chest_films_get_no_label(capsys, tmp_path):
    for name, generate in NON_FILMS.items():
        generate(tmp_path / name)
    shutil.copy(make.PNEUMONIA_FILM, tmp_path / "film.jpeg")
    code, table, err = predict_table(capsys, tmp_path)
    assert code == cli.EXIT_SOME_FAILED and table.loc["film.jpeg", "label"] == "PNEUMONIA"
    for name in NON_FILMS:
        assert_abstained(table, name, "not a chest film")
    assert_one_line_each(err, len(NON_FILMS))


# --- 7. orientation metadata is applied; inverted and turned films abstain ----------------------

def test_7_exif_orientation_is_applied_as_viewers_do(capsys, tmp_path):
    make.save(tmp_path / "upright.png", make.film())
    make.upside_down_with_exif(tmp_path / "stored-upside-down.png")
    code, table, _ = predict_table(capsys, tmp_path)
    assert code == 0
    assert table.loc["stored-upside-down.png", "probability"] == \
        table.loc["upright.png", "probability"]
    assert table.loc["stored-upside-down.png", "label"] == "NORMAL"


def test_7_inverted_and_turned_films_abstain(capsys, tmp_path):
    make.inverted_film(tmp_path / "inverted.png")
    make.rotated_film(tmp_path / "rotated.png")
    code, table, _ = predict_table(capsys, tmp_path)
    assert code == cli.EXIT_SOME_FAILED
    assert_abstained(table, "inverted.png", "inverted")
    assert_abstained(table, "rotated.png", "not a chest film")


# --- 8. explain: names with $, atomic pictures, never over the input ------------------------------

def test_8_explain_names_with_dollars_atomic_and_never_the_input(capsys, tmp_path, monkeypatch):
    film = tmp_path / "cost $x^2$ and $$.jpeg"
    shutil.copy(make.NORMAL_FILM, film)
    code, out, err = run(capsys, "explain", film, "--method", "gradcam", "-o", tmp_path / "e.png")
    assert code == 0 and (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG", err
    assert "$x^2$" in out
    code, _, err = run(capsys, "explain", film, "-o", film.with_suffix(".jpeg"))
    assert code == cli.EXIT_USER_ERROR and "is an input" in err
    assert film.read_bytes() == make.NORMAL_FILM.read_bytes()
    # A failure half-way through saving leaves the previous picture whole.
    before = (tmp_path / "e.png").read_bytes()
    import matplotlib.figure

    def broken(self, handle, **kwargs):
        handle.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    code, _, err = run(capsys, "explain", film, "--method", "gradcam", "-o", tmp_path / "e.png")
    assert code == cli.EXIT_USER_ERROR and "No space left" in err
    assert (tmp_path / "e.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([film.name, "e.png"])


# --- 9. nothing left out silently -----------------------------------------------------------------

def test_9_folder_search_takes_every_image_kind_and_skips_hidden_folders(capsys, tmp_path):
    pixels = make.film()
    make.save(tmp_path / "a.webp", pixels, lossless=True)
    make.save(tmp_path / "b.gif", pixels)
    shutil.copy(make.NORMAL_FILM, tmp_path / "c.jfif")
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    shutil.copy(make.NORMAL_FILM, tmp_path / ".git" / "objects" / "blob.jpeg")
    (tmp_path / "sub").mkdir()
    shutil.copy(make.NORMAL_FILM, tmp_path / "sub" / "d.jpeg")
    code, table, err = predict_table(capsys, tmp_path)
    assert code == 0 and sorted(table.index) == ["a.webp", "b.gif", "c.jfif", "d.jpeg"], err
    assert (table["label"] == "NORMAL").all()


def test_9_an_unreadable_subfolder_is_a_row(capsys, tmp_path, monkeypatch):
    shutil.copy(make.NORMAL_FILM, tmp_path / "a.jpeg")
    (tmp_path / "locked").mkdir()
    shutil.copy(make.NORMAL_FILM, tmp_path / "locked" / "hidden-from-us.jpeg")
    (tmp_path / "linked").symlink_to(tmp_path / "locked")
    locked = str(tmp_path / "locked")
    real_scandir, real_listdir = os.scandir, os.listdir

    def deny(real):
        def call(path="."):
            if os.fspath(path) == locked:
                raise PermissionError(13, "Permission denied", locked)
            return real(path)
        return call
    monkeypatch.setattr(os, "scandir", deny(real_scandir))
    monkeypatch.setattr(os, "listdir", deny(real_listdir))
    code, table, err = predict_table(capsys, tmp_path)
    assert code == cli.EXIT_SOME_FAILED and table.loc["a.jpeg", "label"] == "NORMAL"
    assert_abstained(table, "locked", "cannot be read", "left out")
    assert_abstained(table, "linked", "symbolic link to a folder")
    assert_one_line_each(err, 2)


# --- 10. evaluate records what it did -------------------------------------------------------------

def _labelled(folder, n_each, extra=None):
    for label, source in (("NORMAL", make.NORMAL_FILM), ("PNEUMONIA", make.PNEUMONIA_FILM)):
        (folder / label).mkdir(parents=True)
        sources = sorted(source.parent.glob("*.jpeg"))[:n_each]
        for film in sources:
            shutil.copy(film, folder / label / film.name)
    if extra:
        (folder / extra).mkdir()
        shutil.copy(make.NORMAL_FILM, folder / extra / "x.jpeg")
    return folder


def test_10_evaluate_records_a_split_only_when_there_is_one(capsys, tmp_path):
    folder = _labelled(tmp_path / "site", 30)
    code, _, err = run(capsys, "evaluate", folder, "--split", "val", "--n-boot", "0",
                       "-o", tmp_path / "m.json")
    record = json.loads((tmp_path / "m.json").read_text())
    assert code == 0 and record["split"] is None and "warning" not in record, err
    code, _, _ = run(capsys, "evaluate", SAMPLE_DIR, "--split", "val", "--n-boot", "0",
                     "-o", tmp_path / "v.json")
    assert json.loads((tmp_path / "v.json").read_text())["split"] == "val"


def test_10_a_tiny_sample_is_warned_about(capsys, tmp_path):
    folder = _labelled(tmp_path / "two", 1)
    code, _, err = run(capsys, "evaluate", folder, "--n-boot", "50", "-o", tmp_path / "m.json")
    record = json.loads((tmp_path / "m.json").read_text())
    assert code == 0 and "warning" in err and "say little" in record["warning"]
    assert_one_line_each(err, 1)


def test_10_an_extra_class_folder_is_refused(capsys, tmp_path):
    folder = _labelled(tmp_path / "three", 2, extra="COVID")
    code, _, err = run(capsys, "evaluate", folder, "-o", tmp_path / "m.json")
    assert code == cli.EXIT_USER_ERROR and "COVID" in err and "no known label" in err
    assert not (tmp_path / "m.json").exists()


# --- 11. an output that cannot be written fails before any prediction -----------------------------

def test_11_unwritable_output_fails_before_predicting(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "predict_files", lambda *a, **k: pytest.fail("predicted"))
    real = files._temporary

    def refuse(target):
        if target.parent.name == "read-only":
            raise PermissionError(13, "Permission denied")
        return real(target)
    monkeypatch.setattr(files, "_temporary", refuse)
    (tmp_path / "read-only").mkdir()
    for command in (["predict", make.NORMAL_FILM], ["evaluate", SAMPLE_DIR]):
        code, _, err = run(capsys, *command, "-o", tmp_path / "read-only" / "out.csv")
        assert code == cli.EXIT_USER_ERROR and "read-only/out.csv: cannot write there" in err
    code, _, err = run(capsys, "predict", make.NORMAL_FILM, "-o", tmp_path / ("n" * 256 + ".csv"))
    assert code == cli.EXIT_USER_ERROR and "longer than 255 bytes" in err


def test_11_a_valid_long_name_is_written(capsys, tmp_path):
    out = tmp_path / ("n" * 246 + ".csv")  # 250 bytes: fits, though its temporary is cut
    code, _, err = run(capsys, "predict", make.NORMAL_FILM, "-o", out)
    assert code == 0 and out.is_file() and sorted(os.listdir(tmp_path)) == [out.name], err


# --- 12. messages say what happened ---------------------------------------------------------------

def test_12_messages_name_what_the_file_is(capsys, tmp_path):
    pytest.importorskip("pydicom")
    make.fifo(tmp_path / "pipe.jpeg")
    make.symlink_loop(tmp_path / "loop.jpeg")
    make.dicom(tmp_path / "short.dcm", make.film()[:256, :256], short_by=1000)
    shutil.copy(make.NORMAL_FILM, tmp_path / "x: y.jpeg")
    (tmp_path / "odd: name.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    make.eps(tmp_path / "drawing.eps")
    code, table, err = predict_table(capsys, *sorted(tmp_path.iterdir()))
    assert code == cli.EXIT_SOME_FAILED and table.loc["x: y.jpeg", "label"] == "NORMAL"
    assert_abstained(table, "pipe.jpeg", "FIFO")
    assert_abstained(table, "loop.jpeg", "loops back")
    assert_abstained(table, "short.dcm", "shorter than its header")
    assert "install" not in table.loc["short.dcm", "error"]
    assert_abstained(table, "odd: name.png", "a damaged or truncated PNG file")
    assert_abstained(table, "drawing.eps", "not an image in a supported format")


def test_12_pil_never_reaches_formats_beyond_the_documented_ones(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: pytest.fail("gs"))
    with pytest.raises(images_module.ImageError, match="not an image in a supported format"):
        images_module.read_gray(make.eps(tmp_path / "d.eps"))


# --- 13. the environment: scratch folder, locale, closed stdout -----------------------------------

def _cli(args, **env):
    return subprocess.run([sys.executable, "-m", "pneumo_helpers.cli", *map(str, args)],
                          capture_output=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items()
                                  if k not in ("KERAS_HOME", "MPLCONFIGDIR")}, **env})


def test_13_a_planted_scratch_file_or_link_is_not_used(tmp_path):
    for kind in ("file", "link"):
        tmp = tmp_path / kind
        tmp.mkdir()
        elsewhere = tmp_path / f"{kind}-target"
        elsewhere.mkdir()
        planted = tmp / f"pneumo-{os.getuid()}"
        planted.write_text("x") if kind == "file" else planted.symlink_to(elsewhere)
        result = _cli(["predict", make.NORMAL_FILM], TMPDIR=str(tmp))
        assert result.returncode == 0 and result.stderr == b"", result.stderr
        assert list(elsewhere.iterdir()) == []


def test_13_non_ascii_names_under_the_c_locale(tmp_path):
    film = tmp_path / "réseau ü.jpeg"
    shutil.copy(make.NORMAL_FILM, film)
    (tmp_path / "manqué.jpeg").write_text("not a film")
    result = _cli(["predict", film, tmp_path / "manqué.jpeg"], LC_ALL="C", PYTHONUTF8="0")
    assert result.returncode == cli.EXIT_SOME_FAILED, result.stderr
    assert b"Traceback" not in result.stderr and result.stderr.count(b"\n") == 1
    assert b",NORMAL," in result.stdout


def test_13_a_closed_stdout_is_an_error_not_a_lost_table():
    result = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m",
                             "pneumo_helpers.cli", "predict", str(make.NORMAL_FILM)],
                            capture_output=False, stderr=subprocess.PIPE, timeout=300)
    assert result.returncode == cli.EXIT_USER_ERROR and b"standard output" in result.stderr


def test_13_a_reader_that_left_is_reported_once():
    read, write = os.pipe()
    os.close(read)  # `pneumo predict ... | head` once head has gone
    try:
        result = subprocess.run([sys.executable, "-m", "pneumo_helpers.cli", "predict",
                                 str(make.NORMAL_FILM)], stdout=write, stderr=subprocess.PIPE,
                                timeout=300)
    finally:
        os.close(write)
    assert result.returncode == cli.EXIT_USER_ERROR, result.stderr
    assert b"standard output was closed" in result.stderr and result.stderr.count(b"\n") == 1


# --- 14. no noise: libtiff is silenced, Ctrl-C is one line ---------------------------------------

def test_14_a_damaged_lzw_tiff_prints_no_libtiff_lines(capfd, tmp_path):
    make.damaged_lzw_tiff(tmp_path / "scan.tif")
    code = cli.main(["predict", str(tmp_path / "scan.tif")])
    out, err = capfd.readouterr()
    assert code == cli.EXIT_SOME_FAILED and "TIFF decoder reported damage" in out
    assert err.count("\n") == 1 and err.startswith("pneumo: skipped"), err


def test_14_ctrl_c_is_one_line_and_status_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(inference, "predict_files", interrupted)
    code, _, err = run(capsys, "predict", make.NORMAL_FILM)
    assert code == cli.EXIT_INTERRUPTED == 130 and "interrupted" in err
    assert_one_line_each(err, 1)


def test_14_a_real_sigint_is_one_line_and_status_130(tmp_path):
    # SIGINT as a terminal delivers it (a test runner started in the background may have
    # left it ignored, which children inherit).
    process = subprocess.Popen([sys.executable, "-c", "import signal, sys, time; "
                                "signal.signal(signal.SIGINT, signal.default_int_handler); "
                                "from pneumo_helpers import cli, inference; "
                                "inference.predict_files = lambda *a, **k: (print('ready', "
                                "flush=True), time.sleep(30)); "
                                "sys.exit(cli.main(sys.argv[1:]))", "predict",
                                str(make.NORMAL_FILM)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline() == b"ready\n"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.count(b"\n") == 1 and b"interrupted" in err, err


def test_the_gate_screens_a_whole_split_as_05_holds_it():
    """05 says how many films of each split pneumo would leave without a label."""
    import numpy as np

    from pneumo_helpers import gate, generators, obtain
    from pneumo_helpers.config import SAMPLE_DIR

    films = obtain.build_manifest(SAMPLE_DIR)
    films = films[films["split"] == "test"].reset_index(drop=True)
    images = generators.load_images(films, image_size=64, progress=False)[..., 0]
    noise = np.random.default_rng(0).integers(0, 256, (2, 64, 64)).astype(np.uint8)
    found = gate.abstentions(np.concatenate([images, noise]))
    assert set(found) >= {len(images), len(images) + 1}  # both noise images
    assert len(found) <= 2 + len(images) // 50  # real films pass (<= 2 %)
    assert all("not a chest film" in reason for i, reason in found.items() if i >= len(images))
