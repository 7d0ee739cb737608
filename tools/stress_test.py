"""Compare saved models under acquisition shifts of one validation split (pneumo_helpers.shifts).

Each model is scored on the unshifted split and under every shift, at the threshold recorded
with it (chosen on that same unshifted split). Only compare models whose validation split is
the one given here: a model that trained on some of these images will look robust for the
wrong reason.

    python tools/stress_test.py pneumo_helpers/shipped_model runs/candidate/model \\
        --manifest runs/train-full/clean_manifest.csv -o runs/train-full/shifts.csv

Prints one table per model and a summary (worst and mean sensitivity and specificity over the
shifts); writes every row to the CSV.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from pneumo_helpers import inference, interpret
from pneumo_helpers.runs import RunLayout

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="saved model folders (model.keras + config)")
    parser.add_argument("--manifest", type=Path,
                        default=RunLayout(ROOT / "runs" / "train-full").clean_manifest,
                        help="clean manifest holding the split (default: make train-full's)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--cache", type=Path, default=None,
                        help="decoded-image cache folder (default: 'cache' beside the manifest)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="CSV of every row")
    args = parser.parse_args(argv)

    clean = pd.read_csv(args.manifest)
    rows = clean[clean["split"] == args.split].reset_index(drop=True)
    if rows.empty:
        parser.error(f"no rows with split == {args.split!r} in {args.manifest}")
    cache = args.cache or args.manifest.parent / "cache"
    tables = []
    for folder in args.models:
        loaded = inference.load_model(folder)
        table = interpret.stress(loaded, interpret.score(loaded, rows, cache_dir=cache))
        table.insert(0, "model", str(folder))
        print(f"\n{folder} (threshold {loaded.threshold:.3f}, {len(rows)} {args.split} images)")
        print(table.drop(columns="model").round(3).to_string(index=False))
        tables.append(table)
    every = pd.concat(tables, ignore_index=True)
    shifted = every[every["shift"] != "none"]
    summary = shifted.groupby("model", sort=False).agg(
        worst_recall=("recall", "min"), mean_recall=("recall", "mean"),
        worst_specificity=("specificity", "min"), mean_specificity=("specificity", "mean"),
        mean_roc_auc=("roc_auc", "mean"), mean_brier=("brier", "mean"))
    print("\nOver the shifts:\n" + summary.round(3).to_string())
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        every.to_csv(args.output, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
