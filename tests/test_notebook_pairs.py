"""Each notebook and its paired percent script (jupytext.toml) hold the same cells.

The notebook is what an analyst edits in JupyterLab (jupytext saves both); the script is the
diff a reviewer reads. Editing one without the other — a script changed by hand, a notebook
saved where jupytext is not installed — fails here: run `make notebooks` (or `jupytext --sync
notebooks/0*.ipynb`) to bring them together.
"""

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))


def test_every_notebook_has_a_script():
    assert NOTEBOOKS and all(nb.with_suffix(".py").is_file() for nb in NOTEBOOKS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_script_hold_the_same_cells(notebook):
    def cells(nb):
        return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", [])))
                for c in nb.cells]
    in_notebook = cells(jupytext.read(notebook))
    in_script = cells(jupytext.read(notebook.with_suffix(".py")))
    assert in_notebook == in_script, f"{notebook.name} and its .py disagree: make notebooks"
