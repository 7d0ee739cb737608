"""pytest setup shared by the unit tests and nbval."""

import os

# Quiet TensorFlow's C++ start-up logs in test output (they are not errors).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
