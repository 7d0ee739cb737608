"""What a transfer candidate costs: seconds per training epoch of each ImageNet backbone.

    python benchmarks/bench_transfer.py [--image-size 224] [--batch 32] [--batches 6]
        [--out benchmarks/results/transfer.json]

Each backbone of ``backbones.BACKBONES`` is built by ``build_transfer_model`` with **random
weights** (``weights=None``: the cost of a step does not depend on the weights' values, and
this machine has not got the ImageNet files), at ``--image-size`` px, on films of the bundled
sample. For each of the two stages of ``experiment.run_candidate`` (head on the frozen
backbone; then the top layers unfrozen, ``experiment.FINE_TUNE``) it times ``--batches``
training steps after one warm-up step (graph tracing is not training), and the validation
pass likewise (inference steps). An epoch is then extrapolated to the full profile's splits
(the shipped model's ``n_train`` training and ``n_val`` validation films): steps per epoch
times the median step. The JSON says so (``extrapolated_from``).

Performance is measured here, never in tests. Other work on the machine slows it: the JSON
records the load average at the start and the end.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pneumo_helpers import experiment, generators, transfer  # noqa: E402
from pneumo_helpers.backbones import BACKBONES  # noqa: E402
from pneumo_helpers.config import SAMPLE_DIR  # noqa: E402
from pneumo_helpers.images import to_unit  # noqa: E402
from pneumo_helpers.obtain import build_manifest  # noqa: E402
from pneumo_helpers.inference import SHIPPED_MODEL_DIR  # noqa: E402
from pneumo_helpers.runs import ModelLayout, read_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _median_step(step, batches: int) -> tuple[float, list[float]]:
    """Median seconds of ``batches`` calls of ``step`` after one untimed warm-up call."""
    step()
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        step()
        times.append(round(time.perf_counter() - start, 3))
    return statistics.median(times), times


def measure(backbone: str, x: np.ndarray, y: np.ndarray, *, batches: int,
            n_train: int, n_val: int) -> dict:
    """Seconds per step and per extrapolated epoch of one backbone, both stages."""
    keras.utils.set_random_seed(0)
    model = transfer.build_transfer_model(backbone=backbone, image_size=x.shape[1],
                                        weights=None)
    batch = len(x)
    train_steps, val_steps = math.ceil(n_train / batch), math.ceil(n_val / batch)
    predict, predict_times = _median_step(lambda: model.predict_on_batch(x), batches)
    row = dict(backbone=backbone, parameters=int(model.count_params()),
               inference_step_seconds=predict, inference_step_times=predict_times)
    for stage in ("head", "fine_tune"):
        if stage == "fine_tune":
            transfer.unfreeze_top(model, **experiment.FINE_TUNE)
        step, times = _median_step(lambda: model.train_on_batch(x, y), batches)
        row[f"{stage}_trainable_parameters"] = int(sum(
            np.prod(w.shape) for w in model.trainable_weights))
        row[f"{stage}_step_seconds"] = step
        row[f"{stage}_step_times"] = times
        row[f"{stage}_epoch_seconds"] = round(train_steps * step + val_steps * predict, 1)
        print(f"{backbone:15s} {stage:9s} {step:6.2f} s/step -> "
              f"{row[f'{stage}_epoch_seconds']:7.1f} s/epoch", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6, help="timed steps per measure")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES),
                        choices=list(BACKBONES))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "transfer.json")
    args = parser.parse_args(argv)
    shipped = read_json(ModelLayout(SHIPPED_MODEL_DIR).config)
    n_train, n_val = shipped["n_train"], shipped["n_val"]
    rows = build_manifest(SAMPLE_DIR).sample(args.batch, random_state=0).reset_index(drop=True)
    x = to_unit(generators.load_images(rows, image_size=args.image_size))
    y = (rows["label"] == "PNEUMONIA").to_numpy("float32")
    load_start = os.getloadavg()
    results = [measure(b, x, y, batches=args.batches, n_train=n_train, n_val=n_val)
               for b in args.backbones]
    record = dict(
        what="seconds per training epoch of each transfer candidate, random weights",
        image_size=args.image_size, batch_size=args.batch, timed_steps=args.batches,
        extrapolated_from=(f"the median of {args.batches} timed steps of {args.batch} sample "
                           f"films (after one warm-up step), times the steps of an epoch of "
                           f"the full profile's splits: {n_train} training films and "
                           f"{n_val} validation films"),
        n_train=n_train, n_val=n_val, backbones=results,
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(),
                     python=platform.python_version(), keras=keras.__version__,
                     backend=keras.backend.backend(),
                     load_average_start=[round(v, 2) for v in load_start],
                     load_average_end=[round(v, 2) for v in os.getloadavg()]),
        date=time.strftime("%Y-%m-%d"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
