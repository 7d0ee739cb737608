"""Execute the notebook series in order, each in a fresh kernel, with papermill.

Two uses:

    python tools/run_notebooks.py --run-dir runs/sample                 # make run
    python tools/run_notebooks.py --run-dir runs/full --data DIR        # make run DATA=DIR
    python tools/run_notebooks.py --run-dir runs/store --in-place       # make notebooks

The first writes executed copies to ``<run-dir>/notebooks/`` next to every artifact. The
``--in-place`` form refreshes the outputs stored in ``notebooks/`` (what nbval compares and
reviewers see on GitHub); it drops stderr streams, whose TensorFlow start-up lines vary from run
to run and carry nothing for a reader.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill
from jupyter_client import AsyncKernelManager

from pneumo_helpers.runs import RunLayout

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class LoggedKernelManager(AsyncKernelManager):
    """A kernel whose own stderr goes to a log file instead of the terminal.

    The kernel process writes start-up chatter there that is not the notebook's output:
    ipykernel's "Kernel is running over TCP without encryption" (a local kernel on a loopback
    port, the normal case for papermill) and TensorFlow's C++ start-up lines. Cell output,
    errors included, still reaches the notebook; the log is kept next to the run's notebooks.
    """

    log_file: Path | None = None

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            kw["stderr"] = open(self.log_file, "ab")  # the kernel process keeps it open
        return await super()._async_launch_kernel(kernel_cmd, **kw)


def strip_noise(path: Path) -> None:
    """Remove stderr streams, execution timings and empty metadata from a stored notebook, so
    a re-run changes only what it computed."""
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, type=Path, help="folder for the artifacts")
    parser.add_argument("--data", help="dataset folder (Kaggle layout); default: bundled sample")
    parser.add_argument("--profile", choices=["sample", "full"],
                        help="default: full with --data, else sample")
    parser.add_argument("--in-place", action="store_true",
                        help="store outputs in notebooks/ instead of <run-dir>/notebooks/")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 04 05")
    args = parser.parse_args(argv)

    run_dir = args.run_dir.resolve()
    params = {"RUN_DIR": str(run_dir)}
    if args.data:
        params["DATA_DIR"] = str(Path(args.data).resolve())
    if args.profile:
        params["PROFILE"] = args.profile
    if args.in_place:
        # No injected parameters cell in the stored copies: the kernel reads the environment.
        os.environ["PNEUMO_RUN_DIR"] = str(run_dir)
        params = {}
    out_dir = NOTEBOOKS if args.in_place else RunLayout(run_dir).notebooks
    out_dir.mkdir(parents=True, exist_ok=True)

    notebooks = sorted(NOTEBOOKS.glob("0*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name.startswith(tuple(args.only))]
    timings = {}
    for nb in notebooks:
        start = time.time()
        print(f"--- {nb.name} -> {out_dir / nb.name}", flush=True)
        LoggedKernelManager.log_file = RunLayout(run_dir).kernel_log(nb.stem)
        try:
            papermill.execute_notebook(
                nb, out_dir / nb.name, parameters=params,
                cwd=NOTEBOOKS, kernel_name="python3", progress_bar=False,
                kernel_manager_class=LoggedKernelManager)
        except papermill.PapermillExecutionError as exc:
            print(f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                  f"see {out_dir / nb.name}", file=sys.stderr)
            return 1
        if args.in_place:
            strip_noise(out_dir / nb.name)
        timings[nb.name] = time.time() - start
        print(f"    done in {timings[nb.name]:.0f} s", flush=True)
    print(f"all notebooks ran in {sum(timings.values()):.0f} s; artifacts in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
