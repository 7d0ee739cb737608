"""External films and the site threshold: pneumo_helpers.external and `pneumo calibrate`."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pneumo_helpers import cli, external, inference
from pneumo_helpers.config import SAMPLE_DIR
from pneumo_helpers.runs import ModelLayout, SiteThreshold


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory):
    """The shipped model folder copied, so a site threshold can be written beside it."""
    folder = tmp_path_factory.mktemp("shipped")
    for item in inference.SHIPPED_MODEL_DIR.iterdir():
        if item.is_file() and item.name != "site_threshold.json":
            shutil.copy(item, folder / item.name)
    ModelLayout(folder).write_manifest()  # the folder as its owner changed it
    return folder


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_labelled_rows_of_a_dataset_folder_take_its_test_split():
    rows = external.labelled_rows(SAMPLE_DIR)
    assert rows["label"].value_counts().to_dict() == {"PNEUMONIA": 60, "NORMAL": 36}
    assert rows["path"].str.contains("/test/").all()
    assert rows["patient"].notna().all() and rows["sha256"].str.len().eq(64).all()


def test_labelled_rows_of_class_folders_and_bad_folders(tmp_path):
    assert len(external.labelled_rows(SAMPLE_DIR / "val")) == 16
    with pytest.raises(external.ExternalError, match="no such folder"):
        external.labelled_rows(tmp_path / "missing")
    (tmp_path / "NORMAL").mkdir()
    shutil.copy(next((SAMPLE_DIR / "val" / "NORMAL").iterdir()), tmp_path / "NORMAL" / "a.jpeg")
    with pytest.raises(external.ExternalError, match="expected NORMAL/ and PNEUMONIA/"):
        external.labelled_rows(tmp_path)
    (tmp_path / "PNEUMONIA").mkdir()
    with pytest.raises(external.ExternalError, match="PNEUMONIA: no images"):
        external.labelled_rows(tmp_path)


def test_sample_hash_names_films_and_labels():
    rows = external.labelled_rows(SAMPLE_DIR / "val")
    swapped = rows.assign(label=rows["label"].iloc[::-1].to_numpy())
    assert external.sample_hash(rows) == external.sample_hash(rows.iloc[::-1])
    assert external.sample_hash(rows) != external.sample_hash(swapped)


def test_site_threshold_refuses_too_few_films():
    rows = external.labelled_rows(SAMPLE_DIR)  # 36 NORMAL < MIN_PER_CLASS
    with pytest.raises(external.ExternalError, match="36 NORMAL"):
        external.choose_site_threshold(rows, np.linspace(0, 1, len(rows)), rule="sens>=0.95",
                                       model_sha256="x")


def test_gap_lines_compare_validation_with_external():
    from pneumo_helpers import evaluate

    y = np.array([0] * 20 + [1] * 20)
    good, worse = np.linspace(0, 1, 40), np.r_[np.linspace(0.3, 1, 20), np.linspace(0.2, 1, 20)]
    tables = {"val": evaluate.evaluate(y, good, threshold=0.5, n_boot=50),
              "external": evaluate.evaluate(y, worse, threshold=0.5, n_boot=50)}
    lines = external.gap_lines(tables)
    assert "validation 1.000" in lines[0] and "n = 40" in lines[0]
    assert external.gap_lines({"val": tables["val"]}) == []


def test_calibrate_writes_a_site_threshold_that_predict_then_uses(shipped_copy, capsys, tmp_path):
    code, out, err = run(capsys, "calibrate", str(SAMPLE_DIR), "--split", "train",
                         "--model", str(shipped_copy), "--n-boot", "50")
    # One of the sample's training films is one the chest-film gate abstains on (as pneumo
    # predict would): it is listed and left out of the sample the threshold is chosen on.
    assert code == cli.EXIT_SOME_FAILED and err.count("\n") == 2, err
    assert "NORMAL2-IM-0585-0001.jpeg" in err and "not a chest film" in err
    site = SiteThreshold.read(shipped_copy)
    assert site.n_films == 399 and (site.n_normal, site.n_pneumonia) == (103, 296)
    assert site.rule == "sens>=0.95" and 0 < site.threshold < 1
    assert site.sensitivity[0] >= 0.95 and site.sensitivity[1] <= site.sensitivity[0]
    assert f"site threshold {site.threshold:.3f}" in out
    loaded = inference.load_model(shipped_copy)
    assert loaded.threshold_source == "site" and loaded.threshold == site.threshold
    code, out, err = run(capsys, "predict", str(SAMPLE_DIR / "val"), "--model",
                         str(shipped_copy), "-o", str(tmp_path / "p.csv"))
    assert code == 0 and "site threshold" in out
    table = pd.read_csv(tmp_path / "p.csv")
    assert (table["label"] == np.where(table["probability"] >= site.threshold,
                                       "PNEUMONIA", "NORMAL")).all()


def test_a_site_threshold_for_another_model_file_is_ignored(shipped_copy, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(shipped_copy, folder)
    record = json.loads((folder / "site_threshold.json").read_text())
    (folder / "site_threshold.json").write_text(json.dumps(dict(record, model_sha256="0" * 64)))
    ModelLayout(folder).write_manifest()
    loaded = inference.load_model(folder)
    assert loaded.threshold_source == "validation" and loaded.site is None
    assert "validation" in loaded.threshold_note()


def test_a_broken_site_threshold_is_a_clear_error(shipped_copy, tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(shipped_copy, folder)
    (folder / "site_threshold.json").write_text("{not json")
    ModelLayout(folder).write_manifest()
    code, _, err = run(capsys, "predict", str(SAMPLE_DIR / "val"), "--model", str(folder))
    assert code == 2 and "site_threshold.json" in err and "Traceback" not in err
    record = dict(threshold=1.5, rule="r", model_sha256="x", sample_sha256="y", n_films=1,
                  n_normal=1, n_pneumonia=0, sensitivity=[1, 1, 1], specificity=[1, 1, 1],
                  roc_auc=[1, 1, 1])
    (folder / "site_threshold.json").write_text(json.dumps(record))
    ModelLayout(folder).write_manifest()
    code, _, err = run(capsys, "predict", str(SAMPLE_DIR / "val"), "--model", str(folder))
    assert code == 2 and "not in (0, 1)" in err


@pytest.mark.parametrize("case", ["missing", "one class", "too few"])
def test_calibrate_refuses_bad_samples(shipped_copy, tmp_path, capsys, case):
    folder = tmp_path / "site"
    if case == "one class":
        shutil.copytree(SAMPLE_DIR / "train" / "NORMAL", folder / "NORMAL")
    elif case == "too few":
        shutil.copytree(SAMPLE_DIR / "val", folder)
    code, _, err = run(capsys, "calibrate", str(folder), "--model", str(shipped_copy))
    assert code == 2 and "Traceback" not in err
    assert {"missing": "no such folder", "one class": "expected NORMAL/ and PNEUMONIA/",
            "too few": "too few films"}[case] in err


def test_candidates_are_scored_on_external_films_of_the_bundled_sample(shipped_copy, tmp_path):
    """04's external column: a candidate folder scored on labelled films it never saw."""
    from pneumo_helpers.experiment import CandidateResult

    loaded = inference.load_model(shipped_copy, runtime="keras")
    metrics = pd.DataFrame({"metric": ["roc_auc"], "value": [0.5]})
    candidate = CandidateResult(name="shipped", out_dir=shipped_copy, history=pd.DataFrame(),
                                metrics=metrics, threshold=loaded.threshold, config={})
    rows = external.labelled_rows(SAMPLE_DIR)  # the sample's test/ split
    table = external.score_candidates([candidate], rows, cache_dir=tmp_path)
    row = table.loc["shipped"]
    assert row["validation ROC AUC"] == 0.5  # read from the candidate, not recomputed
    p = inference.predict_files(loaded, rows["path"])["probability"].to_numpy()
    expected = external.scores(rows["label"], p, threshold=loaded.threshold)
    assert row["external ROC AUC"] == pytest.approx(expected["roc_auc"], abs=0.01)
    assert row["external ROC AUC"] > 0.8
