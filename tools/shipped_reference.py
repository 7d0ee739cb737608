"""Store the shipped model's probabilities for a few bundled images (tests/data/).

``tests/test_shipped_model.py`` predicts the same images with every runtime and compares with
these numbers: a change in decoding, resizing or scaling (the /255), or a model file that is
not the one these were stored for, fails the test. Run this only when the shipped model itself
changes (``make train-full`` does), never to make a failing test pass.

    python tools/shipped_reference.py
"""

import json
import sys
from pathlib import Path

from pneumo_helpers import inference
from pneumo_helpers.files import sha256
from pneumo_helpers.metrics_report import MetricsReport
from pneumo_helpers.runs import ModelLayout
from pneumo_helpers.config import SAMPLE_DIR
from pneumo_helpers.labels import CLASSES

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "shipped_model_reference.json"
PER_CLASS = 4


def reference_files(loaded) -> list[Path]:
    """Per class of the bundled sample's test split, the first image (by name) and the
    ``PER_CLASS - 1`` images the model is least sure of: a probability near 0 or 1 hardly moves
    when preprocessing drifts, one near the middle moves at once."""
    chosen = []
    for label in CLASSES:
        files = sorted((SAMPLE_DIR / "test" / label).glob("*.jpeg"))
        p = inference.predict_files(loaded, files)["probability"].to_numpy()
        unsure = sorted(range(1, len(files)), key=lambda i: abs(p[i] - 0.5))
        chosen += [files[i] for i in sorted([0, *unsure[:PER_CLASS - 1]])]
    return chosen


def main() -> int:
    loaded = inference.load_model()
    files = reference_files(loaded)
    table = inference.predict_files(loaded, files)
    REFERENCE.write_text(json.dumps({
        "model_sha256": sha256(ModelLayout(inference.SHIPPED_MODEL_DIR).model),
        # The validation threshold: a site threshold is chosen later, per site.
        "threshold": MetricsReport.read(ModelLayout(loaded.path).val_metrics).threshold,
        "probabilities": {path.relative_to(SAMPLE_DIR).as_posix(): float(p)
                          for path, p in zip(files, table["probability"])},
    }, indent=2) + "\n")
    print(f"wrote {len(files)} probabilities to {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
