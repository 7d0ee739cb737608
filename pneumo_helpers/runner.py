"""Running the notebook series: each notebook in a fresh kernel, in order, with papermill.

What ``pneumo run`` (``make run``) and ``pneumo report --data`` do. Each notebook reads what the
one before wrote into the run folder, so the series runs top to bottom and any notebook can be
re-run alone (``only``). Executed copies land in ``<run>/notebooks/``; with ``in_place`` the
copies in ``notebooks/`` are refreshed instead (what nbval compares and reviewers see on
GitHub), without stderr streams, timings or injected parameters.

A user sees progress and results: each kernel's own start-up chatter (ipykernel's note about
unencrypted local TCP, TensorFlow's C++ lines) goes to ``<run>/logs/<notebook>.kernel.log``.
Needs a checkout of the project (``notebooks/``) and the ``dev`` extra (papermill, ipykernel).
Inside each notebook, :func:`start_notebook` is the first call.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .config import RunConfig, project_root, shown_path
from .runs import RunLayout

__all__ = ["NotebookError", "notebooks_dir", "run_series", "start_notebook", "strip_noise"]


def start_notebook(**params) -> RunConfig:
    """The opening of every notebook: the run config from its parameters, printed.

    Keeps TensorFlow's C++ start-up lines out of the outputs (call it before importing the
    modules that load TensorFlow), gives figures the project's look, inline as JPEG, and prints
    :meth:`RunConfig.summary`. ``params``: the notebook's parameters, as for
    :meth:`RunConfig.from_params`. Every notebook has the same three, which papermill (and
    ``pneumo run``) inject; None takes ``$PNEUMO_<NAME>``, else the bundled sample:

    * ``data_dir``: the dataset folder in the Kaggle layout (``train/``, ``val/``, ``test/``);
    * ``run_dir``: the folder for every artifact of the run, default ``runs/<profile>``;
    * ``profile``: ``"sample"`` (small, fast) or ``"full"``; default ``"full"`` with a
      ``data_dir``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from . import plots

    plots.style(notebook=True)
    cfg = RunConfig.from_params(**params)
    print(cfg.summary())
    return cfg


class NotebookError(RuntimeError):
    """A notebook that failed or cannot be found; the message names it and where to look."""


def notebooks_dir() -> Path:
    """The project's ``notebooks/`` folder.

    Raises:
        NotebookError: not in a checkout of the project.
    """
    folder = project_root() / "notebooks"
    if not any(folder.glob("0*.ipynb")):
        raise NotebookError(f"no notebooks in {shown_path(folder)}: `pneumo run` works in a "
                            "checkout of the project (git clone, then make run)")
    return folder


def strip_noise(path: Path) -> None:
    """Remove stderr streams, execution timings and empty metadata from a stored notebook, so
    a re-run changes only what it computed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for key in ("execution", "papermill"):
            cell.metadata.pop(key, None)
        if not cell.metadata.get("tags", True):
            del cell.metadata["tags"]
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (
                o.get("output_type") == "stream" and o.get("name") == "stderr")]
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, path)


def _kernel_manager(log_file: Path):
    """A papermill kernel manager whose kernel writes its own stderr to ``log_file``."""
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            log_file.parent.mkdir(parents=True, exist_ok=True)
            kw["stderr"] = open(log_file, "ab")  # the kernel process keeps it open
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def run_series(run_dir, *, data=None, profile: str | None = None, in_place: bool = False,
               only=None, report=print) -> dict[str, float]:
    """Execute the notebooks in order into ``run_dir``.

    Args:
        run_dir: the run folder. data: dataset folder (Kaggle layout); default: the bundled
            sample. profile: ``"sample"`` or ``"full"`` (default: full with ``data``).
        in_place: refresh the stored notebooks in ``notebooks/`` (the kernels then read the
            run folder from ``PNEUMO_RUN_DIR``: no injected parameters cell is stored).
        only: notebook name prefixes, e.g. ``["04", "05"]``.
        report: gets one progress line per notebook.

    Returns:
        Seconds per notebook, by file name.

    Raises:
        NotebookError: a notebook failed (names the cell and the executed copy to open).
    """
    import papermill

    source = notebooks_dir()
    layout = RunLayout(Path(run_dir).resolve())
    params = {"RUN_DIR": str(layout.root)}
    if data:
        params["DATA_DIR"] = str(Path(data).resolve())
    if profile:
        params["PROFILE"] = profile
    if in_place:
        os.environ["PNEUMO_RUN_DIR"] = str(layout.root)
        params = {}
    out_dir = source if in_place else layout.notebooks
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = [nb for nb in sorted(source.glob("0*.ipynb"))
                 if not only or nb.name.startswith(tuple(only))]
    timings = {}
    for nb in notebooks:
        start = time.time()
        report(f"--- {nb.stem}")
        try:
            papermill.execute_notebook(
                nb, out_dir / nb.name, parameters=params, cwd=source, kernel_name="python3",
                progress_bar=False, kernel_manager_class=_kernel_manager(
                    layout.kernel_log(nb.stem)))
        except papermill.PapermillExecutionError as exc:
            raise NotebookError(f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: "
                                f"{exc.evalue}; see {shown_path(out_dir / nb.name)}") from None
        if in_place:
            strip_noise(out_dir / nb.name)
        timings[nb.name] = time.time() - start
        report(f"    done in {timings[nb.name]:.0f} s")
    report(f"all notebooks ran in {sum(timings.values()):.0f} s; artifacts in "
           f"{shown_path(layout.root)}")
    return timings
