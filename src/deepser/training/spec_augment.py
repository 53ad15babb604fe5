"""SpecAugment-style masking (experiment option ``training.spec_augment``): random frequency
bands and runs of frames of each training example are set to the training mean, on the fly,
seeded by the training seed. Validation and test batches are never masked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

SPEC_AUGMENT_DEFAULTS: dict[str, Any] = {
    "freq_masks": 2,
    "freq_width": 6,  # maximum width of a frequency mask, in feature dimensions
    "time_masks": 2,
    "time_width": 10,  # maximum width of a time mask, in frames
    "probability": 1.0,  # share of training examples that get masked
}


def spec_augment(
    feat: np.ndarray,
    n_valid: np.ndarray,
    rng: np.random.Generator,
    cfg: Mapping[str, Any],
    fill: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Mask a batch of time-major windows ``(N, T, 1, c_len, D)`` in place of a copy: per
    example, ``freq_masks`` bands of up to ``freq_width`` dims and ``time_masks`` runs of up to
    ``time_width`` frames (over the valid frames, across window borders) are set to ``fill``
    (the per-dimension training mean, i.e. zero after the model's normalisation)."""
    cfg = {**SPEC_AUGMENT_DEFAULTS, **cfg}
    out = np.array(feat, dtype=np.float32, copy=True)
    n, t, _, c_len, dims = out.shape
    frames = out.reshape(n, t * c_len, dims)  # a view: frames of consecutive windows
    fill = np.broadcast_to(np.asarray(fill, dtype=np.float32).reshape(-1), (dims,))
    for i in range(n):
        if rng.random() >= cfg["probability"]:
            continue
        n_frames = max(1, int(n_valid[i]) * c_len)
        for _ in range(int(cfg["freq_masks"])):
            width = int(rng.integers(0, min(cfg["freq_width"], dims) + 1))
            start = int(rng.integers(0, dims - width + 1))
            frames[i, :n_frames, start : start + width] = fill[start : start + width]
        for _ in range(int(cfg["time_masks"])):
            width = int(rng.integers(0, min(cfg["time_width"], n_frames) + 1))
            start = int(rng.integers(0, n_frames - width + 1))
            frames[i, start : start + width, :] = fill
    return out
