"""Saving models atomically and loading them safely (``safe_mode=True``, no compile), with
every deepser custom object registered first."""

from __future__ import annotations

from pathlib import Path

import keras

import deepser.models.custom_layers  # noqa: F401  (registers the custom layers for loading)
from deepser.files import atomic_path


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save atomically: a killed job never leaves a ``.keras`` file that looks complete."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` model for inference (safe mode, not compiled)."""
    return keras.models.load_model(path, safe_mode=True, compile=False)
