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
import importlib.util
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

from .config import RunConfig, shown_path
from .recipe import THRESHOLD_RULE

__all__ = ["main"]

EXIT_SOME_FAILED, EXIT_USER_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_STATUSES = f"""exit status:
  0    every input got a label (or the command did what it says)
  {EXIT_SOME_FAILED}    some files got no label: listed on stderr, and as rows with an error
  {EXIT_USER_ERROR}    nothing done: a usage error, a missing or unusable input, model or output
  {EXIT_INTERNAL}    pneumo itself failed (a bug; set PNEUMO_DEBUG=1 for the traceback)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); no output written"""
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


def _series_settings(args) -> None:
    """Folders the notebooks' kernels read from the environment, as every PNEUMO_* setting."""
    for name, flag in (("external", "--external"), ("evaluations", "--evaluations")):
        folder = getattr(args, name, None)
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such folder ({flag})")
        os.environ[f"PNEUMO_{name.upper()}_DIR"] = str(Path(folder).resolve())


def _run(args) -> int:
    from .runner import run_series

    _series_settings(args)
    cfg = RunConfig.from_params(data_dir=args.data, run_dir=args.run_dir,
                                profile=args.profile)
    run_series(cfg.run_dir, data=args.data, profile=cfg.profile, in_place=args.in_place,
               only=args.only, report=lambda line: print(line, flush=True))
    return 0


