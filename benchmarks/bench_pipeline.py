"""Input-pipeline throughput: decode-once cache + tf.data versus a naive per-epoch PIL loop.

For each image size, in one run, measures images per second (wall clock) and images per
CPU-second (this process's CPU time: what a stage costs whatever else the machine runs) of

(a) the cold pass: decode + resize every file into the cache (``load_images``, fresh temp
    cache folder);
(b) one cached, augmented, shuffled training epoch through ``make_dataset``, iterated fully
    in a Python loop (after a first epoch that traces and warms up);
(c) the naive baseline a ``keras.utils.PyDataset`` typically does: every epoch, open each file
    with PIL in a Python loop, resize and normalise with numpy, and stack batches;

plus, to see where time goes, a cached epoch without augmentation (what validation and
prediction read) and ``Augment`` alone on one batch; the ratio (b)/(c) and machine facts.
(b), the eval epoch and (c) run ``--repeats`` times, interleaved so that other work starting or
stopping on the machine affects them alike; the medians are reported, the speed-up is the
median of the ratios of neighbouring runs, and every run is kept in the JSON.
Targets: (b) >= 4,000 images/s and >= 10x (c) at 150 x 150.

Then, to show whether training would wait on the input, the seconds per batch of

(d) ``model.fit`` of ``models.build_five_block_cnn`` on ``--steps`` batches of (b)
    (after a short warm-up fit that traces the train step), against
(e) iterating the same number of batches of (b) alone, and
(f) ``model.fit`` on those batches already in memory (the training step alone).

(d) close to (f), and (e) well below both, means the pipeline is not what training waits on.
The 1-minute load average is recorded at the start and end of each size: other work on the
machine slows every wall-clock figure.

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
from statistics import median
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from pneumo_helpers.obtain import build_manifest  # noqa: E402
from pneumo_helpers.augment import Augment  # noqa: E402
from pneumo_helpers.generators import load_images, make_dataset  # noqa: E402
from pneumo_helpers.images import to_unit  # noqa: E402
from pneumo_helpers.models import build_five_block_cnn  # noqa: E402

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
            xs.append(to_unit(np.asarray(gray)))
        yield np.stack(xs)[..., None], labels[start:start + batch]


def count_images(batches) -> int:
    return sum(int(y.shape[0]) for _, y in batches)


def bench_size(manifest, size: int, batch: int, steps: int, repeats: int) -> dict:
    n = len(manifest)
    load_at_start = os.getloadavg()[0]
    labels = (manifest["label"] == "PNEUMONIA").to_numpy(np.float32)
    paths = list(manifest["path"])
    with tempfile.TemporaryDirectory(prefix="pneumo-bench-") as cache:
        cold = timed(lambda: load_images(manifest, image_size=size, cache_dir=cache,
                                         progress=False))
        kwargs = dict(image_size=size, batch_size=batch, cache_dir=cache)
        train_ds = make_dataset(manifest, training=True, **kwargs)
        eval_ds = make_dataset(manifest, **kwargs)
        first_epoch = timed(lambda: count_images(train_ds))  # includes tracing and warm-up
        count_images(eval_ds)  # warm-up (tracing)
        # Interleaved, so that a change in the machine's load hits all three alike.
        runs = {"train_epoch": [], "eval_epoch": [], "naive": []}
        for _ in range(repeats):
            runs["train_epoch"].append(timed(lambda: count_images(train_ds)))
            runs["eval_epoch"].append(timed(lambda: count_images(eval_ds)))
            runs["naive"].append(timed(
                lambda: count_images(naive_batches(paths, labels, size, batch))))
        assert all(t.result == n for timings in runs.values() for t in timings)

        # The augmentation alone, on one cached uint8 batch, as the pipeline calls it.
        x = cold.result[:batch]
        augment = Augment()
        augment(x, (0, 0))
        reps = 20
        augment_only = timed(lambda: [augment(x, (0, i)) for i in range(reps)])
        training = bench_training(train_ds, size, steps)

    result = {"image_size": size, "images": n, "batch_size": batch, "repeats": repeats}
    for name, timings, images in (("cold_cache", [cold], n), ("train_epoch1", [first_epoch], n),
                                  *((name, timings, n) for name, timings in runs.items()),
                                  ("augment_only", [augment_only], reps * len(x))):
        rates = [timing.rates(images) for timing in timings]
        result[f"{name}_images_per_s"] = median(per_s for per_s, _ in rates)
        result[f"{name}_images_per_cpu_s"] = median(per_cpu_s for _, per_cpu_s in rates)
        if len(rates) > 1:
            result[f"{name}_images_per_s_runs"] = [per_s for per_s, _ in rates]
    # Ratios of runs taken back to back (a wall-time ratio of neighbours), then the median.
    naive_s = [t.wall for t in runs["naive"]]
    result["speedup_vs_naive"] = median(
        w / t.wall for w, t in zip(naive_s, runs["train_epoch"]))
    result["eval_speedup_vs_naive"] = median(
        w / t.wall for w, t in zip(naive_s, runs["eval_epoch"]))
    result.update(training)
    result["load_average_1min"] = [load_at_start, os.getloadavg()[0]]
    return result


def bench_training(train_ds: tf.data.Dataset, size: int, steps: int) -> dict:
    """Seconds per batch: fit on the pipeline, the pipeline alone, fit on batches in memory."""
    keras.utils.set_random_seed(0)
    model = build_five_block_cnn(image_size=size)
    steps = min(steps, int(train_ds.cardinality()))
    batches = train_ds.take(steps)
    model.fit(train_ds.take(3), epochs=1, verbose=0, shuffle=False)  # traces the train step
    fit = timed(lambda: model.fit(batches, epochs=1, verbose=0, shuffle=False))
    iterate = timed(lambda: count_images(batches))
    xs, ys = zip(*batches)
    in_memory = tf.data.Dataset.from_tensor_slices((tf.concat(xs, 0), tf.concat(ys, 0)))
    in_memory = in_memory.batch(int(xs[0].shape[0]))
    compute = timed(lambda: model.fit(in_memory, epochs=1, verbose=0, shuffle=False))
    return {"train_steps": steps, "train_step_s": fit.wall / steps,
            "input_batch_s": iterate.wall / steps,
            "train_step_in_memory_s": compute.wall / steps,
            "input_share_of_step": iterate.wall / fit.wall}


def machine_info() -> dict:
    return {"cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None,
            "cpu_model": _cpu_model(),
            "platform": platform.platform(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "pillow": Image.__version__, "opencv": cv2.__version__}


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
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed epochs of (b), eval and (c), interleaved; medians reported")
    parser.add_argument("--steps", type=int, default=30,
                        help="batches timed for training step vs input time")
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
        r = bench_size(manifest, size, args.batch, args.steps, args.repeats)
        results.append(r)
        for unit in ("s", "cpu_s"):
            label = "images/s" if unit == "s" else "images/CPU-s"
            ratio = f"{r['speedup_vs_naive']:>8.1f}x" if unit == "s" else ""
            print(f"{size if unit == 's' else '':>5} {label:>14}"
                  + "".join(f"{r[f'{key}_images_per_{unit}']:>11,.0f}" for _, key in columns)
                  + ratio, flush=True)
        print(f"{'':>5} {'s per batch':>14}  fit on pipeline {r['train_step_s']:.3f}, "
              f"pipeline alone {r['input_batch_s']:.4f}, fit in memory "
              f"{r['train_step_in_memory_s']:.3f}  (load {r['load_average_1min'][0]:.1f}"
              f"-{r['load_average_1min'][1]:.1f})", flush=True)
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
