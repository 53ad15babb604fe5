"""The model bundle (contract 'model bundle' in design.md): ``model.keras`` + ``bundle.json``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepser import __version__
from deepser.files import read_json, write_json

BUNDLE_FORMAT = 1


class BundleError(ValueError):
    """A bundle that cannot be used (missing files, unknown format version)."""


def bundle_json(
    db_attrs: Mapping[str, Any],
    tasks: list[dict],
    experiment: str,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    data_summary: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything the recogniser needs besides the network itself."""
    import keras

    gains = db_attrs["gain"]
    return {
        "format_version": BUNDLE_FORMAT,
        "experiment": experiment,
        "feature_spec": db_attrs["feature_spec"],
        "gain": next(iter(gains.values())) if len(gains) == 1 else gains,
        "window_spec": db_attrs["window_spec"],
        "inputs": {
            "features": "float32 " + str(_row_shape(db_attrs["window_spec"])),
            "n_valid": "int32 number of valid windows",
        },
        "tasks": [{k: t[k] for k in ("name", "type", "classes") if k in t} for t in tasks],
        "training": dict(training),
        "data": dict(data_summary),
        "metrics": dict(metrics),
        "versions": {
            "deepser": __version__,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "backend_version": _backend_version(),
        },
    }


def _row_shape(window: Mapping[str, Any]) -> list[int]:
    t, c, d = window["n_steps"], window["c_len"], window["dims"]
    return [t, 1, c, d] if window["layout"] == "2d" else [1, t, c, d]


def _backend_version() -> str:
    import keras

    backend = keras.backend.backend()
    try:
        module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
        return str(module.__version__)
    except (KeyError, ImportError):
        return "unknown"


def save_bundle(path: str | Path, model, info: Mapping[str, Any]) -> None:
    """Write ``model.keras`` and ``bundle.json`` into the folder ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    from deepser.training import save_model

    save_model(model, path / "model.keras")
    write_json(path / "bundle.json", info)


def read_bundle_info(path: str | Path) -> dict[str, Any]:
    """``bundle.json`` of a bundle folder, checked (files present, format version, required
    keys) without importing Keras, so a wrong bundle fails in a fraction of a second."""
    path = Path(path)
    if not (path / "bundle.json").is_file() or not (path / "model.keras").is_file():
        raise BundleError(f"{path}: not a model bundle (needs bundle.json and model.keras)")
    try:
        info = read_json(path / "bundle.json")
    except ValueError as exc:
        raise BundleError(f"{path / 'bundle.json'}: not valid JSON ({exc})") from None
    version = info.get("format_version") if isinstance(info, dict) else None
    if version != BUNDLE_FORMAT:
        raise BundleError(
            f"{path}: bundle format {version!r} is not supported "
            f"(this deepser reads format {BUNDLE_FORMAT})"
        )
    missing = [k for k in ("feature_spec", "window_spec", "tasks") if k not in info]
    if missing:
        raise BundleError(f"{path / 'bundle.json'}: missing {', '.join(missing)}")
    return info


def load_bundle(path: str | Path):
    """Load a bundle -> (keras model, bundle dict); checks the format and the input shape."""
    import keras

    import deepser.legacy.layers  # noqa: F401  (registers Keras 2's hard_sigmoid)
    import deepser.models  # noqa: F401  (registers the custom layers)

    path = Path(path)
    info = read_bundle_info(path)
    model = keras.models.load_model(path / "model.keras", safe_mode=True, compile=False)
    expected = _row_shape(info["window_spec"])
    actual = list(model.input_shape[0][1:]) if isinstance(model.input_shape, list) else None
    if actual != expected:
        raise BundleError(f"{path}: the model expects input {actual}, bundle.json says {expected}")
    return model, info
