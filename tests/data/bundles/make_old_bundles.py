"""Model bundles written by deepser before its package was split by workflow stage.

They were made once, at commit 6846764 (flat ``src/deepser/`` modules), with::

    .venv/bin/python tests/data/bundles/make_old_bundles.py tests/data/bundles

and are kept so that a test can check that bundles written by that code still load and predict
the same (``tests/unit/test_bundle.py``). This script imports the old module paths
(``deepser.models.build_model``, ``deepser.bundle.save_bundle``, ``deepser.legacy.importer``):
it documents how the fixtures were made and does not run against the current layout.

Each bundle folder holds ``model.keras``, ``bundle.json`` and ``expected.npz`` (fixed inputs and
the outputs the old code computed for them). Together the networks use every custom layer of
``deepser.models.custom_layers`` and the registered Keras-2 ``hard_sigmoid`` of an imported
legacy model; ``cnn_lstm`` has the per-corpus gain of a multi-corpus bundle.
"""

from __future__ import annotations

import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

TASKS = [
    {"name": "emotion", "type": "categorical", "classes": ["angry", "happy", "neutral", "sad"]},
    {"name": "arousal", "type": "categorical", "classes": ["low", "high"]},
]
# architecture -> (layout, steps, c_len, dims, hyper-parameters)
ARCHITECTURES = {
    "cnn_lstm": ("2d", 4, 5, 8, {"conv_filters": [2], "rnn_units": 3, "dense_units": 4}),
    "lstm": (
        "2d",
        4,
        5,
        8,
        {"rnn_units": 3, "rnn_layers": 1, "bidirectional": True, "pooling": "last"},
    ),
    "cnn1d": ("2d", 4, 5, 8, {"conv_filters": [2], "pooling": "attention", "attention_units": 3}),
    "cnn3d": ("3d", 4, 5, 8, {"conv_filters": [2], "pool_size": [2, 2, 2], "dense_units": 4}),
}
LAYER_CLASSES = {
    "LengthMask",
    "MaskedMaxPooling",
    "MaskSteps",
    "PoolMask",
    "LastValidPooling",
    "FirstStep",
    "MaskedAttentionPooling",
    "PerWindow",
}


def class_names(model_keras: Path) -> set[str]:
    with zipfile.ZipFile(model_keras) as zf:
        text = zf.read("config.json").decode()
    return {name for name in LAYER_CLASSES if f'"{name}"' in text} | (
        {"hard_sigmoid"} if "deepser_legacy>hard_sigmoid" in text else set()
    )


def main(out: Path) -> None:
    import keras

    from deepser.bundle import bundle_json, load_bundle, save_bundle
    from deepser.features import resolve_spec
    from deepser.models import build_model

    keras.utils.set_random_seed(7)
    spec = resolve_spec({"type": "logmel", "sample_rate": 16000, "n_mels": 8})
    seen: set[str] = set()
    for arch, (layout, steps, c_len, dims, hparams) in ARCHITECTURES.items():
        shape = (steps, 1, c_len, dims) if layout == "2d" else (1, steps, c_len, dims)
        mean, var = np.full(dims, 0.5, np.float32), np.full(dims, 2.0, np.float32)
        model = build_model(arch, shape, layout, TASKS, mean, var, **hparams)
        window = {
            "c_len": c_len,
            "max_steps": steps * c_len,
            "layout": layout,
            "n_steps": steps,
            "dims": dims,
        }
        gain = {"method": "peak", "target": 0.5}
        gains = (
            {"a": gain, "b": {"method": "rms", "target": 0.1}}
            if arch == "cnn_lstm"
            else {"a": gain}
        )
        attrs = {"feature_spec": spec, "gain": gains, "window_spec": window}
        info = bundle_json(attrs, TASKS, f"old-{arch}", {}, {"architecture": arch}, {})
        info["normalisation"] = {"method": "global", "live": "statistics inside the model"}
        folder = out / arch
        save_bundle(folder, model, info)
        write_expected(folder, load_bundle)
        seen |= class_names(folder / "model.keras")

    from deepser.legacy.importer import import_legacy

    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests.test_legacy import write_keras2_h5

    with tempfile.TemporaryDirectory() as tmp:
        h5 = write_keras2_h5(out.parent / "legacy/generic_keras2.npz", Path(tmp) / "generic.h5")
        features = Path(tmp) / "features.json"
        features.write_text(json.dumps({"type": "logmel", "sample_rate": 16000, "n_mels": 5}))
        folder = out / "legacy_generic"
        import_legacy(h5, str(features), ["emotion:a,b,c", "valence:1"], folder, gain="-1,1")
    write_expected(folder, load_bundle)
    seen |= class_names(folder / "model.keras")
    missing = (LAYER_CLASSES | {"hard_sigmoid"}) - seen
    assert not missing, f"no fixture uses {missing}"


def write_expected(folder: Path, load_bundle) -> None:
    model, info = load_bundle(folder)
    w = info["window_spec"]
    steps, c_len, dims = w["n_steps"], w["c_len"], w["dims"]
    shape = (steps, 1, c_len, dims) if w["layout"] == "2d" else (1, steps, c_len, dims)
    rng = np.random.default_rng(11)
    features = rng.standard_normal((5, *shape)).astype(np.float32)
    n_valid = np.array([1, 2, 3, 4, 4], np.int32).clip(1, steps)
    out = model.predict_on_batch({"features": features, "n_valid": n_valid})
    outputs = {f"out_{name}": np.asarray(value) for name, value in out.items()}
    np.savez(folder / "expected.npz", features=features, n_valid=n_valid, **outputs)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
