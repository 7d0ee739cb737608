"""nbval settings for the notebooks.

Only cells marked ``# NBVAL_CHECK_OUTPUT`` are compared (``--nbval-lax``). stderr streams are
never compared: TensorFlow 2.21 writes ``I0000``/``E0000 cuInit`` lines there that no environment
variable silences, and whether they land in a cell varies from run to run. Rich HTML tables are
compared through their ``text/plain`` twin. Like the unit tests (``tests/conftest.py``), the
kernels get an empty Keras cache and no weight downloads, so 04 skips its ImageNet backbones
the same way on every machine.
"""

import os
import tempfile

# One folder for the whole session (this file and tests/conftest.py or notebooks/conftest.py
# alike): a KERAS_HOME changed after Keras is imported would not be where Keras looks.
os.environ.setdefault("PNEUMO_TESTS_KERAS_HOME", tempfile.mkdtemp(prefix="pneumo-tests-keras-"))
os.environ["KERAS_HOME"] = os.environ["PNEUMO_TESTS_KERAS_HOME"]
os.environ["PNEUMO_DOWNLOAD_WEIGHTS"] = "0"


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("text/html", "image/png", "image/jpeg", "stderr",
                                   "application/javascript")
