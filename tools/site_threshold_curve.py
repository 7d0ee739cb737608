"""How many labelled films a site needs before its own threshold beats the validation one.

Draws subsamples of ``n`` films per class from a labelled external folder, chooses the threshold
on each by the model's rule (what ``pneumo calibrate`` does), and scores it on the films of the
folder that were not drawn, beside the model's validation threshold on the same films.

    python tools/site_threshold_curve.py ../shared/data/chest_xray_external \\
        --model pneumo_helpers/shipped_model --sizes 10 20 30 50 75 100 --draws 200

Prints one row per size: mean ± sd of sensitivity and specificity on the rest, for both
thresholds, and the share of draws whose site threshold kept sensitivity >= the rule's target
there. Writes the table as JSON to ``benchmarks/results/site_threshold.json``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pneumo_helpers.recipe import THRESHOLD_RULE
from pneumo_helpers import evaluate, external, inference, report
from pneumo_helpers.labels import encode_labels

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 30, 50, 75, 100])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / report.SITE_CURVE)
    args = parser.parse_args(argv)
    loaded = inference.load_model(args.model)
    rows = external.labelled_rows(args.data)
    table = inference.predict_files(loaded, rows["path"])
    y, p = encode_labels(rows["label"]), table["probability"].to_numpy()
    rule = loaded.config.get("threshold_rule", THRESHOLD_RULE)
    target = float(rule.split(">=")[1]) if rule.startswith("sens>=") else None
    # The validation threshold: the folder's own (a site record would be circular here).
    val_threshold = inference.MetricsReport.read(
        inference.ModelLayout(loaded.path).val_metrics).threshold
    rng = np.random.default_rng(0)
    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    out = []
    for n in args.sizes:
        cells = []
        for _ in range(args.draws):
            drawn = np.concatenate([rng.choice(ix, n, replace=False) for ix in by_class])
            rest = np.setdiff1d(np.arange(len(y)), drawn)
            site = evaluate.choose_threshold(y[drawn], p[drawn], rule=rule)
            row = {}
            for name, t in (("site", site), ("validation", val_threshold)):
                s = external.scores(y[rest], p[rest], threshold=t)
                row[f"{name}_sensitivity"], row[f"{name}_specificity"] = (s["sensitivity"],
                                                                          s["specificity"])
            cells.append(row)
        cells = pd.DataFrame(cells)
        summary = {"films_per_class": n, "draws": args.draws}
        for column in cells:
            summary[column] = [round(float(cells[column].mean()), 4),
                               round(float(cells[column].std(ddof=1)), 4)]
        if target is not None:
            summary["site_keeps_sensitivity_share"] = round(
                float((cells["site_sensitivity"] >= target).mean()), 3)
        out.append(summary)
        print(json.dumps(summary), flush=True)
    args.out.write_text(json.dumps(dict(
        model_sha256=loaded.sha256, data=str(args.data), n_films=len(y), rule=rule,
        validation_threshold=val_threshold, rows=out), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
