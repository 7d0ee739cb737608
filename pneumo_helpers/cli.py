"""The ``pneumo`` command: the project's steps, and a trained model applied to images.

    pneumo run [--data DIR] [--run-dir DIR]         the five notebooks (make run)
    pneumo train --data DIR                         the shipped model (make train-full)
    pneumo report [RUN_DIR] [--data DIR]            reviewer PDFs + README table (make report)
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
import contextlib
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

from .config import RunConfig, shown_path

__all__ = ["main"]

EXIT_USER_ERROR, EXIT_SOME_FAILED = 2, 1
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf")
# experiment.BUILDERS' keys, spelled out so that --help does not import Keras.
ARCHITECTURES = ("five_block", "baseline", "EfficientNetB0", "ResNet50V2", "DenseNet121")


class UserError(Exception):
    """An error in what the user asked for: printed as one line, exit status 2."""


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


def shown(name) -> str:
    """A file name as it may be printed or written: control characters (a newline in a name
    would forge a line of output) escaped, bytes that are not UTF-8 as backslash escapes."""
    text = os.fsencode(str(name)).decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode()
                   for ch in text)


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection): text starting
    with = + - @ or a tab/CR gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _parser() -> argparse.ArgumentParser:
    from .inference import MAX_BATCH

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


def _run(args) -> int:
    from .runner import run_series

    if args.external:  # the notebooks' kernels read it, as every PNEUMO_* setting
        if not Path(args.external).is_dir():
            raise UserError(f"{args.external}: no such folder (--external)")
        os.environ["PNEUMO_EXTERNAL_DIR"] = str(Path(args.external).resolve())
    cfg = RunConfig.from_params(data_dir=args.data, run_dir=args.run_dir,
                                profile=args.profile)
    run_series(cfg.run_dir, data=args.data, profile=cfg.profile, in_place=args.in_place,
               only=args.only, report=lambda line: print(line, flush=True))
    return 0


def _train(args) -> int:
    if not args.card_only and not args.data:
        raise UserError("pneumo train needs --data DIR (a dataset folder in the Kaggle "
                        "layout), or --card-only to rewrite the card of a finished run")
    data_parallel = args.distribution == "jax" and not args.card_only
    if data_parallel:
        _join_data_parallel(args)
    from . import ship

    out = Path(args.out) if args.out else None
    cfg = RunConfig.from_params(data_dir=args.data, profile="full", test_fraction=0.0,
                                run_dir=args.run_dir or "runs/train-full", seed=args.seed,
                                architecture=args.architecture)
    if not args.card_only:
        _check_weights(cfg.architecture, download=cfg.download_weights)
        ship.train_shipped(cfg, distribution=args.distribution,
                           report=lambda line: print(line, flush=True))
    if data_parallel:
        # The card's LiteRT export needs TensorFlow: a second, ordinary process writes it.
        if args.process_id == 0:
            where = shown(shown_path(cfg.run_dir))
            print(f"trained in {where}; write the card and export with: pneumo train "
                  f"--card-only --run-dir {where}")
        return 0
    card = ship.write_card(cfg.run_dir, **({"out": out} if out else {}),
                           external_dir=args.external)
    print(f"shipped model, card and LiteRT export written to {shown(shown_path(card.parent))}")
    return 0


def _check_weights(architecture: str, *, download: bool) -> None:
    """Before any data is read: an ImageNet backbone's weights are here or fetched, else one
    line saying what to do."""
    if architecture not in ("five_block", "baseline"):
        from . import models

        try:
            models.imagenet_weights(architecture, download=download)
        except models.WeightsUnavailable as err:
            raise UserError(err.line("choose another --architecture")) from None


def _join_data_parallel(args) -> None:
    """Start this process on the JAX backend and join the others (before Keras is imported)."""
    if not args.coordinator:
        raise UserError("--distribution jax needs --coordinator HOST:PORT (process 0's "
                        "address), --num-processes and --process-id")
    if args.process_id >= args.num_processes:
        raise UserError(f"--process-id must be below --num-processes ({args.num_processes})")
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "jax":
        raise UserError("Keras is already loaded on another backend; run pneumo train "
                        "--distribution jax in a fresh process")
    os.environ["KERAS_BACKEND"] = "jax"
    if importlib.util.find_spec("jax") is None:
        raise UserError("--distribution jax needs JAX: pip install -e '.[distributed]'")
    from . import distribute

    distribute.init_data_parallel(args.coordinator, num_processes=args.num_processes,
                                  process_id=args.process_id)


def _report(args) -> int:
    from . import deck, notebooks_pdf, report
    from .runner import run_series

    if args.data:
        run_series(args.run_dir, data=args.data, profile="full",
                   report=lambda line: print(line, flush=True))
    out = Path(args.out)
    try:
        print(shown_path(deck.build_deck(args.run_dir, out / "presentation.pdf",
                                    evaluations=args.evaluations)))
        print(shown_path(notebooks_pdf.render(args.run_dir, out / "notebooks.pdf")))
        print(shown_path(report.replace_readme_block(
            Path("README.md"), report.readme_block(args.run_dir, readme_dir=Path.cwd()))))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # no run, no Chromium
        raise UserError(str(exc)) from None
    return 0


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
        print(f"pneumo: skipped {shown(row.file)}: {shown(row.error)}", file=sys.stderr)
    return EXIT_SOME_FAILED if len(bad) else 0


def _output_path(text: str, *, suffixes=None) -> Path:
    """Where to write: a file path whose folder is created; never an existing folder."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise UserError(f"{text}: is a folder; give a file name, e.g. {Path(text) / 'out.csv'}")
    if suffixes and path.suffix.lower() not in suffixes:
        kind = path.suffix or "a file without a suffix"
        raise UserError(f"{text}: cannot write a picture as {kind}; use "
                        f"{', '.join(suffixes)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{text}: cannot create its folder ({exc.strerror or exc})") from None
    return path


