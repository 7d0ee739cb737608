"""Compare training recipes over several seeds on one fixed patient-level validation split.

A difference between two recipes is believed only when it holds across seeds: one seed's ROC
AUC moves by about 0.01 on new films. Each recipe below is trained with every seed given, on the
full training split minus a patient-level validation split that stays the same for every
recipe and seed (``--split-seed``), then scored on validation and under every shift of
:mod:`pneumo_helpers.shifts` (acquisition and framing) at its own validation threshold.

    python tools/sweep.py --data ../shared/data/chest_xray --recipes mild framing \\
        --seeds 42 7 1 --external ../shared/data/chest_xray_external

Writes ``runs/sweep/<recipe>-s<seed>/`` (model folder + ``stress.csv``) and prints, per recipe,
the mean and spread over seeds of validation ROC AUC and specificity, of ROC AUC, sensitivity
and specificity under 15 % border crops, specificity under 20 % crops, CLAHE and an unsharp
mask, and the worst specificity over every shift. Runs already finished are read back, not
retrained, so running again over every recipe only re-scores them.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from pneumo_helpers import (evaluate, experiment, external, inference, interpret, shifts, ship,
                            transfer)
from pneumo_helpers.config import PROFILES, RunConfig
from pneumo_helpers.runs import ModelLayout

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ship.SWEEP_SUMMARY.parent
SUMMARY = ship.SWEEP_SUMMARY.name  # per recipe and seed; the shipped model card quotes it
# The full profile's recipe, which is also the shipped model's (ship.py); each recipe below
# changes it. Recipes that won nothing on new films were deleted (docs/generalisation.md).
BASE = RunConfig(profile="full").recipe
_ONE_VIEW = dict(consistency=0.0, pretrain_epochs=0)
RECIPES = {
    "mild": BASE.replace(augment="mild", **_ONE_VIEW),
    "framing": BASE.replace(augment="framing", **_ONE_VIEW),
    # Framing and acquisition augmentation, a consistency term between two views of each film,
    # after contrastive pretraining of the encoder: the shipped recipe.
    "framing-acq-consistency-ssl": BASE,
    # ImageNet backbones fine-tuned in two stages at their native size (docs/transfer.md); a
    # backbone whose weights cannot be had is skipped with one line.
    **{f"{backbone}-224": BASE.replace(architecture=backbone, augment="mild", image_size=224,
                                       **_ONE_VIEW) for backbone in experiment.TRANSFER},
}


def split(data_dir: str, split_seed: int, work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    train_rows, val_rows, _ = ship.split_rows(data_dir, split_seed=split_seed, work=work,
                                              val_fraction=PROFILES["full"]["val_fraction"])
    return train_rows, val_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7, 1])
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--external", type=Path, default=None,
                        help="a labelled folder of new films (NORMAL/, PNEUMONIA/ or test/...): "
                             "every model is also scored there (external.csv)")
    args = parser.parse_args(argv)
    train_rows, val_rows = split(args.data, args.split_seed, args.work)
    rows, outside = [], []
    ext_rows = external.labelled_rows(args.external) if args.external else None
    for recipe in args.recipes:
        for seed in args.seeds:
            out = args.work / f"{recipe}-s{seed}"
            if not ModelLayout(out).val_metrics.is_file():
                try:
                    experiment.run_candidate(train_rows, val_rows,
                                             RECIPES[recipe].replace(seed=seed), out_dir=out,
                                             name=out.name, cache_dir=args.work / "cache",
                                             verbose=2)
                except transfer.WeightsUnavailable as err:
                    print(f"{recipe}: skipped: {err.line('drop it from --recipes')}",
                          flush=True)
                    break
            loaded = inference.load_model(out)
            if ext_rows is not None:
                outside.append(dict(recipe=recipe, seed=seed, **_external(
                    loaded, ext_rows, args.work / "cache", out)))
                print(pd.DataFrame(outside).tail(1).round(3).to_string(index=False), flush=True)
            stress = interpret.stress(loaded, interpret.score(loaded, val_rows,
                                                              cache_dir=args.work / "cache"),
                                      path=out / "stress.csv")
            rows.append(dict(recipe=recipe, seed=seed, **shifts.summarize(stress)))
            print(pd.DataFrame(rows).tail(1).round(3).to_string(index=False), flush=True)
    if not rows:
        print("no recipe trained")
        return 1
    table = pd.DataFrame(rows)
    # Rows of recipes not run this time are kept, so the files cover every sweep so far; the
    # shipped model card quotes the summary.
    _write_kept(table, args.work / SUMMARY)
    print(table.drop(columns="seed").groupby("recipe").agg(["mean", "std"]).round(3).to_string())
    if outside:
        _write_kept(pd.DataFrame(outside), args.work / "external_summary.csv")
        print("On the external films (site threshold chosen there, in-sample):")
        print(pd.DataFrame(outside).drop(columns="seed").groupby("recipe")
              .agg(["mean", "std"]).round(3).to_string())
    return 0


def _external(loaded, rows: pd.DataFrame, cache: Path, out: Path) -> dict:
    """Scores on the external films at the validation threshold and at the threshold the same
    rule picks there (the site operating point, in-sample); predictions to ``out``."""
    films = interpret.score(loaded, rows, cache_dir=cache)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(dict(path=films.rows["path"], label=films.rows["label"],
                      probability=films.p)).to_csv(out / "external_predictions.csv", index=False)
    at_val = external.scores(films.y, films.p, threshold=loaded.threshold)
    site = evaluate.choose_threshold(films.y, films.p, rule=BASE.threshold_rule)
    at_site = external.scores(films.y, films.p, threshold=site)
    return dict(ext_roc_auc=at_val["roc_auc"], ext_sens_val_thr=at_val["sensitivity"],
                ext_spec_val_thr=at_val["specificity"], site_threshold=site,
                ext_spec_site_thr=at_site["specificity"])


def _write_kept(table: pd.DataFrame, target: Path) -> None:
    """Write ``table``, keeping rows of recipes it does not hold from an earlier run."""
    if target.is_file():
        kept = pd.read_csv(target)
        table = pd.concat([kept[~kept["recipe"].isin(table["recipe"])], table],
                          ignore_index=True)
    table.to_csv(target, index=False)


if __name__ == "__main__":
    sys.exit(main())
