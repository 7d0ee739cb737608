"""The ``pneumo`` command: the project's steps, and a trained model applied to images.

    pneumo run [--data DIR] [--run-dir DIR]         the five notebooks (make run)
    pneumo train --data DIR                         the shipped model (make train-full)
    pneumo report [RUN_DIR] [--data DIR]            reviewer PDFs + README table (make report)
    pneumo predict IMAGE_OR_FOLDER... [-o predictions.csv]
    pneumo evaluate DATA_FOLDER [--split test] [-o metrics.json]
    pneumo explain IMAGE --method lime|gradcam -o explanation.png

``--model`` picks a saved model folder (default: the model shipped in the package). A user
error — missing file, unreadable image, empty folder, a file that is not a model — is one line
on stderr and exit status 2; a batch with some unreadable files (or images that do not look
like chest films, :mod:`pneumo_helpers.gate`) still predicts the rest, lists the others and
exits 1; :data:`EXIT_STATUSES` lists every status (``pneumo --help``). Not for clinical use.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from . import commands
from .commands import UserError, shown
from .sandbox import private_library_homes, without_library_noise

__all__ = ["main"]

EXIT_SOME_FAILED, EXIT_USER_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_STATUSES = f"""exit status:
  0    every input got a label (or the command did what it says)
  {EXIT_SOME_FAILED}    some files got no label: listed on stderr, and as rows with an error
  {EXIT_USER_ERROR}    nothing done: a usage error, a missing or unusable input, model or output
  {EXIT_INTERNAL}    pneumo itself failed (a bug; set PNEUMO_DEBUG=1 for the traceback)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); no output written"""
# experiment.BUILDERS' keys, spelled out so that --help does not import Keras.
ARCHITECTURES = ("five_block", "baseline", "EfficientNetB0", "ResNet50V2", "DenseNet121")
PROJECT_STEPS = {"run": commands.run_notebooks, "train": commands.train_shipped_model,
                 "report": commands.write_report}
MODEL_COMMANDS = {"predict": commands.predict_images, "evaluate": commands.evaluate_folder,
                  "explain": commands.explain_image, "calibrate": commands.calibrate_site}


def _int_in(low: int, high: int):
    """argparse type: an integer in [low, high], else a one-line usage error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range {low}..{high:,}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    from .inference import MAX_BATCH

    parser = argparse.ArgumentParser(
        prog="pneumo", description="Pneumonia detection in pediatric chest X-rays "
        "(research use only, not for clinical decisions).", epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
    predict.add_argument("--batch-size", type=_int_in(1, MAX_BATCH), default=64,
                         help=f"images per model call, 1..{MAX_BATCH} (default: 64)")

    evaluate = add("evaluate", "Evaluate on a labelled folder: a Kaggle-layout dataset "
                   "(uses --split) or a folder holding NORMAL/ and PNEUMONIA/.")
    evaluate.add_argument("data", metavar="DATA_FOLDER")
    evaluate.add_argument("--split", default="test", help="split of a Kaggle-layout folder "
                          "(default: test)")
    evaluate.add_argument("-o", "--output", default="metrics.json", metavar="JSON",
                          help="metrics with 95%% bootstrap intervals (default: metrics.json)")
    evaluate.add_argument("--n-boot", type=_int_in(0, 100_000), default=1000,
                          help="bootstrap resamples for the intervals, 0..100,000 (0: no "
                          "intervals; default: 1,000)")

    calibrate = add("calibrate", "Choose a site threshold on a labelled sample of a site's "
                    "films (NORMAL/ and PNEUMONIA/, or a dataset folder's --split) by the "
                    "model's rule; stored beside the model in site_threshold.json, used by "
                    "predict, evaluate and explain from then on.")
    calibrate.add_argument("data", metavar="DATA_FOLDER")
    calibrate.add_argument("--split", default="test", help="split of a Kaggle-layout folder "
                           "(default: test)")
    calibrate.add_argument("--n-boot", type=_int_in(0, 100_000), default=1000,
                           help="patient-bootstrap resamples for the intervals (default: 1,000)")

    explain = add("explain", "Explain one prediction with LIME superpixels or a Grad-CAM "
                  "heatmap, saved as an image.")
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument("--method", choices=["lime", "gradcam"], default="gradcam")
    explain.add_argument("--settings", choices=["default", "thorough"], default="default",
                         help="LIME effort (default: 1,000 samples)")
    explain.add_argument("-o", "--output", required=True, metavar="PNG",
                         help="picture file: .png, .jpg, .svg or .pdf")

    manifest = sub.add_parser("manifest", help="Write a model folder's manifest.json (the "
                              "sha256 of each of its files), which every command checks the "
                              "folder against; after changing the folder on purpose.",
                              description="Write a model folder's manifest.json.")
    manifest.add_argument("folders", nargs="+", metavar="MODEL_FOLDER")

    run = sub.add_parser("run", help="Run the five notebooks in order, each in a fresh "
                         "kernel, into a run folder (needs a checkout of the project).",
                         description="Run the five notebooks in order into a run folder.")
    run.add_argument("--data", metavar="DIR", help="dataset folder (Kaggle layout); default: "
                     "the bundled sample")
    run.add_argument("--run-dir", metavar="DIR", help="default: runs/<profile>")
    run.add_argument("--profile", choices=["sample", "full"], help="default: full with "
                     "--data, else sample")
    run.add_argument("--external", metavar="DIR", help="labelled films from another site or "
                     "batch (NORMAL/, PNEUMONIA/ or test/...), scored in 04 and 05 beside "
                     "validation (PNEUMO_EXTERNAL_DIR)")
    run.add_argument("--evaluations", metavar="DIR", type=Path, default=_default_evaluations(),
                     help="folder of official-split receipts: 05 shows the shipped model's "
                     "locked-half figures from the one naming it (PNEUMO_EVALUATIONS_DIR); "
                     "default: ../shared/evaluations beside the project, if present")
    run.add_argument("--only", nargs="+", metavar="NN", help="notebook prefixes, e.g. 04 05")
    run.add_argument("--in-place", action="store_true", help="refresh the outputs stored in "
                     "notebooks/ (what CI compares) instead of writing <run>/notebooks/")

    train = sub.add_parser("train", help="Train the shipped model with the full profile's "
                           "recipe on a whole training split, with its card and export.",
                           description="Train the shipped model (pneumo_helpers/ship.py).")
    train.add_argument("--data", metavar="DIR", help="dataset folder (Kaggle layout); "
                       "required unless --card-only")
    train.add_argument("--run-dir", metavar="DIR", default=None,
                       help="where training happens and resumes (default: runs/train-full)")
    train.add_argument("--out", metavar="DIR", help="model folder to write (default: the "
                       "package's shipped_model/)")
    train.add_argument("--seed", type=_int_in(0, 2**31 - 1), default=None,
                       help="training seed (default: the profile's)")
    train.add_argument("--architecture", choices=ARCHITECTURES, default=None,
                       help="the model: five_block (default, the shipped recipe), baseline, or "
                       "an ImageNet backbone fine-tuned in two stages (its weights from "
                       "Keras' cache, downloaded there if missing; docs/transfer.md)")
    train.add_argument("--distribution", choices=["mirrored", "jax"], default=None,
                       help="data-parallel training: mirrored = every GPU of this machine "
                       "(tf.distribute.MirroredStrategy); jax = one process per machine, "
                       "each started with the same command and its own --process-id "
                       "(docs/scaling.md); default: one device")
    train.add_argument("--coordinator", metavar="HOST:PORT", help="with --distribution jax: "
                       "address of process 0, reachable from every machine")
    train.add_argument("--num-processes", type=_int_in(1, 4096), default=1,
                       help="with --distribution jax: processes in all (default: 1)")
    train.add_argument("--process-id", type=_int_in(0, 4095), default=0,
                       help="with --distribution jax: this process, 0 = the chief (default: 0)")
    train.add_argument("--external", metavar="DIR", help="labelled new films (NORMAL/, "
                       "PNEUMONIA/ or test/...): the card scores the model there and the "
                       "site threshold is chosen on them")
    train.add_argument("--card-only", action="store_true", help="no training: copy the "
                       "finished run to --out and rewrite its card and export")

    report = sub.add_parser("report", help="Reviewer PDFs (slide deck, notebooks) and the "
                            "README results table, from a run folder.",
                            description="Reviewer PDFs and README results from a run.")
    report.add_argument("run_dir", nargs="?", default="runs/full", metavar="RUN_DIR",
                        help="run folder (default: runs/full)")
    report.add_argument("--data", metavar="DIR", help="first run the notebooks on this "
                        "dataset (full profile) into RUN_DIR")
    report.add_argument("--external", metavar="DIR", help="with --data: labelled films from "
                        "another site or batch, scored in 04 and 05 (as pneumo run --external)")
    report.add_argument("--out", metavar="DIR", default="presentation",
                        help="folder for presentation.pdf and notebooks.pdf")
    report.add_argument("--evaluations", metavar="DIR", type=Path,
                        default=_default_evaluations(),
                        help="folder of the shipped model's evaluations on the official test "
                        "split (JSON by pneumo evaluate, with model_sha256); default: "
                        "../shared/evaluations beside the project, if present")
    return parser


def _default_evaluations() -> Path | None:
    from .config import project_root

    folder = project_root().parent / "shared" / "evaluations"
    return folder if folder.is_dir() else None



def _fail(message: str, status: int) -> int:
    """Print one ``pneumo: error:`` line (if stderr is open at all) and return ``status``."""
    with contextlib.suppress(Exception):
        print(f"pneumo: error: {message}", file=sys.stderr, flush=True)
    return status


def main(argv=None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a name the locale cannot spell is escaped
        if hasattr(stream, "reconfigure"):   # (LC_ALL=C without UTF-8 mode: ASCII streams)
            stream.reconfigure(errors="backslashreplace")
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if args.command not in PROJECT_STEPS:  # a user's quick command leaves home alone
            private_library_homes()
        return _command(args)
    except KeyboardInterrupt:
        return _fail("interrupted; nothing written", EXIT_INTERRUPTED)
    except BrokenPipeError:  # `pneumo predict ... | head`: the reader left before the end
        with contextlib.suppress(OSError):  # no second error when Python flushes at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return _fail("standard output was closed before the table was written whole",
                     EXIT_USER_ERROR)
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("PNEUMO_DEBUG"):
            raise
        return _fail(f"pneumo failed ({type(exc).__name__}: {shown(exc)}); please report it "
                     "(PNEUMO_DEBUG=1 shows the traceback)", EXIT_INTERNAL)


def _command(args) -> int:
    from .dataset import DatasetError
    from .external import ExternalError
    from .images import ImageError
    from .inference import ModelError, load_model
    from .runner import NotebookError

    try:
        with without_library_noise():
            if args.command in PROJECT_STEPS:  # long work: progress on stdout as it happens
                every_input_labelled = PROJECT_STEPS[args.command](args)
            elif args.command == "manifest":
                every_input_labelled = commands.write_manifests(args)
            else:
                # Explanations need the Keras model (gradients, LIME on the model); predictions
                # take the LiteRT export when the model folder holds a matching one.
                loaded = load_model(args.model,
                                    runtime="keras" if args.command == "explain" else "auto")
                every_input_labelled = MODEL_COMMANDS[args.command](args, loaded)
        return 0 if every_input_labelled else EXIT_SOME_FAILED
    except (UserError, ImageError, ModelError, DatasetError, NotebookError,
            ExternalError) as exc:
        return _fail(shown(exc), EXIT_USER_ERROR)
    except BrokenPipeError:
        raise
    except OSError as exc:  # a folder it cannot list, a full disk while writing the output
        what = f"{shown(exc.filename)}: " if exc.filename else "cannot write the output: "
        return _fail(f"{what}{exc.strerror or exc}", EXIT_USER_ERROR)


if __name__ == "__main__":
    sys.exit(main())