def _csv_ready(table):
    """The predictions table with file names and errors safe to print and to open in a
    spreadsheet."""
    out = table.copy()
    out["file"] = out["file"].map(lambda f: spreadsheet_safe(shown(f)))
    out["error"] = out["error"].map(lambda e: spreadsheet_safe(shown(e)))
    return out


def _predict(args, loaded) -> int:
    from .inference import collect_images, predict_files

    output = _output_path(args.output) if args.output else None
    table = predict_files(loaded, collect_images(args.inputs), batch_size=args.batch_size)
    csv = _csv_ready(table)
    if output:
        from .files import atomic_write

        with atomic_write(output) as handle:
            csv.to_csv(handle, index=False, float_format="%.4f")
        print(f"wrote {len(table)} rows to {shown(output)} ({loaded.threshold_note()})")
    else:
        csv.to_csv(sys.stdout, index=False, float_format="%.4f")
    return _report_bad(table)


def _evaluate(args, loaded) -> int:
    from . import evaluate
    from .data import patient_id
    from .inference import predict_files

    output = _output_path(args.output)
    files = _labelled_files(Path(args.data), args.split)
    table = predict_files(loaded, [f for f, _ in files])
    table["y"] = [label for _, label in files]
    ok = table[table["error"] == ""]
    if ok["y"].nunique() < 2:
        raise UserError(f"{args.data}: need readable images of both classes to evaluate")
    metrics = evaluate.evaluate(ok["y"], ok["probability"], threshold=loaded.threshold,
                                groups=[patient_id(Path(f).name) for f in ok["file"]],
                                n_boot=args.n_boot)
    evaluate.to_report(metrics, threshold=loaded.threshold, rule=loaded.threshold_rule,
                       split=args.split, model=shown(loaded.path), data=shown(args.data),
                       model_sha256=loaded.sha256,
                       threshold_source=loaded.threshold_source).write(output)
    print(metrics.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{loaded.threshold_note()}; {len(ok)} images; wrote {shown(output)}")
    return _report_bad(table)


def _calibrate(args, loaded) -> int:
    from . import external
    from .inference import predict_files

    if loaded.path is None or not loaded.path.is_dir():
        raise UserError("calibrate needs a model folder (--model FOLDER) to store the site "
                        "threshold in")
    rows = external.labelled_rows(args.data, split=args.split)
    table = predict_files(loaded, rows["path"])
    ok = (table["error"] == "").to_numpy()
    if _report_bad(table):
        print(f"left out {int((~ok).sum())} unreadable file(s) listed above", file=sys.stderr)
    rule = loaded.config.get("threshold_rule") or loaded.threshold_rule or "sens>=0.95"
    site = external.choose_site_threshold(rows[ok].reset_index(drop=True),
                                          table["probability"].to_numpy()[ok], rule=rule,
                                          model_sha256=loaded.sha256, n_boot=args.n_boot)
    target = site.write(loaded.path)
    fmt = "{:.3f} ({:.3f}-{:.3f})".format
    print(f"site threshold {site.threshold:.3f} ({rule}) on {site.n_films} films "
          f"({site.n_normal} NORMAL, {site.n_pneumonia} PNEUMONIA); there: sensitivity "
          f"{fmt(*site.sensitivity)}, specificity {fmt(*site.specificity)} (in-sample, 95 % "
          f"patient bootstrap); validation threshold was {loaded.threshold:.3f}; "
          f"wrote {shown(shown_path(target))}")
    return 0 if ok.all() else 1


def _explain(args, loaded) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import explain, plots
    from .images import read_gray

    plots.style()
    output = _output_path(args.output, suffixes=PICTURE_SUFFIXES)
    pixels = read_gray(args.image, size=loaded.image_size, film=True)
    probability = float(loaded.predict(pixels[None])[0])
    image = pixels.astype("float32") / 255.0  # what the explainers take: [0, 1]
    label = loaded.label([probability])[0]
    title = f"{shown(Path(args.image).name)}: P(pneumonia) = {probability:.2f} -> {label}"
    if args.method == "lime":
        result = explain.LimeExplainer(loaded.model, settings=args.settings,
                                       threshold=loaded.threshold).explain(image)
        picture = explain.lime_overlay(result)
    else:
        heatmap = explain.grad_cam(loaded.model, image[None, ..., None],
                                   threshold=loaded.threshold)[0]
        picture = explain.overlay(image, heatmap)
    plots.save(plots.image_panel(picture, title=title), output)
    print(f"{title}; {loaded.threshold_note()}; wrote {shown(output)}")
    return 0


# What TensorFlow, absl and LiteRT print at start-up on a machine without a GPU: not errors,
# and no environment variable silences all of it (TF_CPP_MIN_LOG_LEVEL=3 still leaves six lines).
_NOISE = re.compile(r"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl"
                    r"|To enable the following instructions|INFO: Created TensorFlow Lite)")


@contextlib.contextmanager
def _without_library_noise():
    """Route file descriptor 2 through a temporary file for the block and replay every line
    that is not known start-up noise, so warnings and errors still reach the user."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _NOISE.match(line):
                    print(line, file=sys.stderr)


def _private_library_homes() -> None:
    """Keras writes ~/.keras/keras.json and matplotlib a font cache on first import; a command
    run on a few files should leave the home folder alone. Both go to a temporary folder
    unless the user chose theirs."""
    scratch = Path(tempfile.gettempdir()) / f"pneumo-{os.getuid()}"
    for variable, sub in (("KERAS_HOME", "keras"), ("MPLCONFIGDIR", "matplotlib")):
        if variable not in os.environ:
            os.environ[variable] = str(scratch / sub)
            (scratch / sub).mkdir(parents=True, exist_ok=True)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    steps = {"run": _run, "train": _train, "report": _report}
    if args.command not in steps:  # a user's quick command leaves the home folder alone
        _private_library_homes()
    from .data import DatasetError
    from .external import ExternalError
    from .images import ImageError
    from .inference import ModelError, load_model
    from .runner import NotebookError

    try:
        with _without_library_noise():
            if args.command in steps:  # long work: progress on stdout as it happens
                return steps[args.command](args)
            # Explanations need the Keras model (gradients, LIME on the model); predictions
            # take the LiteRT export when the model folder holds a matching one.
            loaded = load_model(args.model,
                                runtime="keras" if args.command == "explain" else "auto")
            return {"predict": _predict, "evaluate": _evaluate, "explain": _explain,
                    "calibrate": _calibrate}[args.command](args, loaded)
    except (UserError, ImageError, ModelError, DatasetError, NotebookError,
            ExternalError) as exc:
        print(f"pneumo: error: {shown(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # writing the output: disk full, permissions, a read-only folder
        where = f" {shown(exc.filename)}" if exc.filename else ""
        print(f"pneumo: error: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
