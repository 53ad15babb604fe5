"""Late fusion's combiners, applied with numpy only (the evaluation fits them, the recogniser runs
them on every segment): ``average`` (no parameters), ``weighted`` (``{"weights": [...]}``, one per
member) and ``stacking`` (a multinomial logistic regression on the members' standardised
log-probabilities: ``{"mean", "scale", "coef", "intercept"}``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

METHODS = ("average", "weighted", "stacking")
_EPS = 1e-6


def stack_inputs(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The stacking input: the members' log-probabilities side by side."""
    return np.concatenate([np.log(np.clip(p, _EPS, 1.0)) for p in probas], axis=1)


def combine(
    method: str, params: Mapping[str, Any] | None, probas: Sequence[np.ndarray]
) -> np.ndarray:
    """Fused (rows, classes) probabilities of one task from the members' probabilities."""
    if method == "average":
        return np.mean(probas, axis=0)
    if method == "weighted":
        return np.tensordot(np.asarray(params["weights"], np.float64), np.stack(probas), axes=1)
    if method == "stacking":
        x = (stack_inputs(probas) - np.asarray(params["mean"])) / np.asarray(params["scale"])
        logits = x @ np.asarray(params["coef"]).T + np.asarray(params["intercept"])
        logits -= logits.max(-1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(-1, keepdims=True)
    raise ValueError(f"unknown fusion method {method!r} (use one of {', '.join(METHODS)})")
