"""nbval settings for the notebooks.

Only cells marked ``# NBVAL_CHECK_OUTPUT`` are compared (``--nbval-lax``). stderr streams are
never compared: TensorFlow 2.21 writes ``I0000``/``E0000 cuInit`` lines there that no environment
variable silences, and whether they land in a cell varies from run to run. Rich HTML tables are
compared through their ``text/plain`` twin.
"""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("text/html", "image/png", "image/jpeg", "stderr",
                                   "application/javascript")
