"""Render a run's executed notebooks as one PDF for reviewers, offline.

    pneumo report runs/sample        # this, the slide deck and the README results table

The five executed notebooks of ``RUN_DIR/notebooks/`` become one HTML document (title page,
contents, then each notebook on a new page) that headless Chromium prints to PDF in one call.
Why this path: nbconvert's own PDF route needs a TeX installation (gigabytes) and its WebPDF
route needs a Playwright browser download; Debian's ``chromium`` package is one
``apt-get install`` and prints HTML as a reader sees it in JupyterLab.

What a reader sees: markdown and outputs as executed; code inputs are hidden (``--show-code``
keeps them), and so are papermill's parameters cells, stderr streams (TensorFlow start-up
noise) and code cells left without output. The HTML loads nothing from the network: every
``<script>`` is removed (MathJax and require.js are not needed: the notebooks hold no math and
no widgets), images are embedded, and Chromium runs with networking features off and every host
name made unresolvable.

Needs: ``nbconvert`` and ``beautifulsoup4`` (the ``report`` extra) and a Chromium
(``apt-get install chromium``; or set ``PNEUMO_CHROMIUM`` to a Chrome/Chromium executable).
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
from bs4 import BeautifulSoup
from nbconvert import HTMLExporter

from .runs import RunLayout

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HIDDEN_TAGS = {"parameters", "injected-parameters", "remove-cell", "remove_cell", "ci-check"}
# Output types that would need JavaScript to show anything.
SCRIPT_MIMES = ("application/javascript", "application/vnd.jupyter.widget-view+json")
TITLE = "pneumo: pneumonia detection in pediatric chest X-rays"
DISCLAIMER = ("Not for clinical use: a research and teaching project. Its models have not been "
              "validated for diagnosis and must not be used to make decisions about patients.")

PRINT_CSS = """
@page { size: A4; margin: 15mm 14mm 16mm 14mm;
        @bottom-center { content: counter(page) " / " counter(pages);
                         font: 9pt sans-serif; color: #6b7280; } }
html, body { background: white; overflow: visible !important; height: auto !important; }
body.jp-Notebook { padding: 0; font-size: 10.5pt; }
.cover, .contents, section.notebook { break-before: page; }
.cover { break-before: auto; display: flex; flex-direction: column; justify-content: center;
         min-height: 240mm; text-align: center; font-family: sans-serif; color: #1f2937; }
.cover h1 { font-size: 28pt; margin: 0 0 10mm; }
.cover p { font-size: 13pt; margin: 2mm 0; }
.cover .muted, .contents .muted { color: #6b7280; }
.cover .warn { color: #b91c1c; font-weight: bold; margin-top: 18mm; }
.contents { font-family: sans-serif; color: #1f2937; }
.contents h1 { font-size: 22pt; }
.contents li { font-size: 13pt; margin: 0 0 5mm; }
.contents a { color: #1f4e79; text-decoration: none; }
.jp-Cell { padding: 2px 0 !important; }
.jp-OutputArea-output pre, .jp-RenderedText pre { white-space: pre-wrap; word-break: break-word;
                                                 font-size: 9pt; }
.jp-RenderedHTMLCommon table { font-size: 8.5pt; }
/* Headings stay with what follows and a markdown cell is never split (they are short). Only
   headings, not whole markdown cells, are kept with the next cell: chaining a paragraph to a
   tall figure moved both to the next page and left half pages blank. Figures are capped in
   height so one fits on a page with its paragraph. */
.jp-RenderedHTMLCommon h1, .jp-RenderedHTMLCommon h2, .jp-RenderedHTMLCommon h3
  { break-after: avoid; break-inside: avoid; }
.jp-MarkdownCell { break-inside: avoid; }
img { max-width: 100% !important; height: auto; }
.jp-OutputArea-output img { max-height: 115mm; width: auto; object-fit: contain; }
.jp-OutputArea-output img, .jp-RenderedHTMLCommon table, .jp-RenderedText
  { break-inside: avoid; }
a.anchor-link { display: none; }
"""


def find_chromium() -> str:
    """Path of a Chromium/Chrome executable: ``$PNEUMO_CHROMIUM`` or the first on ``PATH``.

    Raises:
        FileNotFoundError: none found; the message says how to install one.
    """
    explicit = os.environ.get("PNEUMO_CHROMIUM")
    if explicit:
        if shutil.which(explicit):
            return shutil.which(explicit)
        raise FileNotFoundError(f"PNEUMO_CHROMIUM={explicit!r} is not an executable")
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        "no Chromium found to print the notebooks to PDF; install it with "
        "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu) or point "
        "PNEUMO_CHROMIUM at a Chrome/Chromium executable")


def find_notebooks(run_dir: Path) -> list[Path]:
    """Executed notebooks ``0*.ipynb`` of a run, in order.

    ``run_dir`` is a run folder (its ``notebooks/`` subfolder is used) or a folder of notebooks.
    """
    run_dir = Path(run_dir)
    executed = RunLayout(run_dir).notebooks
    folder = executed if executed.is_dir() else run_dir
    notebooks = sorted(folder.glob("0*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no executed notebooks (0*.ipynb) in {folder}; run them first "
                                f"with `pneumo run --run-dir {run_dir}`")
    return notebooks


def _prepare(nb: nbformat.NotebookNode, *, show_code: bool) -> nbformat.NotebookNode:
    """Drop what a reader of the PDF does not need (see the module docstring)."""
    cells = []
    for cell in nb.cells:
        if HIDDEN_TAGS & set(cell.metadata.get("tags", [])):
            continue
        if cell.cell_type == "code":
            outputs = []
            for out in cell.outputs:
                if out.get("output_type") == "stream" and out.get("name") == "stderr":
                    continue
                if "data" in out:
                    for mime in SCRIPT_MIMES:
                        out["data"].pop(mime, None)
                    if not out["data"]:
                        continue
                outputs.append(out)
            cell.outputs = outputs
            if not outputs and not show_code:
                continue
        cells.append(cell)
    nb.cells = cells
    return nb


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """Text of the notebook's first markdown heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#+\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return fallback


def notebook_html(path: Path, *, show_code: bool = False) -> tuple[str, list[str], str]:
    """One executed notebook as ``(title, css blocks, body html)``, scripts removed."""
    nb = nbformat.read(path, as_version=4)
    title = _title(nb, path.stem)
    exporter = HTMLExporter(template_name="lab", embed_images=True,
                            exclude_input=not show_code, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    page, _ = exporter.from_notebook_node(_prepare(nb, show_code=show_code))
    soup = BeautifulSoup(page, "html.parser")
    for tag in soup.find_all(["script", "link", "iframe"]):
        tag.decompose()
    css = [style.string or "" for style in soup.head.find_all("style")] if soup.head else []
    main = soup.find("main") or soup.body
    return title, css, main.decode_contents()


def _meta(path: Path) -> str:
    """'ran 2026-11-22 00:02 UTC in 6 s' from papermill's metadata, or ''."""
    info = nbformat.read(path, as_version=4).metadata.get("papermill", {})
    try:
        end = dt.datetime.fromisoformat(info["end_time"]).strftime("%Y-%m-%d %H:%M UTC")
        return f"ran {end} in {float(info['duration']):.0f} s"
    except (KeyError, TypeError, ValueError):
        return ""


def build_html(notebooks: list[Path], *, run_name: str, show_code: bool = False,
               title: str = TITLE) -> str:
    """One self-contained HTML document: cover, contents, then every notebook."""
    parts, css, entries = [], None, []
    for i, path in enumerate(notebooks):
        nb_title, nb_css, body = notebook_html(path, show_code=show_code)
        css = css if css is not None else nb_css   # every notebook carries the same styles
        anchor = f"nb-{i + 1}"
        meta = _meta(path)
        entries.append(f'<li><a href="#{anchor}">{html.escape(nb_title)}</a>'
                       + (f' <span class="muted">({html.escape(meta)})</span>' if meta else "")
                       + "</li>")
        parts.append(f'<section class="notebook" id="{anchor}">{body}</section>')
    code_note = ("Code is shown." if show_code else
                 "Code cells are hidden; their outputs and all text are shown as executed. "
                 "The code is in notebooks/*.ipynb and pneumo_helpers/.")
    cover = (f'<div class="cover"><h1>{html.escape(title)}</h1>'
             f"<p>The executed notebooks of run <b>{html.escape(run_name)}</b></p>"
             f'<p class="muted">rendered {dt.date.today().isoformat()}</p>'
             f'<p class="muted">{html.escape(code_note)}</p>'
             f'<p class="warn">{html.escape(DISCLAIMER)}</p></div>')
    contents = ('<div class="contents"><h1>Contents</h1><ol>' + "".join(entries)
                + "</ol></div>")
    styles = "".join(f"<style>{block}</style>" for block in (css or [])) \
        + f"<style>{PRINT_CSS}</style>"
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)} — notebooks of {html.escape(run_name)}</title>"
            f"{styles}</head>"
            '<body class="jp-Notebook" data-jp-theme-light="true" '
            'data-jp-theme-name="JupyterLab Light">'
            f'{cover}{contents}{"".join(parts)}</body></html>')


def html_to_pdf(html_path: Path, pdf_path: Path, *, chromium: str | None = None,
                timeout: float = 300) -> Path:
    """Print a local HTML file to PDF with headless Chromium, with networking off.

    Raises:
        FileNotFoundError: no Chromium (see :func:`find_chromium`).
        RuntimeError: Chromium failed or wrote no PDF; the message holds its last log lines.
    """
    chromium = chromium or find_chromium()
    pdf_path = Path(pdf_path).resolve()
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    pdf_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="pneumo-chromium-") as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio",
            "--disable-breakpad", "--disable-domain-reliability", "--metrics-recording-only",
            "--disable-client-side-phishing-detection",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,"
            "MediaRouter",
            # The browser itself still asks for component updates and account state; with
            # every host name mapped to "not found" those requests fail inside Chromium and
            # no packet leaves the machine (checked with strace: no inet send or connect).
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}", "--no-pdf-header-footer",
            f"--print-to-pdf={pdf_path}", Path(html_path).resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Chromium did not finish printing {html_path} within "
                               f"{timeout:.0f} s") from None
    if done.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = "\n".join((done.stderr or "").strip().splitlines()[-10:])
        raise RuntimeError(f"Chromium ({chromium}) exited with {done.returncode} and wrote no "
                           f"PDF at {pdf_path}:\n{tail}")
    return pdf_path


def render(run_dir, out_pdf, *, show_code: bool = False, keep_html: Path | None = None,
           chromium: str | None = None) -> Path:
    """Executed notebooks of ``run_dir`` -> one PDF at ``out_pdf``; returns its path."""
    run_dir = Path(run_dir).resolve()
    chromium = chromium or find_chromium()   # fail before the slow HTML export
    notebooks = find_notebooks(run_dir)
    document = build_html(notebooks, run_name=run_dir.name, show_code=show_code)
    with tempfile.TemporaryDirectory(prefix="pneumo-html-") as tmp:
        html_path = Path(keep_html) if keep_html else Path(tmp) / "notebooks.html"
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(document, encoding="utf-8")
        return html_to_pdf(html_path, out_pdf, chromium=chromium)
