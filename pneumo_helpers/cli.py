"""The ``pneumo`` command: predict, evaluate and explain with a trained model.

    pneumo predict IMAGE_OR_FOLDER... [-o predictions.csv]
    pneumo evaluate DATA_FOLDER [--split test] [-o metrics.json]
    pneumo explain IMAGE --method lime|gradcam -o explanation.png

``--model`` picks a saved model folder (default: the model shipped in the package). A user
error — missing file, unreadable image, empty folder, a file that is not a model — is one line
on stderr and exit status 2; a batch with some unreadable files still predicts the rest, lists
the bad ones and exits 1. Not for clinical use.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]

EXIT_USER_ERROR, EXIT_SOME_FAILED = 2, 1


class UserError(Exception):
    """An error in what the user asked for: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pneumo", description="Pneumonia detection in pediatric chest X-rays "
        "(research use only, not for clinical decisions).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_text):
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--model", metavar="PATH", help="saved model folder (model.keras + "
                         "config.json [+ val_metrics.json]) or .keras file; default: the "
                         "shipped model")
        return cmd

    predict = add("predict", "Predict P(PNEUMONIA) for images (JPEG/PNG, 8/16-bit, "
                  "gray/RGB/RGBA) and label them at the model's validation threshold.")
    predict.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    predict.add_argument("-o", "--output", metavar="CSV", help="write the table here "
                         "(default: print CSV to stdout)")
    predict.add_argument("--batch-size", type=int, default=64)

    evaluate = add("evaluate", "Evaluate on a labelled folder: a Kaggle-layout dataset "
                   "(uses --split) or a folder holding NORMAL/ and PNEUMONIA/.")
    evaluate.add_argument("data", metavar="DATA_FOLDER")
    evaluate.add_argument("--split", default="test", help="split of a Kaggle-layout folder "
                          "(default: test)")
    evaluate.add_argument("-o", "--output", default="metrics.json", metavar="JSON",
                          help="metrics with 95%% bootstrap intervals (default: metrics.json)")
    evaluate.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")

    explain = add("explain", "Explain one prediction with LIME superpixels or a Grad-CAM "
                  "heatmap, saved as an image.")
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument("--method", choices=["lime", "gradcam"], default="gradcam")
    explain.add_argument("--settings", choices=["default", "thorough"], default="default",
                         help="LIME effort (default: 1,000 samples)")
    explain.add_argument("-o", "--output", required=True, metavar="PNG")
    return parser


def _labelled_files(folder: Path, split: str) -> list[tuple[Path, int]]:
    from .data import CLASSES
    from .inference import collect_images

    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    base = folder if all((folder / c).is_dir() for c in CLASSES) else folder / split
    if not all((base / c).is_dir() for c in CLASSES):
        raise UserError(f"{folder}: expected NORMAL/ and PNEUMONIA/ folders, or a Kaggle "
                        f"layout with {split}/NORMAL and {split}/PNEUMONIA")
    return [(path, label) for label, name in enumerate(CLASSES)
            for path in collect_images([base / name])]


def _report_bad(table) -> int:
    bad = table[table["error"] != ""]
    for row in bad.itertuples():
        print(f"pneumo: skipped {row.file}: {row.error}", file=sys.stderr)
    return EXIT_SOME_FAILED if len(bad) else 0


def _predict(args, loaded) -> int:
    from .inference import collect_images, predict_files

    table = predict_files(loaded, collect_images(args.inputs), batch_size=args.batch_size)
    if args.output:
        table.to_csv(args.output, index=False, float_format="%.4f")
        print(f"wrote {len(table)} rows to {args.output} (threshold {loaded.threshold:.3f})",
              file=sys.stderr)
    else:
        table.to_csv(sys.stdout, index=False, float_format="%.4f")
    return _report_bad(table)


def _evaluate(args, loaded) -> int:
    from . import evaluate
    from .data import patient_id
    from .inference import predict_files

    files = _labelled_files(Path(args.data), args.split)
    table = predict_files(loaded, [f for f, _ in files])
    table["y"] = [label for _, label in files]
    ok = table[table["error"] == ""]
    if ok["y"].nunique() < 2:
        raise UserError(f"{args.data}: need readable images of both classes to evaluate")
    metrics = evaluate.evaluate(ok["y"], ok["probability"], threshold=loaded.threshold,
                                groups=[patient_id(Path(f).name) for f in ok["file"]],
                                n_boot=args.n_boot)
    evaluate.metrics_to_json(metrics, args.output, threshold=loaded.threshold,
                             rule=loaded.threshold_rule, data=str(args.data),
                             model=str(loaded.path))
    print(metrics.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"threshold {loaded.threshold:.3f}; {len(ok)} images; wrote {args.output}")
    return _report_bad(table)


def _explain(args, loaded) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import explain, plots
    from .images import read_gray

    image = read_gray(args.image, size=loaded.image_size).astype("float32") / 255.0
    probability = float(loaded.predict((image * 255).astype("uint8")[None])[0])
    label = "PNEUMONIA" if probability >= loaded.threshold else "NORMAL"
    title = f"{Path(args.image).name}: P(pneumonia) = {probability:.2f} -> {label}"
    if args.method == "lime":
        result = explain.LimeExplainer(loaded.model, settings=args.settings,
                                       threshold=loaded.threshold).explain(image)
        picture = explain.lime_overlay(result)
    else:
        picture = explain.overlay(image, explain.grad_cam(loaded.model, image[None, ..., None])[0])
    plots.save(plots.image_panel(picture, title=title), args.output)
    print(f"{title}; wrote {args.output}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .data import DatasetError
    from .images import ImageError
    from .inference import ModelError, load_model

    try:
        loaded = load_model(args.model)
        return {"predict": _predict, "evaluate": _evaluate, "explain": _explain}[
            args.command](args, loaded)
    except (UserError, ImageError, ModelError, DatasetError) as exc:
        print(f"pneumo: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
