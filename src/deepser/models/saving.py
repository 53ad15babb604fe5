"""Saving models atomically and loading them safely (``safe_mode=True``, no compile), with
every deepser custom object registered first."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

import deepser.models.custom_layers  # noqa: F401  (registers the custom layers for loading)
from deepser.errors import BundleError, DeepserError
from deepser.files import atomic_path, check_model_file


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save atomically: a killed job never leaves a ``.keras`` file that looks complete."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` model for inference (safe mode, not compiled). A file that is not one
    (missing, a folder, empty, not a zip, truncated, no Keras config) raises
    :class:`deepser.errors.BundleError` "<path>: not a Keras model file (why)"; one Keras cannot
    load, a :class:`~deepser.errors.BundleError` with Keras's reason."""
    check_model_file(path)
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DeepserError):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise BundleError(f"{path}: Keras cannot load this model file ({reason})") from None
