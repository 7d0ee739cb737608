"""Tests of pneumo_helpers.readme: the README's results block, made from a run folder and put
between its markers."""

import json
from pathlib import Path

import pandas as pd
import pytest

from pneumo_helpers import readme


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run with validation and test metrics, its test split carved from training."""
    run = tmp_path / "runs" / "demo"
    (run / "metrics").mkdir(parents=True)
    pd.DataFrame({"split": ["train", "val", "test"], "label": ["NORMAL", "PNEUMONIA", "NORMAL"],
                  "patient": ["p1", "p2", "p3"], "orig_split": ["train"] * 3,
                  "path": ["/data/a.jpeg", "/data/b.jpeg", "/data/c.jpeg"]}
                 ).to_csv(run / "clean_manifest.csv", index=False)
    for split, value, n in (("val", 0.95, 83), ("test", 0.90, 95)):
        cell = {"value": value, "ci_low": value - 0.03, "ci_high": value + 0.02}
        (run / "metrics" / f"{split}.json").write_text(json.dumps(
            {"threshold": 0.4123, "rule": "youden", "n": n, "split": split, "model": "tiny",
             "metrics": {"accuracy": cell}}))
    return run


def test_readme_block_replacement(run_dir, tmp_path):
    target = tmp_path / "README.md"
    target.write_text("# pneumo\n\nintro\n\n<!-- results:start -->\nold table\n"
                      "<!-- results:end -->\n\n## Next\nkept\n")
    def refresh():
        readme.replace_readme_block(target, readme.readme_block(run_dir, readme_dir=tmp_path))
    refresh()
    text = target.read_text()
    assert "old table" not in text
    assert text.startswith("# pneumo\n\nintro\n\n<!-- results:start -->\n")
    assert text.endswith("<!-- results:end -->\n\n## Next\nkept\n")
    assert "| Accuracy | 0.950 (0.920–0.970) | 0.900 (0.870–0.920) |" in text
    assert "pneumo report runs/demo" in text
    assert "carved by patient" in text and "0.412 (rule `youden`)" in text
    refresh()
    assert target.read_text() == text                        # idempotent


def test_readme_without_markers_is_a_clear_error(tmp_path):
    target = tmp_path / "README.md"
    target.write_text("no markers here\n")
    with pytest.raises(ValueError, match="results:start"):
        readme.replace_readme_block(target, "table")
    assert target.read_text() == "no markers here\n"
    with pytest.raises(FileNotFoundError, match="not found"):
        readme.replace_readme_block(tmp_path / "missing.md", "table")
