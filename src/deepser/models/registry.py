"""The architecture registry: each architecture is a function (input spec, tasks,
hyper-parameters) -> an uncompiled ``keras.Model``; :func:`build_model` checks names and
hyper-parameters against the builders' signatures."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from deepser.models import zoo
from deepser.models.blocks import model_inputs, task_heads

Builder = Callable[..., keras.Model]
ARCHITECTURES: dict[str, Builder] = dict(zoo.ARCHITECTURES)

__all__ = [
    "ARCHITECTURES",
    "build_model",
    "hyperparameters",
    "model_inputs",
    "register",
    "task_heads",
]


def register(name: str) -> Callable[[Builder], Builder]:
    """Add an architecture builder to the registry (a decorator, for your own architectures)."""

    def wrap(fn: Builder) -> Builder:
        ARCHITECTURES[name] = fn
        return fn

    return wrap


def hyperparameters(architecture: str) -> dict[str, Any]:
    """The hyper-parameters of a registered architecture with their defaults."""
    params = inspect.signature(ARCHITECTURES[architecture]).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(
    architecture: str,
    row_shape: Sequence[int],
    layout: str,
    tasks: Sequence[Mapping[str, Any]],
    mean: np.ndarray,
    variance: np.ndarray,
    **hparams: Any,
) -> keras.Model:
    """Build a registered architecture; unknown names and hyper-parameters are clear errors."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}"
        )
    known = hyperparameters(architecture)
    unknown = [k for k in hparams if k not in known]
    if unknown:
        raise ValueError(
            f"architecture {architecture!r} has no hyper-parameter "
            f"{', '.join(map(repr, unknown))}; its hyper-parameters: {', '.join(known)}"
        )
    try:
        return ARCHITECTURES[architecture](row_shape, layout, tasks, mean, variance, **hparams)
    except TypeError as exc:
        raise ValueError(f"architecture {architecture!r}: {exc}") from None
