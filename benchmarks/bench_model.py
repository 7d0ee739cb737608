"""Model speed: training seconds per epoch and images/s, and inference images/s from files.

    python benchmarks/bench_model.py --data ../shared/data/chest_xray [--out benchmarks/results/model.json]

Measured in one run, on the real training images:

- training: one epoch of the default five-block CNN (128 px, batch 64) on the cached,
  augmented input stream, after a warm-up of a few steps (graph tracing is not training);
- inference, end to end from image files, as ``pneumo predict`` does it: decode + resize every
  file and run the model, batch 64, on ``--predict-files`` files (624, the size of the
  official test split), with the shipped model when there is one.

Prints the figures and writes them as JSON. Performance is measured here, never in tests.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pneumo_helpers import balance, data, generators, inference, models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/chest_xray")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--predict-files", type=int, default=624)
    parser.add_argument("--out", default="benchmarks/results/model.json")
    args = parser.parse_args()

    manifest = data.build_manifest(args.data)
    rows = manifest[manifest["split"] == "train"].reset_index(drop=True)
    results = dict(machine=dict(cpus=os.cpu_count(), python=platform.python_version(),
                                tensorflow=tf.__version__, keras=keras.__version__,
                                load_average_start=os.getloadavg()[0]),
                   image_size=args.image_size, batch=args.batch, train_images=len(rows))

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

    # Inference from files, as the CLI does it.
    try:
        loaded = inference.load_model()
        which = "shipped"
    except inference.ModelError:
        loaded = inference.LoadedModel(model=model, image_size=args.image_size, channels=1)
        which = "untrained five-block (no shipped model yet)"
    files = rows["path"].iloc[:args.predict_files].tolist()
    inference.predict_files(loaded, files[:args.batch], batch_size=args.batch)  # warm-up
    start = time.perf_counter()
    table = inference.predict_files(loaded, files, batch_size=args.batch)
    seconds = time.perf_counter() - start
    x = generators.load_images(rows.iloc[:args.predict_files], image_size=loaded.image_size)
    start = time.perf_counter()
    loaded.predict(x[..., 0], batch_size=args.batch)
    model_only = time.perf_counter() - start
    results["predict"] = dict(model=which, files=len(table),
                              end_to_end_images_per_s=round(len(table) / seconds, 1),
                              model_only_images_per_s=round(len(table) / model_only, 1))
    results["machine"]["load_average_end"] = os.getloadavg()[0]

    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
