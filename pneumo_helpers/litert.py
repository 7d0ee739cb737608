"""The LiteRT runtime: a model folder's ``model.tflite`` run without TensorFlow.

:func:`pneumo_helpers.inference.export_litert` writes the export and its ``export.json``;
:func:`matching_export` says whether that export was made from the folder's ``model.keras``;
:class:`LiteModel` runs it with the small ``ai_edge_litert`` interpreter, which
:func:`pneumo_helpers.inference.load_model` prefers when both hold.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .runs import ModelLayout

__all__ = ["ExportChanged", "LiteModel", "matching_export"]


class ExportChanged(ValueError):
    """A ``model.tflite`` that is not the file its ``export.json`` records."""


class LiteModel:
    """A LiteRT (TensorFlow Lite) export run by the small ``ai_edge_litert`` interpreter.

    Stands in for the Keras model where only predictions are needed: it starts without
    importing TensorFlow, and its XNNPACK kernels are faster on a CPU (``docs/speed.md``). Offers
    what :class:`LoadedModel` uses of a Keras model: ``input_shape``, ``output_shape`` and
    ``predict_on_batch`` (float32 ``(B, S, S, C)`` -> ``(B, 1)``).
    """

    def __init__(self, path: Path, *, threads: int | None = None,
                 expected_sha256: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        content = self.path.read_bytes()  # hashed as read: the provenance is what runs
        self.sha256 = hashlib.sha256(content).hexdigest()
        if expected_sha256 is not None and self.sha256 != expected_sha256:
            raise ExportChanged(f"{self.path}: not the export {self.path.with_name('export.json')} "
                             "records (its sha256 differs); restore it, or make it again "
                             "with pneumo_helpers.inference.export_litert")
        self._interpreter = Interpreter(model_content=content,
                                        num_threads=threads or min(os.cpu_count() or 1, 4))
        inputs, outputs = (self._interpreter.get_input_details(),
                           self._interpreter.get_output_details())
        self.n_inputs, self.n_outputs = len(inputs), len(outputs)
        self._input, self._output = inputs[0]["index"], outputs[0]["index"]
        self.input_shape = (None, *map(int, inputs[0]["shape_signature"][1:]))
        self.output_shape = (None, *map(int, outputs[0]["shape_signature"][1:]))
        self._batch = None

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        if self._batch != len(x):  # re-plan only when the batch size changes
            self._interpreter.resize_tensor_input(self._input, list(x.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(x)
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def matching_export(folder: Path, model_sha256: str) -> dict | None:
    """``export.json`` when it says ``model.tflite`` was made from the ``model.keras`` of
    sha256 ``model_sha256`` (its ``lite_sha256`` is checked as the export is loaded)."""
    layout = ModelLayout(folder)
    try:
        record = json.loads(layout.export.read_text())
    except (OSError, ValueError):
        return None
    ok = layout.lite.is_file() and isinstance(record, dict) \
        and record.get("model_sha256") == model_sha256
    return record if ok else None
