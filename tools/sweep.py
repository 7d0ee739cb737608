"""Compare training recipes over several seeds on one fixed patient-level validation split.

A difference between two recipes is believed only when it holds across seeds: one seed's ROC
AUC moves by about 0.01 on new films. Each recipe below is trained with every seed given, on the
full training split minus a patient-level validation split that stays the same for every
recipe and seed (``--split-seed``), then scored on validation and under every shift of
:mod:`pneumo_helpers.shifts` (acquisition and framing) at its own validation threshold.

    python tools/sweep.py --data ../shared/data/chest_xray --recipes mild framing \\
        --seeds 42 7 1

Writes ``runs/sweep/<recipe>-s<seed>/`` (model folder + ``stress.csv``) and prints, per recipe,
the mean and spread over seeds of validation ROC AUC and specificity, of ROC AUC, sensitivity
and specificity under 15 % border crops, specificity under 20 % crops, CLAHE and an unsharp
mask, and the worst specificity over every shift. Runs already finished are read back, not
retrained, so running again over every recipe only re-scores them.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pneumo_helpers import (data, evaluate, experiment, external, generators, inference, models,
                            shifts, ship)
from pneumo_helpers.balance import encode_labels
from pneumo_helpers.config import PROFILES, RunConfig
from pneumo_helpers.runs import ModelLayout, RunLayout

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ship.SWEEP_SUMMARY.parent
SUMMARY = ship.SWEEP_SUMMARY.name  # per recipe and seed; the shipped model card quotes it
# Everything but the recipe: the full profile, which is also the shipped model's (ship.py).
_FULL = RunConfig(profile="full")
BASE = dict(model=_FULL.architecture, strategy=_FULL.balance, image_size=_FULL.image_size,
            batch_size=_FULL.batch_size, epochs=_FULL.epochs,
            threshold_rule=_FULL.threshold_rule)
# Recipe name -> what it changes from BASE.
RECIPES = {
    "mild": dict(augment=generators.AUGMENTATIONS["mild"]),
    "framing": dict(augment=generators.AUGMENTATIONS["framing"]),
    "framing-wide": dict(augment=generators.AUGMENTATIONS["framing"],
                         model_kwargs=dict(filters=(32, 64, 128, 256, 256))),
    "framing-ls": dict(augment=generators.AUGMENTATIONS["framing"],
                       model_kwargs=dict(label_smoothing=0.1)),
    "framing-160": dict(augment=generators.AUGMENTATIONS["framing"], image_size=160),
    "framing-mixup": dict(augment=dataclasses.replace(generators.AUGMENTATIONS["framing"],
                                                      mixup=0.2)),
    # Two framings of each film per batch, their logits pulled together (models.ViewConsistency).
    "framing-consistency": dict(augment=generators.AUGMENTATIONS["framing"], consistency=0.1),
    "framing-consistency-0.3": dict(augment=generators.AUGMENTATIONS["framing"],
                                    consistency=0.3),
    # Exposure-curve and sharpness changes added to the framing recipe: the control for the next.
    "framing-acq": dict(augment=generators.AUGMENTATIONS["framing-acq"]),
    # Both: the two views of a film also differ the way X-ray systems do (the acquisition
    # shifts of pneumo_helpers.shifts). Shipped on 2026-12-03, before pretraining.
    "framing-acq-consistency": dict(augment=generators.AUGMENTATIONS["framing-acq"],
                                    consistency=0.1),
    # The same after contrastive pretraining of the encoder on the training films
    # (pneumo_helpers.pretrain): invariance learnt before any label. The full profile's recipe.
    "framing-acq-consistency-ssl": dict(augment=generators.AUGMENTATIONS["framing-acq"],
                                        consistency=0.1, pretrain_epochs=30),
    # Twice the pretraining: the partner accuracy was still rising after 30 epochs.
    "framing-acq-consistency-ssl60": dict(augment=generators.AUGMENTATIONS["framing-acq"],
                                          consistency=0.1, pretrain_epochs=60),
    # The seeds fine-tune one pretraining (seed 42's) instead of three: an averaged model pays
    # for it once. With and without the consistency term, which doubles the fine-tuning's time.
    "framing-acq-consistency-ssl-shared": dict(augment=generators.AUGMENTATIONS["framing-acq"],
                                               consistency=0.1, pretrain_epochs=30,
                                               pretrain_seed=42),
    "framing-acq-ssl-shared": dict(augment=generators.AUGMENTATIONS["framing-acq"],
                                   pretrain_epochs=30, pretrain_seed=42),
    # What the network sees and holds, judged on new films (the external half).
    "mild-224": dict(augment=generators.AUGMENTATIONS["mild"], image_size=224),
    "mild-wide": dict(augment=generators.AUGMENTATIONS["mild"],
                      model_kwargs=dict(filters=(32, 64, 128, 256, 256))),
    "mild-long": dict(augment=generators.AUGMENTATIONS["mild"], epochs=30),
    "framing-224": dict(augment=generators.AUGMENTATIONS["framing"], image_size=224),
    # ImageNet backbones fine-tuned in two stages at their native size (docs/transfer.md); a
    # backbone whose weights cannot be had is skipped with one line.
    **{f"{backbone}-224": dict(model=backbone, augment=generators.AUGMENTATIONS["mild"],
                               image_size=224) for backbone in experiment.TRANSFER},
}


def split(data_dir: str, split_seed: int, work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    target = RunLayout(work).clean_manifest
    if not target.is_file():
        scrubbed = data.scrub(data.build_manifest(data_dir), test_fraction=0.0, seed=split_seed,
                              val_fraction=PROFILES["full"]["val_fraction"])
        work.mkdir(parents=True, exist_ok=True)
        scrubbed.clean.to_csv(target, index=False)
    clean = pd.read_csv(target)
    return (clean[clean["split"] == "train"].reset_index(drop=True),
            clean[clean["split"] == "val"].reset_index(drop=True))


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
        size = {**BASE, **RECIPES[recipe]}["image_size"]
        images = sizes[recipe] = generators.load_images(val_rows, image_size=size,
                                                        cache_dir=args.work / "cache")[..., 0]
        for seed in args.seeds:
            out = args.work / f"{recipe}-s{seed}"
            if not ModelLayout(out).val_metrics.is_file():
                try:
                    experiment.run_candidate(train_rows, val_rows, out_dir=out, seed=seed,
                                             name=out.name, cache_dir=args.work / "cache",
                                             verbose=2, **{**BASE, **RECIPES[recipe]})
                except models.WeightsUnavailable as err:
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
                                                      rule=BASE["threshold_rule"])
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
            threshold = evaluate.choose_threshold(y, average(images), rule=BASE["threshold_rule"])
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
    site = evaluate.choose_threshold(rows["label"], p, rule=BASE["threshold_rule"])
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
