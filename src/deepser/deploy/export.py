"""``deepser export``: a Keras bundle -> a bundle that a light runtime runs.

Route: the Keras model is rebuilt from its config with every recurrent layer unrolled (the
window axis has a fixed length, ``window_spec.max_steps``), so no TensorFlow control flow
(``TensorList`` / ``While``) remains; the rebuilt model gets the trained weights and is saved as
a TensorFlow SavedModel with named inputs (``features``, ``n_valid``) and one output per task.
From there:

- ``litert``: the TensorFlow Lite converter with built-in ops only (no "Flex" ops, which the
  standalone ``ai-edge-litert`` interpreter refuses);
- ``onnx``: ``tf2onnx`` (opset 17);
- ``savedmodel``: the SavedModel itself (for TensorFlow Serving; it runs on TensorFlow).

Every export is checked before it is kept: the exported model and the Keras model predict the
same rows (real database rows when the bundle's database is at hand, else rows of features of
synthetic audio), and the largest absolute difference must stay within the tolerance; it is
recorded in ``bundle.json`` under ``runtime.check``. Fused bundles are refused (export each
member).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deepser.bundle import Bundle, is_fusion, load_bundle, read_bundle, write_bundle_json
from deepser.database.store import read_info, read_rows
from deepser.deploy import FORMATS, MODEL_FILES
from deepser.deploy.runtime import load_runtime_model
from deepser.errors import DeepserError
from deepser.models import FEATURES, N_VALID
from deepser.recognizer.engine import Engine
from deepser.runtime import quiet_stderr, start_keras_quietly

RECURRENT = ("LSTM", "GRU", "SimpleRNN")
ONNX_OPSET = 17
CHECK_ROWS = 64  # rows of the check (each also with fewer valid windows)


class ExportError(DeepserError, RuntimeError):
    """A bundle that cannot be exported to the asked format (the message says why)."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_bundle` wrote and how well the export matches Keras."""

    out_dir: Path
    format: str
    model_file: str
    rows: int
    rows_from: str
    max_abs_diff: float
    size_bytes: int


def unrolled(model):
    """The model rebuilt with every recurrent layer unrolled (``unroll=True``), with its
    weights: the same function, without a loop over the time steps."""
    import keras

    import deepser.models.custom_layers  # noqa: F401  (registers the custom layers)

    config = model.get_config()
    _unroll(config)
    try:
        twin = model.__class__.from_config(config)
        twin.set_weights(model.get_weights())
    except Exception as exc:  # Keras raises many types for configs it cannot rebuild
        raise ExportError(
            f"the model cannot be rebuilt with its recurrent layers unrolled ({_line(exc)})"
        ) from None
    assert isinstance(twin, keras.Model)
    return twin


def _unroll(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("class_name") in RECURRENT and isinstance(node.get("config"), dict):
            node["config"]["unroll"] = True
        for value in node.values():
            _unroll(value)
    elif isinstance(node, list):
        for value in node:
            _unroll(value)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + " ...") if len(text) > 300 else (text or type(exc).__name__)


def check_exportable(model, bundle: Bundle) -> None:
    """:class:`ExportError` for a model no runtime can take: inputs without a fixed shape
    (every deepser architecture has one) or outputs that are not the bundle's tasks."""
    shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    if any(d is None for d in shape[1:]):
        raise ExportError(
            f"the model's input {list(shape)} has a dimension without a fixed size; an "
            "exported model needs fixed windows (window_spec.max_steps)"
        )
    names = [t["name"] for t in bundle.tasks]
    if sorted(model.output_names) != sorted(names):
        raise ExportError(f"the model's outputs {model.output_names} are not the tasks {names}")


@contextlib.contextmanager
def backward_rnns_reversed() -> Iterator[None]:
    """Keras 3.15's unrolled TensorFlow RNN zeroes a backward layer's masked outputs with the
    mask in forward order (its loop version reverses it), so an unrolled bidirectional layer
    with padding windows computes something else. For the block, a backward unrolled RNN runs
    forward over the reversed inputs and mask instead, which is the same function."""
    import keras.src.backend as backend
    import tensorflow as tf
    from keras import tree

    original = backend.rnn

    def rnn(step_function, inputs, initial_states, go_backwards=False, mask=None, **kwargs):
        if go_backwards and kwargs.get("unroll"):
            axis = 0 if kwargs.get("time_major") else 1
            inputs = tree.map_structure(lambda x: tf.reverse(x, [axis]), inputs)
            mask = None if mask is None else tf.reverse(mask, [axis])
            go_backwards = False
        return original(step_function, inputs, initial_states, go_backwards, mask, **kwargs)

    backend.rnn = rnn
    try:
        yield
    finally:
        backend.rnn = original


