"""Tests for pneumo_helpers.runner: the notebook series, on a tiny project made in tmp_path."""

import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from pneumo_helpers import runner
from pneumo_helpers.config import RunConfig


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A checkout with two notebooks: 01 writes its parameters into the run folder, 02 fails
    when asked to."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "pneumo_helpers").mkdir()
    folder = tmp_path / "notebooks"
    folder.mkdir()
    params = new_code_cell("RUN_DIR = None\nDATA_DIR = None")
    params.metadata["tags"] = ["parameters"]
    write = new_code_cell(
        "import json, os, sys\n"
        "run = RUN_DIR or os.environ['PNEUMO_RUN_DIR']\n"
        "json.dump(dict(run=RUN_DIR, data=DATA_DIR), open(os.path.join(run, 'seen.json'), 'w'))\n"
        "print('written', file=sys.stderr)\nprint('done')")
    kernel = dict(kernelspec=dict(name="python3", display_name="Python 3", language="python"),
                  language_info=dict(name="python"))
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 01"), params, write],
                                metadata=kernel), folder / "01_write.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell("raise ValueError('on purpose')")],
                                metadata=kernel), folder / "02_fail.ipynb")
    monkeypatch.chdir(tmp_path)
    # run_series(in_place=True) sets PNEUMO_RUN_DIR for its kernels: restored after the test.
    monkeypatch.setenv("PNEUMO_RUN_DIR", "")
    monkeypatch.delenv("PNEUMO_RUN_DIR")
    return tmp_path


def test_notebooks_dir_is_the_checkouts_and_refuses_elsewhere(project, tmp_path_factory,
                                                              monkeypatch):
    assert runner.notebooks_dir() == project / "notebooks"
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    with pytest.raises(runner.NotebookError, match="checkout of the project"):
        runner.notebooks_dir()


def test_start_notebook_builds_the_config_and_prints_it(tmp_path, capsys, monkeypatch):
    import matplotlib

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    with matplotlib.rc_context():  # the notebook look stays inside this test
        cfg = runner.start_notebook(run_dir=str(tmp_path / "run"), image_size=48)
    assert isinstance(cfg, RunConfig) and cfg.image_size == 48
    assert capsys.readouterr().out.strip() == cfg.summary()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"  # TensorFlow's start-up lines kept out


def test_strip_noise_keeps_what_was_computed(tmp_path):
    cell = new_code_cell("print(1)", outputs=[
        new_output("stream", name="stdout", text="1\n"),
        new_output("stream", name="stderr", text="noise\n")])
    cell.metadata.update(execution={"iopub.status.busy": "2026"}, papermill={"duration": 1},
                         tags=[])
    tagged = new_code_cell("x = 1")
    tagged.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, tagged])
    nb.metadata["papermill"] = {"parameters": {}}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    runner.strip_noise(tmp_path / "nb.ipynb")
    stripped = nbformat.read(tmp_path / "nb.ipynb", as_version=4)
    assert [o["text"] for o in stripped.cells[0].outputs] == ["1\n"]
    assert dict(stripped.cells[0].metadata) == {}
    assert stripped.cells[1].metadata["tags"] == ["parameters"]
    assert "papermill" not in stripped.metadata


def test_the_series_runs_into_the_run_folder_with_its_parameters(project, tmp_path):
    lines = []
    run, data = tmp_path / "run", tmp_path / "data"
    timings = runner.run_series(run, data=data, only=["01"], report=lines.append)
    assert list(timings) == ["01_write.ipynb"]
    assert json.loads((run / "seen.json").read_text()) == dict(run=str(run), data=str(data))
    executed = nbformat.read(run / "notebooks" / "01_write.ipynb", as_version=4)
    assert any("done" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert lines[0] == "--- 01_write" and "all notebooks ran" in lines[-1]
    assert (run / "logs").is_dir() and any((run / "logs").iterdir())   # the kernel's own log
    assert nbformat.read(project / "notebooks" / "01_write.ipynb", as_version=4).cells[2] \
        .get("outputs") == []   # the stored notebook is left alone


def test_in_place_refreshes_the_stored_notebook_without_noise(project, tmp_path):
    run = tmp_path / "run"
    runner.run_series(run, in_place=True, only=["01"], report=lambda line: None)
    assert json.loads((run / "seen.json").read_text()) == dict(run=None, data=None)
    stored = nbformat.read(project / "notebooks" / "01_write.ipynb", as_version=4)
    streams = [o for c in stored.cells for o in c.get("outputs", [])]
    assert [o["text"] for o in streams] == ["done\n"]               # stderr stripped
    assert "papermill" not in stored.metadata
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in stored.cells)


def test_a_failing_notebook_names_its_cell_and_the_copy_to_open(project, tmp_path):
    with pytest.raises(runner.NotebookError, match=r"02_fail\.ipynb failed in cell \d+: "
                                                   r"ValueError: on purpose; see .*02_fail"):
        runner.run_series(tmp_path / "run", only=["02"], report=lambda line: None)
