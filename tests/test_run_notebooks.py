"""`pneumo run` (what `make run` calls): a newcomer sees progress and results, not warnings."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_running_notebooks_prints_progress_only(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pneumo_helpers.cli", "run", "--run-dir", str(tmp_path),
         "--only", "01", "02"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    shown = result.stdout + result.stderr
    for noise in ("Kernel is running over TCP", "WARNING", "I0000", "E0000"):
        assert noise not in shown, shown
    assert "01_obtain" in result.stdout and "02_scrub" in result.stdout
    assert str(tmp_path) not in shown  # paths are shown relative to the project
    # The kernels' own chatter is kept, in the run folder, for whoever needs it.
    assert (tmp_path / "logs" / "01_obtain.kernel.log").is_file()


def test_project_licence_is_an_spdx_string():
    # A TOML table here makes every `pip install -e .` print setuptools' deprecation box.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
