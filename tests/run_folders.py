"""A small run folder, as the series leaves it, for the report, deck and README tests."""

import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from pneumo_helpers import deck
from pneumo_helpers.metrics_report import METRIC_LABELS


def png(path: Path) -> None:
    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=40)


def metric_block(base: float, n: int, split: str) -> dict:
    return {"threshold": 0.4123, "rule": "youden", "n": n, "split": split,
            "metrics": {name: {"value": base - 0.01 * i, "ci_low": base - 0.01 * i - 0.03,
                               "ci_high": base - 0.01 * i + 0.02}
                        for i, name in enumerate(METRIC_LABELS)}}


def demo_run(root: Path) -> Path:
    """A complete little run under ``root``: manifests, metrics, one model, every figure but
    explanations."""
    run = root / "runs" / "demo"
    rows = [("train", "NORMAL", "p1", "train"), ("train", "PNEUMONIA", "p2", "train"),
            ("train", "PNEUMONIA", "p3", "train"), ("val", "NORMAL", "p4", "train"),
            ("val", "PNEUMONIA", "p5", "val"), ("test", "NORMAL", "p6", "train"),
            ("test", "PNEUMONIA", "p7", "train")]
    clean = pd.DataFrame(rows, columns=["split", "label", "patient", "orig_split"])
    clean["path"] = [f"/data/{i}.jpeg" for i in range(len(clean))]
    run.mkdir(parents=True)
    clean.to_csv(run / "clean_manifest.csv", index=False)
    clean.to_csv(run / "manifest.csv", index=False)
    pd.DataFrame({"path": ["/data/x.jpeg"], "reason": ["duplicate of another file"]}).to_csv(
        run / "dropped.csv", index=False)
    (run / "metrics").mkdir()
    for split, base, n in (("val", 0.95, 83), ("test", 0.90, 95)):
        (run / "metrics" / f"{split}.json").write_text(json.dumps(
            {**metric_block(base, n, split), "model": "tiny"}))
    (run / "models" / "tiny").mkdir(parents=True)
    (run / "models" / "tiny" / "config.json").write_text(json.dumps(
        {"image_size": 64, "balance": "class_weight", "parameters": 12345,
         "versions": {"keras": "3.15.0"}}))
    for key in ("class_balance", "confusion", "roc"):
        png(run / "figures" / f"{deck.FIGURES[key]}.png")
    return run
