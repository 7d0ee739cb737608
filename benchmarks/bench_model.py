"""Model speed: training seconds per epoch and images/s, and inference images/s from files.

    python benchmarks/bench_model.py --data ../shared/data/chest_xray [--out benchmarks/results/model.json]
        [--also runs/train-full/models/member-s42]   # another model's prediction, same run

Measured in one run, on the real training images:

- training: one epoch of the default five-block CNN (the full profile's image size, batch 64)
  on the cached, augmented input stream, after a warm-up of a few steps (graph tracing is not
  training);
- inference, end to end from image files, as ``pneumo predict`` does it: decode + resize every
  file and run the model, batch 64, on ``--predict-files`` files (624, the size of the
  official test split), with the shipped model in each runtime (Keras; the LiteRT export
  ``pneumo`` uses when it matches the model). One warm-up pass, then the
  median of ``--repeats`` passes (the first pass of a process is slower while TensorFlow and
  the allocator warm up); the model alone on the decoded images likewise;
- the ``pneumo predict`` command on one file and on a folder of those files, timed as a user
  sees it (process start, imports and model load included; medians of ``--repeats``), and a
  bare ``python -c "import tensorflow"`` in the same run: the ratio of the two is the figure
  to compare across machines.

Prints the figures and writes them as JSON. Performance is measured here, never in tests.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pneumo_helpers import balance, generators, inference, models, obtain  # noqa: E402
from pneumo_helpers.config import PROFILES  # noqa: E402


def _median_rate(fn, n_items: int, repeats: int) -> tuple[float, list[float]]:
    """Median items/s of ``repeats`` calls of ``fn`` (and every run's figure)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(round(n_items / (time.perf_counter() - start), 1))
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/chest_xray")
    parser.add_argument("--image-size", type=int, default=PROFILES["full"]["recipe"].image_size)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--predict-files", type=int, default=624)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/model.json")
    parser.add_argument("--also", nargs="*", default=[], metavar="MODEL_DIR",
                        help="other model folders whose prediction speed is measured in the "
                             "same run (e.g. a candidate of the sweep)")
    args = parser.parse_args()

    manifest = obtain.build_manifest(args.data)
    rows = manifest[manifest["split"] == "train"].reset_index(drop=True)
    results = dict(machine=dict(cpus=os.cpu_count(), python=platform.python_version(),
                                tensorflow=tf.__version__, keras=keras.__version__,
                                load_average_start=os.getloadavg()[0]),
                   image_size=args.image_size, batch=args.batch, train_images=len(rows))

    # Inference from files, as the CLI does it: measured first, in the state a fresh
    # `pneumo predict` process has (not after a training epoch filled the allocator), with
    # each runtime the shipped model has (Keras, and the LiteRT export `pneumo` prefers).
    # Every 8th file: both classes, like a test folder.
    picked = rows.iloc[::max(1, len(rows) // args.predict_files)].iloc[:args.predict_files]
    files = picked["path"].tolist()
    results["predict"], results["predict_also"] = {}, {}
    for folder in [None, *args.also]:
        target = results["predict"] if folder is None else \
            results["predict_also"].setdefault(Path(folder).name, {})
        for runtime in ("keras", "litert"):
            try:
                loaded = inference.load_model(folder, runtime=runtime)
            except inference.ModelError as exc:
                print(f"skipping {runtime}: {exc}", file=sys.stderr)
                continue
            inference.predict_files(loaded, files, batch_size=args.batch)  # warm-up pass
            end_to_end, runs = _median_rate(
                lambda: inference.predict_files(loaded, files, batch_size=args.batch),
                len(files), args.repeats)
            x = generators.load_images(picked, image_size=loaded.image_size)[..., 0]
            model_only, model_runs = _median_rate(
                lambda: loaded.predict(x, batch_size=args.batch), len(files), args.repeats)
            target[runtime] = dict(
                image_size=loaded.image_size, files=len(files),
                end_to_end_images_per_s=end_to_end, end_to_end_runs=runs,
                model_only_images_per_s=model_only, model_only_runs=model_runs)

    # The commands a user runs, whole (process start, imports, model load), warm file cache:
    # on one file, against a bare `import tensorflow` timed in the same run (absolute times on
    # a shared machine vary 2x between runs; the ratio does not), and on a folder of 624.
    pneumo = str(Path(sys.executable).with_name("pneumo"))

    def wall(command) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True)
            # 1: some files were refused (the chest-film gate abstains on a few real films).
            if done.returncode not in (0, 1):
                raise RuntimeError(f"{command} failed: {done.stderr.decode()[-500:]}")
            times.append(time.perf_counter() - start)
        return round(statistics.median(times), 3)
    with tempfile.TemporaryDirectory() as folder:
        for path in files:
            shutil.copy(path, folder)
        one = wall([pneumo, "predict", str(Path(folder) / Path(files[0]).name)])
        many = wall([pneumo, "predict", folder, "-o", str(Path(folder) / "p.csv")])
    import_tf = wall([sys.executable, "-c", "import tensorflow"])
    results["pneumo_predict_command"] = dict(
        one_file_seconds=one, import_tensorflow_seconds=import_tf,
        one_file_over_import_tensorflow=round(one / import_tf, 3),
        folder_files=len(files), folder_seconds=many,
        folder_images_per_s_including_startup=round(len(files) / many, 1))

    with tempfile.TemporaryDirectory() as cache:
        # Training: the cache is filled first so the epoch measures training, not decoding.
        generators.load_images(rows, image_size=args.image_size, cache_dir=cache)
        chosen = balance.rebalance(rows["label"], "class_weight")
        stream = generators.make_dataset(rows, image_size=args.image_size,
                                         batch_size=args.batch, training=True,
                                         indices=chosen.indices, cache_dir=cache)
        model = models.build_five_block_cnn(image_size=args.image_size)
        model.fit(stream.take(3), epochs=1, verbose=0, class_weight=chosen.class_weight)
        start = time.perf_counter()
        model.fit(stream, epochs=1, verbose=0, class_weight=chosen.class_weight)
        epoch = time.perf_counter() - start
        results["train"] = dict(seconds_per_epoch=round(epoch, 2),
                                images_per_s=round(len(rows) / epoch, 1),
                                parameters=model.count_params())

    results["machine"]["load_average_end"] = os.getloadavg()[0]

    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
