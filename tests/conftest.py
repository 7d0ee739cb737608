"""pytest setup shared by the unit tests and nbval."""

import os
import tempfile

import pytest

# Quiet TensorFlow's C++ start-up logs in test output (they are not errors).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download and never read a developer's Keras cache: ImageNet backbones see an
# empty cache and downloads off, so notebook 04 (nbval, whose kernels inherit this
# environment) skips them the same way on every machine. Set before Keras is imported.
# One folder for the whole session (this file and tests/conftest.py or notebooks/conftest.py
# alike): a KERAS_HOME changed after Keras is imported would not be where Keras looks.
os.environ.setdefault("PNEUMO_TESTS_KERAS_HOME", tempfile.mkdtemp(prefix="pneumo-tests-keras-"))
os.environ["KERAS_HOME"] = os.environ["PNEUMO_TESTS_KERAS_HOME"]
os.environ["PNEUMO_DOWNLOAD_WEIGHTS"] = "0"


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch):
    """Whatever a test asks for, fetching ImageNet weights fails as if offline."""
    from pneumo_helpers import transfer

    def offline(backbone):
        raise OSError(f"tests never download ({backbone})")

    monkeypatch.setattr(transfer, "_download", offline)
