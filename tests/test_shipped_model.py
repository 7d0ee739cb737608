"""The shipped model gives, on a few bundled images, the probabilities stored when it was made.

Everything between a file on disk and the model's output is exercised: decoding, resizing,
scaling to [0, 1] and the model itself. Drift in any of them (a second /255, another resize,
a different decoder) moves the probabilities of the images the model is unsure of at once, so
a tolerance of 1e-3 catches it while float differences between machines stay far below it.
The stored numbers come from ``tools/shipped_reference.py``, run when the shipped model
changes; the test refuses to compare against numbers stored for another model file.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pneumo_helpers import files, inference
from pneumo_helpers.config import SAMPLE_DIR

REFERENCE = Path(__file__).parent / "data" / "shipped_model_reference.json"
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def reference():
    stored = json.loads(REFERENCE.read_text())
    assert stored["model_sha256"] == files.sha256(inference.SHIPPED_MODEL_DIR / "model.keras"), (
        "the shipped model.keras is not the one the reference probabilities were stored for; "
        "after retraining it on purpose, run python tools/shipped_reference.py")
    return stored


@pytest.fixture(scope="module", params=inference.RUNTIMES[1:])
def shipped(request):
    """The shipped model in every runtime `pneumo` can use: Keras and the LiteRT export."""
    loaded = inference.load_model(runtime=request.param)
    assert loaded.runtime == request.param
    return loaded


def test_reference_covers_both_classes_and_unsure_images(reference):
    probabilities = reference["probabilities"]
    assert {name.split("/")[1] for name in probabilities} == {"NORMAL", "PNEUMONIA"}
    # Images near 0.5 are the ones that move when preprocessing drifts.
    assert sum(0.1 < p < 0.9 for p in probabilities.values()) >= 4


def test_files_give_the_stored_probabilities(reference, shipped):
    names = list(reference["probabilities"])
    table = inference.predict_files(shipped, [SAMPLE_DIR / name for name in names])
    expected = np.array([reference["probabilities"][name] for name in names])
    assert (table["error"] == "").all(), table
    np.testing.assert_allclose(table["probability"].to_numpy(), expected, atol=TOLERANCE)
    # The reference holds the validation threshold; a site threshold, when shipped, calls.
    from pneumo_helpers.metrics_report import MetricsReport
    from pneumo_helpers.runs import ModelLayout

    validation = MetricsReport.read(ModelLayout(shipped.path).val_metrics).threshold
    assert validation == pytest.approx(reference["threshold"], abs=1e-6)
    if shipped.threshold_source == "site":
        assert shipped.site.model_sha256 == shipped.sha256 and 0 < shipped.threshold < 1
    else:
        assert shipped.threshold == pytest.approx(validation, abs=1e-6)


def test_labels_follow_the_stored_probabilities(reference, shipped):
    names = list(reference["probabilities"])
    table = inference.predict_files(shipped, [SAMPLE_DIR / name for name in names])
    expected = ["PNEUMONIA" if reference["probabilities"][n] >= shipped.threshold
                else "NORMAL" for n in names]
    assert table["label"].tolist() == expected