def save_tf_model(model, folder: Path) -> None:
    """The (unrolled) model as a TensorFlow SavedModel: signature ``serving_default`` with
    inputs ``features`` (batch, *row) float32 and ``n_valid`` (batch,) int32."""
    import tensorflow as tf

    specs = {
        FEATURES: tf.TensorSpec([None, *model.input_shape[0][1:]], tf.float32, name=FEATURES),
        N_VALID: tf.TensorSpec([None], tf.int32, name=N_VALID),
    }
    with backward_rnns_reversed():
        model.export(str(folder), format="tf_saved_model", input_signature=[specs], verbose=False)


def to_litert(saved_model: Path, out: Path) -> None:
    """SavedModel -> ``.tflite`` with TensorFlow Lite's built-in ops only."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        blob = converter.convert()
    except Exception as exc:  # ConverterError and friends: name the ops it could not map
        ops = re.search(r"TF Select ops: ([^\n]+)", str(exc))
        reason = (
            f"it uses {ops.group(1).strip()}, which LiteRT has no built-in op for"
            if ops
            else f"the converter says: {_line(exc)}"
        )
        raise ExportError(
            f"this model cannot be exported to LiteRT with built-in ops only ({reason}); "
            "export it with --format onnx"
        ) from None
    out.write_bytes(blob)


def to_onnx(saved_model: Path, out: Path) -> None:
    """SavedModel -> ONNX with tf2onnx (in a child process: it configures TensorFlow's
    logging and graph state for itself)."""
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        raise ExportError("--format onnx needs tf2onnx: pip install 'deepser[export]'") from None
    cmd = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--saved-model",
        str(saved_model),
        "--output",
        str(out),
        "--opset",
        str(ONNX_OPSET),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.is_file():
        lines = [ln for ln in done.stderr.splitlines() if "ERROR" in ln or "Error" in ln]
        raise ExportError(
            "tf2onnx cannot convert this model ("
            + (lines[-1].strip() if lines else f"exit status {done.returncode}")
            + "); try --format litert"
        )


def check_rows(bundle: Bundle, database: str | Path | None, n: int = CHECK_ROWS):
    """(features, n_valid, where from) for the check: the first ``n`` rows of ``database`` (or
    of the bundle's own database when it exists), each also with about half its valid
    windows; without a database, rows of features of synthetic audio."""
    source = database or bundle.data.get("database")
    if source and Path(source).is_file():
        info = read_info(source)
        if list(info.row_shape) != list(bundle.row_shape):
            raise ExportError(
                f"{source}: its rows are {list(info.row_shape)}, the model takes "
                f"{list(bundle.row_shape)}; give the database the bundle was trained on"
            )
        rows = np.arange(min(n, info.n_rows))
        arrays = read_rows(source, rows, [])
        feat, n_valid = arrays.feat, arrays.n_valid
        where = f"{len(rows)} rows of {source}"
    else:
        feat, n_valid = _synthetic_rows(bundle, n)
        where = f"{len(feat)} rows of features of synthetic audio (no database at hand)"
    shorter = np.maximum(1, n_valid // 2).astype(np.int32)
    feat = np.concatenate([feat, feat]).astype(np.float32)
    n_valid = np.concatenate([n_valid, shorter]).astype(np.int32)
    return feat, n_valid, where


def _synthetic_rows(bundle: Bundle, n: int) -> tuple[np.ndarray, np.ndarray]:
    engine = Engine(_NoModel(), bundle)
    rng = np.random.default_rng(0)
    rows, valid = [], []
    for i in range(n):
        seconds = 0.5 + 3.0 * (i % 7) / 7
        t = np.arange(int(seconds * bundle.sample_rate)) / bundle.sample_rate
        y = 0.1 * np.sin(2 * np.pi * (120 + 40 * i) * t) + 0.02 * rng.standard_normal(t.size)
        row, n_valid = engine.features(y.astype(np.float32), adapt=False)
        rows.append(row)
        valid.append(n_valid)
    return np.stack(rows), np.array(valid, np.int32)


class _NoModel:
    """A stand-in model for feature extraction only."""

    output_names: list[str] = []


def keras_outputs(model, feat: np.ndarray, n_valid: np.ndarray) -> dict[str, np.ndarray]:
    out = model.predict_on_batch({FEATURES: feat, N_VALID: n_valid})
    if not isinstance(out, Mapping):
        out = {model.output_names[0]: out}
    return {k: np.asarray(v) for k, v in out.items()}


def export_bundle(
    bundle_dir: str | Path,
    fmt: str,
    out_dir: str | Path,
    *,
    database: str | Path | None = None,
    tolerance: float = 1e-5,
    status: Callable[[str], None] = lambda message: None,
) -> ExportResult:
    """Export the bundle in ``bundle_dir`` to ``fmt`` in ``out_dir`` (created; refused if it is
    a non-empty folder), checked against Keras on real rows (see :func:`check_rows`)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    if is_fusion(bundle_dir):
        raise ExportError(
            f"{bundle_dir}: a fused bundle; export each member bundle (its sub-folders) and "
            "recognise with them, or use the Keras bundle"
        )
    source = read_bundle(bundle_dir)  # a clear error before TensorFlow loads
    if source.runtime is not None:
        raise ExportError(
            f"{bundle_dir}: already an exported bundle ({source.runtime['format']}); export "
            "the Keras bundle it came from"
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{out_dir}: exists and is not an empty folder; choose another")
    start_keras_quietly()
    with quiet_stderr():  # TensorFlow's and LiteRT's notices; status lines come after
        model, bundle = load_bundle(bundle_dir)
        check_exportable(model, bundle)
        twin = unrolled(model)
        feat, n_valid, where = check_rows(bundle, database)
        expected = keras_outputs(model, feat, n_valid)
    status(f"converting to {fmt}; checking on {where}")
    model_file = MODEL_FILES[fmt]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        stage = Path(tmp) / "bundle"
        stage.mkdir()
        with quiet_stderr():
            diff = _convert_and_check(twin, bundle, fmt, Path(tmp), stage, feat, n_valid, expected)
        if not np.isfinite(diff) or diff > tolerance:
            raise ExportError(
                f"the {fmt} model differs from the Keras model by {diff:.3g} on {where} "
                f"(tolerance {tolerance:g}); nothing written"
            )
        exported = read_bundle(stage)
        runtime = {
            **(exported.runtime or {}),
            "check": {"rows": int(len(feat)), "rows_from": where, "max_abs_diff": diff},
        }
        write_bundle_json(stage, replace(exported, runtime=runtime))
        if (bundle_dir / "model_card.md").is_file():
            shutil.copy2(bundle_dir / "model_card.md", stage / "model_card.md")
        _move_into(stage, out_dir)
    size = _size(out_dir / model_file)
    return ExportResult(out_dir, fmt, model_file, int(len(feat)), where, diff, size)


def _convert_and_check(
    twin,
    bundle: Bundle,
    fmt: str,
    tmp: Path,
    stage: Path,
    feat: np.ndarray,
    n_valid: np.ndarray,
    expected: dict[str, np.ndarray],
) -> float:
    """Write the exported model and its bundle.json into ``stage``; the largest absolute
    difference of its outputs from ``expected`` (the Keras model's)."""
    saved = tmp / "saved_model"
    save_tf_model(twin, saved)
    model_file = MODEL_FILES[fmt]
    if fmt == "litert":
        to_litert(saved, stage / model_file)
    elif fmt == "onnx":
        to_onnx(saved, stage / model_file)
    else:
        shutil.copytree(saved, stage / model_file)
    runtime = {
        "format": fmt,
        "model": model_file,
        "inputs": {FEATURES: ["float32", ["batch", *bundle.row_shape]], N_VALID: ["int32"]},
        "outputs": [t["name"] for t in bundle.tasks],
        "exported_from": {"experiment": bundle.experiment, "versions": bundle.versions},
    }
    exported = replace(bundle, runtime=runtime)
    write_bundle_json(stage, exported)
    got = load_runtime_model(stage, exported).predict_on_batch({FEATURES: feat, N_VALID: n_valid})
    return max(float(np.max(np.abs(got[k] - expected[k]))) for k in expected)


def _move_into(stage: Path, out_dir: Path) -> None:
    """Move the finished export into ``out_dir`` (absent or an empty folder)."""
    if out_dir.exists():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise ExportError(f"{out_dir}: exists and is not an empty folder; choose another")
        out_dir.rmdir()
    stage.rename(out_dir)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def describe(result: ExportResult) -> str:
    """One status line about a finished export."""
    return (
        f"exported {result.format} ({result.model_file}, {result.size_bytes / 1e6:.2f} MB) to "
        f"{result.out_dir}; largest difference from Keras {result.max_abs_diff:.2g} on "
        f"{result.rows_from} (each also with fewer valid windows)"
    )