def _manifest(args) -> int:
    from .runs import ModelLayout

    for folder in map(Path, args.folders):
        if not (folder / "model.keras").is_file():
            raise UserError(f"{folder}: no model.keras; not a model folder")
        print(f"wrote {shown(ModelLayout(folder).write_manifest())}")
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
    cfg = ship.shipping_config(args.data, run_dir=args.run_dir, seed=args.seed,
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
        from . import transfer

        try:
            transfer.imagenet_weights(architecture, download=download)
        except transfer.WeightsUnavailable as err:
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
        _series_settings(args)
        run_series(args.run_dir, data=args.data, profile="full",
                   report=lambda line: print(line, flush=True))
    out = Path(args.out)
    try:
        print(shown_path(deck.build_deck(args.run_dir, out / "presentation.pdf",
                                    evaluations=args.evaluations)))
        print(shown_path(notebooks_pdf.render(args.run_dir, out / "notebooks.pdf")))
        print(shown_path(report.replace_readme_block(
            Path("README.md"), report.readme_block(args.run_dir, readme_dir=Path.cwd(),
                                                  evaluations=args.evaluations))))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # no run, no Chromium
        raise UserError(str(exc)) from None
    return 0


#: Fewer images than this of a class and an evaluation's intervals say little.
FEW_PER_CLASS = 30


def _labelled_files(folder: Path, split: str) -> tuple[list[tuple[str, int]], str | None]:
    """The (file, label) pairs of a labelled folder, and the split they came from (``None``
    when the class folders sit at its root, where ``--split`` does not apply).

    Raises:
        UserError: no class folders, or a folder beside them whose images have no label.
    """
    from .labels import CLASSES
    from .inference import collect_images

    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    at_root = all((folder / c).is_dir() for c in CLASSES)
    base = folder if at_root else folder / split
    if not all((base / c).is_dir() for c in CLASSES):
        raise UserError(f"{folder}: expected NORMAL/ and PNEUMONIA/ folders, or a Kaggle "
                        f"layout with {split}/NORMAL and {split}/PNEUMONIA")
    others = sorted(p.name for p in base.iterdir()
                    if p.is_dir() and not p.name.startswith(".") and p.name not in CLASSES)
    if others:
        raise UserError(f"{base / others[0]}: a folder beside NORMAL/ and PNEUMONIA/, whose "
                        "images have no known label; move it out to evaluate "
                        f"({len(others)} such folder(s): {', '.join(others[:5])})")
    pairs = [(path, label) for label, name in enumerate(CLASSES)
             for path in collect_images([base / name])]
    return pairs, (None if at_root else split)


def _report_bad(table) -> int:
    bad = table[table["error"] != ""]
    for row in bad.itertuples():
        print(f"pneumo: skipped {shown(row.file)}: {shown(row.error)}", file=sys.stderr)
    return EXIT_SOME_FAILED if len(bad) else 0


def _output_path(text: str, *, suffixes=None, inputs=()) -> Path:
    """Where to write, checked before any work (:func:`pneumo_helpers.files.check_output`:
    a regular file or a new name in a writable folder, never one of ``inputs``)."""
    from .files import OutputError, check_output

    path = Path(text).expanduser()
    if suffixes and path.suffix.lower() not in suffixes and not path.is_dir():
        kind = path.suffix or "a file without a suffix"
        raise UserError(f"{text}: cannot write a picture as {kind}; use "
                        f"{', '.join(suffixes)}")
    try:
        return check_output(path, inputs=inputs)
    except OutputError as exc:
        raise UserError(str(exc)) from None


def _csv_ready(table):
    """The predictions table with file names and errors safe to print and to open in a
    spreadsheet."""
    out = table.copy()
    out["file"] = out["file"].map(lambda f: spreadsheet_safe(shown(f)))
    out["error"] = out["error"].map(lambda e: spreadsheet_safe(shown(e)))
    return out


def _predict(args, loaded) -> int:
    from .inference import collect_images, predict_files

    inputs = collect_images(args.inputs)
    output = _output_path(args.output, inputs=inputs) if args.output else None
    if output is None and sys.stdout is None:  # started with stdout closed (`>&-`)
        raise UserError("standard output is closed; give -o FILE to write the table")
    table = predict_files(loaded, inputs, batch_size=args.batch_size)
    csv = _csv_ready(table)
    if output:
        from .files import atomic_write

        with atomic_write(output) as handle:
            csv.to_csv(handle, index=False, float_format="%.4f")
        print(f"wrote {len(table)} rows to {shown(output)} ({loaded.threshold_note()})")
    else:
        csv.to_csv(sys.stdout, index=False, float_format="%.4f")
        sys.stdout.flush()  # a closed or full stdout fails here, not silently at exit
    return _report_bad(table)


def _evaluate(args, loaded) -> int:
    from . import evaluate
    from .labels import patient_id
    from .inference import predict_files

    pairs, split = _labelled_files(Path(args.data), args.split)
    output = _output_path(args.output, inputs=[f for f, _ in pairs])
    table = predict_files(loaded, [f for f, _ in pairs])
    table["y"] = [label for _, label in pairs]
    ok = table[table["error"] == ""]
    if ok["y"].nunique() < 2:
        raise UserError(f"{args.data}: need readable images of both classes to evaluate")
    fewest = int(ok["y"].value_counts().min())
    warning = (f"only {fewest} readable image(s) of a class (fewer than {FEW_PER_CLASS}): the "
               "metrics and their intervals say little; evaluate on more films"
               if fewest < FEW_PER_CLASS else None)
    metrics = evaluate.evaluate(ok["y"], ok["probability"], threshold=loaded.threshold,
                                groups=[patient_id(Path(f).name) for f in ok["file"]],
                                n_boot=args.n_boot)
    extra = {"warning": warning} if warning else {}
    evaluate.to_report(metrics, threshold=loaded.threshold, rule=loaded.threshold_rule,
                       split=split, model=shown(loaded.path), data=shown(args.data),
                       threshold_source=loaded.threshold_source, **loaded.provenance(),
                       images_given=len(table), images_left_out=len(table) - len(ok),
                       **extra).write(output)
    print(metrics.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{loaded.threshold_note()}; {len(ok)} images; wrote {shown(output)}")
    if warning:
        print(f"pneumo: warning: {warning}", file=sys.stderr)
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
        print(f"left out {int((~ok).sum())} file(s) listed above (unreadable, or not "
              "chest films)", file=sys.stderr)
    rule = loaded.config.get("threshold_rule") or loaded.threshold_rule or THRESHOLD_RULE
    site = external.choose_site_threshold(rows[ok].reset_index(drop=True),
                                          table["probability"].to_numpy()[ok], rule=rule,
                                          model_sha256=loaded.sha256, n_boot=args.n_boot)
    target = site.write(loaded.path)  # and the folder's manifest, checked as it was loaded
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
    from . import gradcam, lime_explain, plots
    from .explain import overlay
    from .images import read_gray

    plots.style()
    output = _output_path(args.output, suffixes=PICTURE_SUFFIXES, inputs=[args.image])
    pixels = read_gray(args.image, size=loaded.image_size, film=True)
    probability = float(loaded.predict(pixels[None])[0])
    label = loaded.label([probability])[0]
    title = f"{shown(Path(args.image).name)}: P(pneumonia) = {probability:.2f} -> {label}"
    if args.method == "lime":
        result = lime_explain.LimeExplainer(loaded.model, settings=args.settings,
                                            threshold=loaded.threshold).explain(pixels)
        picture = lime_explain.lime_overlay(result)
    else:
        heatmap = gradcam.grad_cam(loaded.model, pixels[None], threshold=loaded.threshold)[0]
        picture = overlay(pixels, heatmap)
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


def _scratch() -> Path:
    """This user's private folder for library caches: ``$TMPDIR/pneumo-<uid>``, used only if
    it is a real folder (not a link) owned by this user and closed to others; anyone can make
    that name in a shared /tmp first, so otherwise a new private folder is made."""
    scratch = Path(tempfile.gettempdir()) / f"pneumo-{os.getuid()}"
    try:
        os.mkdir(scratch, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return _throwaway_folder()
    info = os.lstat(scratch)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() \
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return scratch
    return _throwaway_folder()


def _throwaway_folder() -> Path:
    """A new private folder, removed when the command ends."""
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="pneumo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _private_library_homes() -> None:
    """Keras writes ~/.keras/keras.json and matplotlib a font cache on first import; a command
    run on a few files should leave the home folder alone. Both go to a private temporary
    folder (:func:`_scratch`) unless the user chose theirs."""
    if all(variable in os.environ for variable in ("KERAS_HOME", "MPLCONFIGDIR")):
        return
    scratch = _scratch()
    for variable, sub in (("KERAS_HOME", "keras"), ("MPLCONFIGDIR", "matplotlib")):
        if variable not in os.environ:
            (scratch / sub).mkdir(exist_ok=True)
            os.environ[variable] = str(scratch / sub)


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
    steps = {"run": _run, "train": _train, "report": _report}
    try:
        if args.command not in steps:  # a user's quick command leaves the home folder alone
            _private_library_homes()
        return _command(args, steps)
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


def _command(args, steps) -> int:
    from .dataset import DatasetError
    from .external import ExternalError
    from .images import ImageError
    from .inference import ModelError, load_model
    from .runner import NotebookError

    try:
        with _without_library_noise():
            if args.command in steps:  # long work: progress on stdout as it happens
                return steps[args.command](args)
            if args.command == "manifest":
                return _manifest(args)
            # Explanations need the Keras model (gradients, LIME on the model); predictions
            # take the LiteRT export when the model folder holds a matching one.
            loaded = load_model(args.model,
                                runtime="keras" if args.command == "explain" else "auto")
            return {"predict": _predict, "evaluate": _evaluate, "explain": _explain,
                    "calibrate": _calibrate}[args.command](args, loaded)
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
