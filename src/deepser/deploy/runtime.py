"""Running an exported bundle without Keras: the model behind a Keras-like interface
(``output_names``, ``input_shape``, ``predict_on_batch``), so that the recogniser's
:class:`~deepser.recognizer.engine.Engine` uses it unchanged.

- ``litert``: ``ai_edge_litert``'s interpreter, through the model's ``serving_default``
  signature (named inputs and outputs; inputs resized to the batch);
- ``onnx``: ONNX Runtime on the CPU;
- ``savedmodel``: TensorFlow (no Keras).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepser.deploy import MODEL_FILES, RUNTIME_PACKAGES
from deepser.errors import BundleError
from deepser.models import FEATURES, N_VALID


class RuntimeModel:
    """An exported model: ``predict_on_batch({"features", "n_valid"})`` -> task -> outputs."""

    format = ""

    def __init__(self, path: Path, row_shape: tuple[int, ...], tasks: list[str]) -> None:
        self.path = path
        self.output_names = list(tasks)
        self.input_shape = [(None, *row_shape), (None,)]

    def predict_on_batch(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feat = np.ascontiguousarray(inputs[FEATURES], dtype=np.float32)
        n_valid = np.ascontiguousarray(inputs[N_VALID], dtype=np.int32).reshape(-1)
        out = self._run(feat, n_valid)
        missing = [t for t in self.output_names if t not in out]
        if missing:
            raise BundleError(
                f"{self.path}: the exported model has outputs {sorted(out)}, not the tasks "
                f"{self.output_names}"
            )
        return {t: np.asarray(out[t], dtype=np.float32) for t in self.output_names}

    def _run(self, feat: np.ndarray, n_valid: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError


class LiteRTModel(RuntimeModel):
    """A ``.tflite`` model on the standalone LiteRT interpreter (XNNPACK on the CPU)."""

    format = "litert"

    def __init__(self, path: Path, row_shape: tuple[int, ...], tasks: list[str]) -> None:
        super().__init__(path, row_shape, tasks)
        from ai_edge_litert.interpreter import Interpreter

        threads = int(os.environ.get("DEEPSER_RUNTIME_THREADS", "1"))
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.runner = self.interpreter.get_signature_runner("serving_default")
        except (ValueError, RuntimeError) as exc:
            raise BundleError(
                f"{path}: not a LiteRT model LiteRT can load ({_line(exc)})"
            ) from None

    def _run(self, feat: np.ndarray, n_valid: np.ndarray) -> dict[str, Any]:
        return self.runner(**{FEATURES: feat, N_VALID: n_valid})


class OnnxModel(RuntimeModel):
    """A ``.onnx`` model on ONNX Runtime's CPU provider."""

    format = "onnx"

    def __init__(self, path: Path, row_shape: tuple[int, ...], tasks: list[str]) -> None:
        super().__init__(path, row_shape, tasks)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("DEEPSER_RUNTIME_THREADS", "1"))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(
                f"{path}: not an ONNX model ONNX Runtime can load ({_line(exc)})"
            ) from None
        self.names = [o.name for o in self.session.get_outputs()]

    def _run(self, feat: np.ndarray, n_valid: np.ndarray) -> dict[str, Any]:
        values = self.session.run(None, {FEATURES: feat, N_VALID: n_valid})
        return dict(zip(self.names, values, strict=True))


class SavedModel(RuntimeModel):
    """A TensorFlow SavedModel folder (runs on TensorFlow, without Keras)."""

    format = "savedmodel"

    def __init__(self, path: Path, row_shape: tuple[int, ...], tasks: list[str]) -> None:
        super().__init__(path, row_shape, tasks)
        import tensorflow as tf

        try:
            self.function = tf.saved_model.load(str(path)).signatures["serving_default"]
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(
                f"{path}: not a SavedModel TensorFlow can load ({_line(exc)})"
            ) from None
        self.tf = tf

    def _run(self, feat: np.ndarray, n_valid: np.ndarray) -> dict[str, Any]:
        out = self.function(
            **{FEATURES: self.tf.constant(feat), N_VALID: self.tf.constant(n_valid)}
        )
        return {k: v.numpy() for k, v in out.items()}


RUNNERS = {"litert": LiteRTModel, "onnx": OnnxModel, "savedmodel": SavedModel}


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def load_runtime_model(path: str | Path, bundle) -> RuntimeModel:
    """The exported model of the bundle in ``path`` (``bundle.runtime`` names its format and
    file); a missing runtime package is a :class:`BundleError` that says what to install."""
    runtime = bundle.runtime or {}
    fmt = runtime.get("format")
    if fmt not in RUNNERS:
        raise BundleError(
            f"{Path(path) / 'bundle.json'}: runtime.format {fmt!r} is not one of "
            f"{', '.join(RUNNERS)}"
        )
    module, advice = RUNTIME_PACKAGES[fmt]
    try:
        importlib.import_module(module)
    except ImportError:
        raise BundleError(f"this bundle is a {fmt} export and needs {module}: {advice}") from None
    model_file = Path(path) / str(runtime.get("model") or MODEL_FILES[fmt])
    if not model_file.exists():
        raise BundleError(f"{model_file}: the exported model file is missing")
    tasks = [t["name"] for t in bundle.tasks]
    return RUNNERS[fmt](model_file, tuple(bundle.row_shape), tasks)
