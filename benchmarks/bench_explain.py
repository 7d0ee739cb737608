"""Time the explainers on the default-size CNN: LIME (default, thorough, a batch of 32) and
Grad-CAM (single image and batched), on real X-rays from the bundled sample at the full
profile's image size (112 px).

The model is untrained (timing does not depend on the weights). Timings are medians over
``--repeats`` runs after one warm-up, so tracing and first-call costs are excluded; the load
average is recorded because the two CPU cores may be shared. For reference the script also
times a plain ``lime`` call (quickshift segmentation, lime's own loop, batch 10).

    python benchmarks/bench_explain.py --out benchmarks/results/explain.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pneumo_helpers import gradcam, lime_explain  # noqa: E402
from pneumo_helpers.config import PROFILES, SAMPLE_DIR  # noqa: E402
from pneumo_helpers.images import read_gray, to_unit  # noqa: E402


def build_model(image_size: int) -> keras.Model:
    """The project's five-block CNN, or a comparable stand-in if models.py lacks it."""
    try:
        from pneumo_helpers.models import build_five_block_cnn
    except ImportError:
        layers = keras.layers
        inputs = keras.Input((image_size, image_size, 1))
        x = inputs
        for i, width in enumerate((16, 32, 64, 128, 256)):
            conv = layers.Conv2D if i == 0 else layers.SeparableConv2D
            x = conv(width, 3, padding="same", activation="relu",
                     name="last_conv" if i == 4 else None)(x)
            x = layers.MaxPooling2D()(x)
        x = layers.GlobalAveragePooling2D()(x)
        outputs = layers.Dense(1, activation="sigmoid")(layers.Dense(64, activation="relu")(x))
        return keras.Model(inputs, outputs, name="stand_in_cnn")
    return build_five_block_cnn(image_size=image_size)


def sample_images(n: int, image_size: int) -> np.ndarray:
    paths = sorted(SAMPLE_DIR.glob("*/*/*.jpeg"))[:n]
    return np.stack([read_gray(p, image_size) for p in paths])


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_lime(model, image: np.ndarray, num_samples: int) -> float:
    """Seconds of lime used as its README shows: quickshift, lime's loop and progress bar,
    batches of 10 through ``model.predict`` (gray = mean of RGB)."""
    from lime import lime_image

    def classifier(rgb):
        p = model.predict(rgb.mean(axis=-1, keepdims=True), verbose=0).ravel()
        return np.stack([1 - p, p], axis=1)
    classifier(np.zeros((10, *image.shape, 3)))  # trace predict() outside the timing
    start = time.perf_counter()
    lime_image.LimeImageExplainer(random_state=0).explain_instance(
        to_unit(image).astype(float), classifier, top_labels=1, num_samples=num_samples, hide_color=0)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/explain.json"))
    parser.add_argument("--image-size", type=int, default=PROFILES["full"]["recipe"].image_size)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="images in the LIME batch")
    parser.add_argument("--skip-plain-lime", action="store_true")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    model = build_model(args.image_size)
    images = sample_images(max(args.batch, 64), args.image_size)
    default = lime_explain.LimeExplainer(model)
    thorough = lime_explain.LimeExplainer(model, settings="thorough")
    cam = gradcam.GradCam(model)

    results = {
        "model": model.name,
        "image_size": args.image_size,
        "model_params": int(model.count_params()),
        "lime_default": {**lime_explain.LIME_SETTINGS["default"],
                         "seconds_per_image": timed(lambda: default.explain(images[0]),
                                                    args.repeats)},
        "lime_thorough": {**lime_explain.LIME_SETTINGS["thorough"],
                          "seconds_per_image": timed(lambda: thorough.explain(images[1]),
                                                     max(1, args.repeats // 2))},
    }
    start = time.perf_counter()
    default.explain_batch(images[:args.batch])
    results["lime_batch"] = {"images": args.batch, "seconds": time.perf_counter() - start}
    results["gradcam"] = {
        "seconds_per_image_single": timed(lambda: [cam(image) for image in images[:16]],
                                          args.repeats) / 16,
        "seconds_per_image_batched": timed(lambda: cam(images[:64]), args.repeats) / 64,
        "seconds_first_call_with_tracing": timed(
            lambda: gradcam.grad_cam(model, images[:1]), 1),
    }
    # Model inference alone bounds LIME from below: num_samples forward passes.
    forward = lime_explain.LimeExplainer(model).predict_fn
    rgb = np.repeat(to_unit(images[:1])[..., None], 3, axis=-1).repeat(1000, axis=0)
    results["model_seconds_per_1000_images"] = timed(lambda: forward(rgb), args.repeats)
    if not args.skip_plain_lime:
        results["plain_lime_quickshift_seconds"] = plain_lime(model, images[0], 1000)
    results["machine"] = {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
                          "python": platform.python_version(), "keras": keras.__version__}

    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
