"""Tests for pneumo_helpers.notebooks_pdf: what the HTML keeps and drops, how Chromium is
found, its failures, and the printed PDF."""

import base64
import io
import re
from pathlib import Path

import nbformat
import pytest
from matplotlib.figure import Figure
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from pneumo_helpers import notebooks_pdf


def notebook(path, cells, **metadata):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells, metadata=metadata), path)
    return path


@pytest.fixture
def one(tmp_path):
    """One executed notebook: a heading, code with output, a widget, a hidden cell."""
    hidden = new_code_cell("SETTING = 2", outputs=[
        new_output("stream", name="stdout", text="hidden output\n")])
    hidden.metadata["tags"] = ["remove-cell"]
    return notebook(tmp_path / "run" / "notebooks" / "01_one.ipynb", [
        new_markdown_cell("Intro without a heading"),
        new_markdown_cell("## 01 · The first one"),
        new_code_cell("shown_code = 1", outputs=[
            new_output("execute_result", data={"text/plain": "'a result'"}, execution_count=1)]),
        new_code_cell("widget()", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"}})]),
        hidden,
    ], papermill={"end_time": "2026-11-22T00:02:00.5", "duration": 6.4})


def test_the_title_is_the_first_heading_and_code_is_hidden_unless_asked(one):
    title, css, body = notebooks_pdf.notebook_html(one)
    assert title == "01 · The first one" and css
    assert "a result" in body and "shown_code" not in body
    assert "hidden output" not in body and "model_id" not in body
    _, _, with_code = notebooks_pdf.notebook_html(one, show_code=True)
    assert "shown_code" in with_code and "SETTING" not in with_code


def test_a_notebook_without_a_heading_is_named_by_its_file(tmp_path):
    path = notebook(tmp_path / "02_plain.ipynb", [new_markdown_cell("just text")])
    assert notebooks_pdf.notebook_html(path)[0] == "02_plain"


def test_the_contents_say_when_each_notebook_ran(one, tmp_path):
    plain = notebook(tmp_path / "02_plain.ipynb", [new_markdown_cell("# Two")])
    page = notebooks_pdf.build_html([one, plain], run_name="demo", title="Demo")
    assert "ran 2026-11-22 00:02 UTC in 6 s" in page
    entries = re.findall(r'<li><a href="#nb-(\d)">([^<]+)</a>', page)
    assert entries == [("1", "01 · The first one"), ("2", "Two")]
    assert "<title>Demo — notebooks of demo</title>" in page
    assert notebooks_pdf.DISCLAIMER in page and "Code cells are hidden" in page
    assert "Code is shown." in notebooks_pdf.build_html([one], run_name="d", show_code=True)


def test_find_notebooks_takes_a_run_folder_or_a_folder_of_notebooks(one, tmp_path):
    assert notebooks_pdf.find_notebooks(tmp_path / "run") == [one]
    assert notebooks_pdf.find_notebooks(one.parent) == [one]
    notebook(tmp_path / "run" / "99_notes.ipynb", [])  # not a series notebook (0*)
    assert notebooks_pdf.find_notebooks(tmp_path / "run") == [one]


def test_find_chromium_follows_pneumo_chromium(monkeypatch, tmp_path):
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PNEUMO_CHROMIUM", str(fake))
    assert notebooks_pdf.find_chromium() == str(fake)
    monkeypatch.setenv("PNEUMO_CHROMIUM", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="PNEUMO_CHROMIUM"):
        notebooks_pdf.find_chromium()


def test_no_chromium_anywhere_says_how_to_install_one(monkeypatch, one, tmp_path):
    monkeypatch.delenv("PNEUMO_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="apt-get install -y chromium"):
        notebooks_pdf.render(tmp_path / "run", tmp_path / "out.pdf")
    assert not (tmp_path / "out.pdf").exists()


def test_a_chromium_that_writes_no_pdf_is_an_error_with_its_log(tmp_path):
    fake = tmp_path / "broken-chrome"
    fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n")
    fake.chmod(0o755)
    page = tmp_path / "page.html"
    page.write_text("<p>hello</p>")
    with pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*cannot open display"):
        notebooks_pdf.html_to_pdf(page, tmp_path / "out.pdf", chromium=str(fake))


def pdf_pages(path: Path) -> int:
    """Page objects in a PDF (matplotlib and Chromium write them as plain dictionaries)."""
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


@pytest.fixture
def executed_run(tmp_path) -> Path:
    """Two small 'executed' notebooks with outputs, as papermill leaves them."""
    buffer = io.BytesIO()
    png_fig = Figure(figsize=(2, 1.5))
    png_fig.add_subplot().plot([0, 1], [1, 0])
    png_fig.savefig(buffer, format="png", dpi=40)
    image = base64.b64encode(buffer.getvalue()).decode()
    folder = tmp_path / "runs" / "demo" / "notebooks"
    folder.mkdir(parents=True)
    for i, name in enumerate(["01_first", "02_second"], start=1):
        params = new_code_cell("SECRET_PARAMETER = 1")
        params.metadata["tags"] = ["parameters"]
        cells = [
            new_markdown_cell(f"# 0{i} · Notebook number {i}\n\nSome *text*."),
            params,
            new_code_cell("print('visible output')", outputs=[
                new_output("stream", name="stdout", text="visible output\n"),
                new_output("stream", name="stderr", text="tensorflow start-up noise\n")]),
            new_code_cell("plot()", outputs=[new_output(
                "display_data", data={"image/png": image, "text/plain": "<Figure>"})]),
            new_code_cell("silent = 1"),
        ]
        nbformat.write(new_notebook(cells=cells), folder / f"{name}.ipynb")
    return folder.parent


def test_notebooks_html_is_offline_and_hides_code(executed_run):
    notebooks = notebooks_pdf.find_notebooks(executed_run)
    assert [p.name for p in notebooks] == ["01_first.ipynb", "02_second.ipynb"]
    page = notebooks_pdf.build_html(notebooks, run_name="demo")
    assert "<script" not in page
    assert not re.search(r'(src|href)="https?:', page)          # nothing to fetch
    assert "visible output" in page and "data:image/png;base64," in page
    assert "SECRET_PARAMETER" not in page                       # parameters cell dropped
    assert "print(" not in page and "silent = 1" not in page    # code hidden
    assert "start-up noise" not in page                         # stderr dropped
    assert 'href="#nb-2">02 · Notebook number 2' in page        # contents entry


def test_find_notebooks_explains_an_empty_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="pneumo run"):
        notebooks_pdf.find_notebooks(tmp_path)


def test_notebooks_pdf_with_chromium(executed_run, tmp_path):
    try:
        notebooks_pdf.find_chromium()
    except FileNotFoundError:
        pytest.skip("Chromium is not installed (apt-get install chromium); the PDF step "
                    "of pneumo_helpers.notebooks_pdf cannot run here")
    out = notebooks_pdf.render(executed_run, tmp_path / "notebooks.pdf")
    assert out.read_bytes().startswith(b"%PDF")
    assert pdf_pages(out) >= 4          # cover, contents, one page per notebook at least
