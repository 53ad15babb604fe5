"""``deepser import-legacy``: a Keras-2 model of the original toolkit -> a deepser model bundle.

The bundle (:mod:`deepser.bundle`, the same format as the workflow's) holds the rebuilt
network as ``model.keras`` with the recogniser's inputs: ``features`` in the original layout
(2d ``(T, 1, c_len, D)``, e.g. ``(10, 1, 10, 80)``, or 3d ``(1, T, c_len, D)``) and ``n_valid``,
which the original models never had and which is ignored; one output per task, named after it.
``bundle.json`` records the feature spec (a preset of the original's features, see
:mod:`deepser.legacy.presets`), the gain normalisation, the window spec read off the model's input
shape, the tasks, and a ``legacy`` entry describing the source file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepser.bundle import Bundle, make_bundle, save_bundle
from deepser.errors import LegacyModelError
from deepser.hdf5 import H5File
from deepser.legacy.keras2 import LegacyModel, build_model, read_legacy
from deepser.legacy.presets import feature_dims, feature_spec, gain_spec, parse_tasks
from deepser.models import FEATURES, INPUT_NAMES, N_VALID
from deepser.tasks import is_categorical


def window_spec(shape: Sequence[int | None], layout: str | None = None) -> dict[str, Any]:
    """The bundle's window spec from a model's per-row input shape (original layouts:
    2d ``(T, 1, c_len, D)``, 3d ``(1, T, c_len, D)``)."""
    if len(shape) != 4 or any(s is None for s in shape):
        raise LegacyModelError(
            f"input shape {tuple(shape)}: the recogniser needs the original's fixed 5-D input, "
            "2d (T, 1, c_len, D) or 3d (1, T, c_len, D)"
        )
    a, b, c_len, dims = (int(s) for s in shape)
    if layout is None:
        layout = "2d" if b == 1 else "3d" if a == 1 else None
    if layout == "2d" and b == 1:
        steps = a
    elif layout == "3d" and a == 1:
        steps = b
    else:
        raise LegacyModelError(
            f"input shape {tuple(shape)} is neither 2d (T, 1, c_len, D) nor 3d (1, T, c_len, D)"
            + (f" as --layout {layout} says" if layout else "")
        )
    return {
        "c_len": c_len,
        "max_steps": steps * c_len,
        "layout": layout,
        "n_steps": steps,
        "dims": dims,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_model_file(path: Path) -> LegacyModel:
    """:func:`deepser.legacy.keras2.read_legacy`, every problem of the file (missing, empty, not
    HDF5, truncated, damaged, its JSON config unreadable) a :class:`LegacyModelError` naming it."""
    source = H5File(path, "Keras-2 model file", error=LegacyModelError)
    source.open().close()  # missing, a folder, empty, not HDF5, truncated: said precisely
    with source.reading("it"):
        return read_legacy(path)


def import_legacy(
    model_path: str | Path,
    features: str | Mapping[str, Any],
    tasks: Sequence[str] | Sequence[Mapping[str, Any]],
    out: str | Path,
    gain: str | None = None,
    layout: str | None = None,
) -> Bundle:
    """Rebuild ``model_path`` in Keras 3 and write the bundle folder ``out``; returns the
    bundle's record.

    ``features``: a preset (``mspec``, ``raw``, with ``,key=value`` overrides) or a feature-set
    config; ``tasks``: task specs (:func:`deepser.legacy.presets.parse_tasks`) in the order of
    the model's outputs; ``gain``: ``MIN,MAX``, a ``*.gain.txt`` file, ``none`` or None (-1, 1).
    """
    import keras

    model_path = Path(model_path)
    legacy: LegacyModel = read_model_file(model_path)
    spec = feature_spec(features)
    window = window_spec(legacy.input_shape, layout)
    if feature_dims(spec) != window["dims"]:
        raise LegacyModelError(
            f"the model takes {window['dims']} values per frame, the feature spec gives "
            f"{feature_dims(spec)} ({spec['type']}): choose the features it was trained on"
        )
    task_list = parse_tasks(list(tasks)) if all(isinstance(t, str) for t in tasks) else list(tasks)
    if len(task_list) != len(legacy.outputs):
        raise LegacyModelError(
            f"the model has {len(legacy.outputs)} output(s) "
            f"({', '.join(legacy.output_layer_names)}); {len(task_list)} task(s) given"
        )
    names = [t["name"] for t in task_list]
    clash = set(INPUT_NAMES) & set(names)
    if clash:
        raise LegacyModelError(f"task name(s) {sorted(clash)} are the model's input names")
    n_valid = keras.Input((), dtype="int32", name=N_VALID)
    model = build_model(
        legacy,
        input_name=FEATURES,
        output_names=names,
        extra_inputs=[n_valid],
        name=f"legacy_{model_path.stem}".replace(".", "_"),
    )
    outputs = model.output if isinstance(model.output, dict) else {names[0]: model.output}
    for task in task_list:  # by name: a dict of outputs does not keep the tasks' order
        output = outputs[task["name"]]
        units = output.shape[-1]
        want = len(task["classes"]) if is_categorical(task) else 1
        if len(output.shape) != 2 or units != want:
            raise LegacyModelError(
                f"task {task['name']!r} has {want} class(es) but its output has shape "
                f"{tuple(output.shape)[1:]}"
            )
    legacy_info = {
        "file": model_path.name,
        "sha256": _sha256(model_path),
        "keras_version": legacy.keras_version,
        "backend": legacy.backend,
        "input": {"name": legacy.input_layer.name, "shape": list(legacy.input_shape)},
        "outputs": dict(zip(legacy.output_layer_names, names, strict=True)),
        "n_valid": "accepted for the recogniser and ignored: the original model sees every "
        "window, zero padding included",
        "training_config": legacy.training_config,
    }
    bundle = make_bundle(
        {"feature_spec": spec, "gain": {"legacy": gain_spec(gain)}, "window_spec": window},
        task_list,
        f"import-legacy:{model_path.name}",
        training={"source": "the original toolkit (Keras 2); see 'legacy'"},
        data={"note": "trained with the original toolkit; its data are not recorded"},
        legacy=legacy_info,
    )
    save_bundle(out, model, bundle)
    return bundle
