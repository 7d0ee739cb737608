"""Input-pipeline throughput: decode-once cache + tf.data versus a naive per-epoch PIL loop.

For each image size, in one run, measures images per second (wall clock) and images per
CPU-second (this process's CPU time: what a stage costs whatever else the machine runs) of

(a) the cold pass: decode + resize every file into the cache (``load_images``, fresh temp
    cache folder);
(b) one cached, augmented, shuffled training epoch through ``make_dataset``, iterated fully
    (two epochs run, the second reported, so tracing and warm-up are excluded);
(c) the naive baseline a ``keras.utils.PyDataset`` typically does: every epoch, open each file
    with PIL in a Python loop, resize and normalise with numpy, and stack batches;

plus, to see where time goes, a cached epoch without augmentation (what validation and
prediction read) and ``Augment`` alone on one batch; the ratio (b)/(c) and machine facts.
Targets: (b) >= 4,000 images/s and >= 10x (c) at 150 x 150.

    python benchmarks/bench_pipeline.py --data ../shared/data/chest_xray --sizes 150 224
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from pneumo_helpers.data import build_manifest  # noqa: E402
from pneumo_helpers.generators import Augment, load_images, make_dataset  # noqa: E402

TARGET_IMAGES_PER_S = 4000
TARGET_RATIO = 10


@dataclass
class Timing:
    wall: float  # seconds
    cpu: float  # CPU seconds of this process, all threads
    result: object = None

    def rates(self, images: int) -> tuple[float, float]:
        """(images per second, images per CPU-second)."""
        return images / self.wall, images / self.cpu


def timed(fn) -> Timing:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu, result)


def naive_batches(paths: list[str], labels: np.ndarray, size: int, batch: int):
    """One epoch the naive way: yields ``(x, y)`` batches like a PyDataset's __getitem__."""
    for start in range(0, len(paths), batch):
        xs = []
        for path in paths[start:start + batch]:
            with Image.open(path) as img:
                gray = img.convert("L").resize((size, size), Image.BILINEAR)
            xs.append(np.asarray(gray, dtype=np.float32) / 255.0)
        yield np.stack(xs)[..., None], labels[start:start + batch]


def count_images(batches) -> int:
    return sum(int(y.shape[0]) for _, y in batches)


def bench_size(manifest, size: int, batch: int) -> dict:
    n = len(manifest)
    labels = (manifest["label"] == "PNEUMONIA").to_numpy(np.float32)
    with tempfile.TemporaryDirectory(prefix="pneumo-bench-") as cache:
        cold = timed(lambda: load_images(manifest, image_size=size, cache_dir=cache,
                                         progress=False))
        kwargs = dict(image_size=size, batch_size=batch, cache_dir=cache)
        train_ds = make_dataset(manifest, training=True, **kwargs)
        epochs = [timed(lambda: count_images(train_ds)) for _ in range(2)]
        eval_ds = make_dataset(manifest, **kwargs)
        count_images(eval_ds)  # warm-up (tracing)
        evaluation = timed(lambda: count_images(eval_ds))
        assert all(t.result == n for t in (*epochs, evaluation))

        # The augmentation alone, on one cached batch, compiled as in the pipeline.
        x = tf.constant(cold.result[:batch], tf.float32) / 255.0
        augment = tf.function(Augment().__call__)
        augment(x, tf.constant([0, 0]))
        reps = 20
        augment_only = timed(lambda: [augment(x, tf.constant([0, i])) for i in range(reps)])

    paths = list(manifest["path"])
    naive = timed(lambda: count_images(naive_batches(paths, labels, size, batch)))
    assert naive.result == n

    result = {"image_size": size, "images": n, "batch_size": batch}
    for name, timing, images in (("cold_cache", cold, n), ("train_epoch1", epochs[0], n),
                                 ("train_epoch", epochs[1], n), ("eval_epoch", evaluation, n),
                                 ("augment_only", augment_only, reps * len(x)),
                                 ("naive", naive, n)):
        per_s, per_cpu_s = timing.rates(images)
        result[f"{name}_images_per_s"] = per_s
        result[f"{name}_images_per_cpu_s"] = per_cpu_s
    result["speedup_vs_naive"] = result["train_epoch_images_per_s"] / result["naive_images_per_s"]
    result["eval_speedup_vs_naive"] = (result["eval_epoch_images_per_s"]
                                       / result["naive_images_per_s"])
    return result


def machine_info() -> dict:
    return {"cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None,
            "cpu_model": _cpu_model(),
            "platform": platform.platform(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "pillow": Image.__version__}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/chest_xray",
                        help="dataset folder holding train/{NORMAL,PNEUMONIA}")
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 224])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only N training images, spread over both classes (quick run)")
    parser.add_argument("--out", default="benchmarks/results/pipeline.json")
    args = parser.parse_args(argv)

    manifest = build_manifest(args.data)
    manifest = manifest[manifest["split"] == "train"].reset_index(drop=True)
    if args.limit:
        step = max(1, len(manifest) // args.limit)  # every k-th file keeps both classes
        manifest = manifest.iloc[::step].head(args.limit).reset_index(drop=True)
    print(f"{len(manifest)} images from {args.data}; {os.cpu_count()} CPUs; "
          f"TF {tf.__version__}, Keras {keras.__version__}", flush=True)

    # Other work on the machine slows every wall-clock figure: record how busy it was.
    load = {"load_average_1min_at_start": os.getloadavg()[0]}
    columns = [("(a) cold", "cold_cache"), ("(b) train", "train_epoch"),
               ("eval", "eval_epoch"), ("augment", "augment_only"), ("(c) naive", "naive")]
    print(f"{'size':>5} {'':>14}" + "".join(f"{title:>11}" for title, _ in columns)
          + f"{'(b)/(c)':>9}", flush=True)
    results = []
    for size in args.sizes:
        r = bench_size(manifest, size, args.batch)
        results.append(r)
        for unit in ("s", "cpu_s"):
            label = "images/s" if unit == "s" else "images/CPU-s"
            ratio = f"{r['speedup_vs_naive']:>8.1f}x" if unit == "s" else ""
            print(f"{size if unit == 's' else '':>5} {label:>14}"
                  + "".join(f"{r[f'{key}_images_per_{unit}']:>11,.0f}" for _, key in columns)
                  + ratio, flush=True)
    load["load_average_1min_at_end"] = os.getloadavg()[0]

    targets = None
    at_150 = [r for r in results if r["image_size"] == 150]
    if at_150:
        r = at_150[0]
        targets = {"train_images_per_s_at_150": TARGET_IMAGES_PER_S,
                   "speedup_at_150": TARGET_RATIO,
                   "met": bool(r["train_epoch_images_per_s"] >= TARGET_IMAGES_PER_S
                               and r["speedup_vs_naive"] >= TARGET_RATIO)}
        print(f"targets at 150 px (>= {TARGET_IMAGES_PER_S:,} images/s and >= {TARGET_RATIO}x "
              f"naive): {'met' if targets['met'] else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(args.data), "limit": args.limit,
                               "machine": {**machine_info(), **load}, "results": results,
                               "targets": targets,
                               "command": " ".join(["python", *sys.argv])}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
