"""What each ``pneumo`` subcommand does, once :mod:`pneumo_helpers.cli` has parsed it.

Every function takes the parsed arguments (and, for the commands that apply a model, the
loaded model) and returns whether every input got a label; :mod:`pneumo_helpers.cli` turns
that, and the errors raised here, into exit statuses. A problem with what the user asked for
is a :class:`UserError`: one line, never a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .config import RunConfig, shown_path
from .recipe import THRESHOLD_RULE

__all__ = ["UserError", "shown", "spreadsheet_safe", "run_notebooks", "write_manifests",
           "train_shipped_model", "write_report", "predict_images", "evaluate_folder",
           "calibrate_site", "explain_image"]

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf")


class UserError(Exception):
    """An error in what the user asked for: printed as one line, exit status 2."""


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


def _series_settings(args) -> None:
    """Folders the notebooks' kernels read from the environment, as every PNEUMO_* setting."""
    for name, flag in (("external", "--external"), ("evaluations", "--evaluations")):
        folder = getattr(args, name, None)
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such folder ({flag})")
        os.environ[f"PNEUMO_{name.upper()}_DIR"] = str(Path(folder).resolve())


def run_notebooks(args) -> bool:
    from .runner import run_series

    _series_settings(args)
    cfg = RunConfig.from_params(data_dir=args.data, run_dir=args.run_dir,
                                profile=args.profile)
    run_series(cfg.run_dir, data=args.data, profile=cfg.profile, in_place=args.in_place,
               only=args.only, report=lambda line: print(line, flush=True))
    return True


def write_manifests(args) -> bool:
    from .runs import ModelLayout

    for folder in map(Path, args.folders):
        if not (folder / "model.keras").is_file():
            raise UserError(f"{folder}: no model.keras; not a model folder")
        print(f"wrote {shown(ModelLayout(folder).write_manifest())}")
    return True


def train_shipped_model(args) -> bool:
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
        return True
    card = ship.write_card(cfg.run_dir, **({"out": out} if out else {}),
                           external_dir=args.external)
    print(f"shipped model, card and LiteRT export written to {shown(shown_path(card.parent))}")
    return True


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


def write_report(args) -> bool:
    from . import deck, notebooks_pdf, readme
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
        print(shown_path(readme.replace_readme_block(
            Path("README.md"), readme.readme_block(args.run_dir, readme_dir=Path.cwd(),
                                                  evaluations=args.evaluations))))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # no run, no Chromium
        raise UserError(str(exc)) from None
    return True


#: Fewer images than this of a class and an evaluation's intervals say little.
FEW_PER_CLASS = 30


def _labelled_files(folder: Path, split: str) -> tuple[list[tuple[str, int]], str | None]:
    """The (file, label) pairs of a labelled folder, and the split they came from (``None``
    when the class folders sit at its root, where ``--split`` does not apply).

    Raises:
        UserError: no class folders, or a folder beside them whose images have no label.
    """
    from .labels import CLASSES
    from .image_files import collect_images

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


def _list_skipped(table) -> bool:
    """Print a line on stderr for each file that got no label; True when there is none."""
    bad = table[table["error"] != ""]
    for row in bad.itertuples():
        print(f"pneumo: skipped {shown(row.file)}: {shown(row.error)}", file=sys.stderr)
    return bad.empty


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


def predict_images(args, loaded) -> bool:
    from .image_files import collect_images
    from .inference import predict_files

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
    return _list_skipped(table)


def evaluate_folder(args, loaded) -> bool:
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
    return _list_skipped(table)


def calibrate_site(args, loaded) -> bool:
    from . import external
    from .inference import predict_files

    if loaded.path is None or not loaded.path.is_dir():
        raise UserError("calibrate needs a model folder (--model FOLDER) to store the site "
                        "threshold in")
    rows = external.labelled_rows(args.data, split=args.split)
    table = predict_files(loaded, rows["path"])
    ok = (table["error"] == "").to_numpy()
    if not _list_skipped(table):
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
    return bool(ok.all())


def explain_image(args, loaded) -> bool:
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
    return True

