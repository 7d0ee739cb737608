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

import numpy as np
import pandas as pd

from pneumo_helpers import (evaluate, experiment, external, generators, inference, shifts, ship,
                            transfer)
from pneumo_helpers.balance import encode_labels
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
    parser.add_argument("--tta", action="store_true",
                        help="also score each model with test-time augmentation: the mean of "
                             "its probabilities on the film as given, cropped 5 %% per side "
                             "and zoomed out 5 %% per side (threshold re-chosen on validation)")
    parser.add_argument("--ensemble", action="store_true",
                        help="also score, per recipe, the average of its seeds' probabilities "
                             "(threshold re-chosen on the unshifted validation split)")
    args = parser.parse_args(argv)
    train_rows, val_rows = split(args.data, args.split_seed, args.work)
    rows, members, sizes, outside = [], {}, {}, []
    ext_rows = external.labelled_rows(args.external) if args.external else None
    for recipe in args.recipes:
        size = RECIPES[recipe].image_size
        images = sizes[recipe] = generators.load_images(val_rows, image_size=size,
                                                        cache_dir=args.work / "cache")[..., 0]
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
            members.setdefault(recipe, []).append(loaded)
            predict, threshold = loaded.predict, loaded.threshold
            if args.tta:
                def tta(x, loaded=loaded):
                    return np.mean([loaded.predict(view) for view in
                                    (x, shifts.apply_shift(x, "crop 5% per side"),
                                     shifts.apply_shift(x, "zoom out, pad 5% per side"))],
                                   axis=0)
                threshold = evaluate.choose_threshold(encode_labels(val_rows["label"]),
                                                      tta(images),
                                                      rule=BASE.threshold_rule)
                predict = tta
            if ext_rows is not None:
                outside.append(dict(recipe=recipe, seed=seed, **_external(
                    predict, ext_rows, size, args.work / "cache", threshold, out)))
                print(pd.DataFrame(outside).tail(1).round(3).to_string(index=False), flush=True)
            stress = shifts.stress_test(predict, images, val_rows["label"], threshold=threshold)
            stress.to_csv(out / ("stress-tta.csv" if args.tta else "stress.csv"), index=False)
            rows.append(dict(recipe=recipe, seed=seed, **shifts.summarize(stress)))
            print(pd.DataFrame(rows).tail(1).round(3).to_string(index=False), flush=True)
    if not rows:
        print("no recipe trained")
        return 1
    table = pd.DataFrame(rows)
    if not args.tta:  # the shipped model card quotes this file: plain models only
        # Rows of recipes not run this time are kept, so the file covers every sweep so far.
        target = args.work / SUMMARY
        if target.is_file():
            kept = pd.read_csv(target)
            kept = kept[~kept["recipe"].isin(table["recipe"])]
            pd.concat([kept, table], ignore_index=True).to_csv(target, index=False)
        else:
            table.to_csv(target, index=False)
    summary = table.drop(columns="seed").groupby("recipe").agg(["mean", "std"]).round(3)
    print(summary.to_string())
    if outside:
        _write_kept(pd.DataFrame(outside), args.work / "external_summary.csv")
        print("On the external films (site threshold chosen there, in-sample):")
        print(pd.DataFrame(outside).drop(columns="seed").groupby("recipe")
              .agg(["mean", "std"]).round(3).to_string())
    if args.ensemble:
        y = encode_labels(val_rows["label"])
        for recipe, loaded in members.items():
            images = sizes[recipe]

            def average(x, loaded=loaded):
                return np.mean([m.predict(x) for m in loaded], axis=0)
            threshold = evaluate.choose_threshold(y, average(images), rule=BASE.threshold_rule)
            stress = shifts.stress_test(average, images, y, threshold=threshold)
            stress.to_csv(args.work / f"{recipe}-ensemble-stress.csv", index=False)
            print(f"{recipe}: average of seeds {args.seeds}, threshold {threshold:.3f}")
            if ext_rows is not None:
                ext = _external(average, ext_rows, images.shape[1], args.work / "cache",
                                threshold, args.work / f"{recipe}-ensemble")
                print("  external:", {k: round(v, 3) for k, v in ext.items()})
            print(stress.round(3).to_string(index=False))
        print(markdown(args.work, list(members), args.seeds))
    return 0


def _external(predict, rows: pd.DataFrame, size: int, cache: Path, threshold: float,
              out: Path) -> dict:
    """Scores on the external films at the validation threshold and at the threshold the same
    rule picks there (the site operating point, in-sample); predictions to ``out``."""
    images = generators.load_images(rows, image_size=size, cache_dir=cache)[..., 0]
    p = predict(images)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(dict(path=rows["path"], label=rows["label"], probability=p)).to_csv(
        out / "external_predictions.csv", index=False)
    at_val = external.scores(rows["label"], p, threshold=threshold)
    site = evaluate.choose_threshold(rows["label"], p, rule=BASE.threshold_rule)
    at_site = external.scores(rows["label"], p, threshold=site)
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


# The shifts of docs/generalisation.md's table: specificity at the unchanged threshold, with ROC
# AUC in brackets where it says most.
TABLE_SHIFTS = {"unshifted": ("none", True), "15 % crop": ("crop 15% per side", True),
                "20 % crop": ("crop 20% per side", False), "CLAHE": ("CLAHE", True),
                "unsharp mask": ("sharpen (unsharp mask)", False),
                "blur 1 px": ("blur (sigma 1 px)", False),
                "half resolution": ("half resolution", False),
                "zoom-out 10 %": ("zoom out, pad 10% per side", False)}


def markdown(work: Path, recipes, seeds) -> str:
    """Members (mean ± sd over ``seeds``) and average rows per recipe, from the stress files."""
    head = "| recipe | | " + " | ".join(TABLE_SHIFTS) + " |"
    lines = [head, "|---|---|" + "---|" * len(TABLE_SHIFTS)]
    for recipe in recipes:
        members = [pd.read_csv(work / f"{recipe}-s{seed}" / "stress.csv").set_index("shift")
                   for seed in seeds]
        average = pd.read_csv(work / f"{recipe}-ensemble-stress.csv").set_index("shift")
        for kind, tables in (("members", members), ("average", [average])):
            cells = []
            for shift, with_auc in TABLE_SHIFTS.values():
                spec = np.array([t.loc[shift, "specificity"] for t in tables])
                auc = np.mean([t.loc[shift, "roc_auc"] for t in tables])
                cell = f"{spec.mean():.3f}" + (f" ± {spec.std(ddof=1):.3f}" if len(spec) > 1
                                               else "")
                cells.append(cell + (f" ({auc:.3f})" if with_auc else ""))
            lines.append(f"| {recipe} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
