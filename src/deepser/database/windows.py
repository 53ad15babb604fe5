"""Context windows: a (frames, dims) feature -> (T, c_len, dims) windows plus the valid count.

Rules (the original's, except that its last full window was dropped when it ended exactly on the
last frame): non-overlapping windows of ``c_len`` frames;
``T = max_steps // c_len`` windows per utterance; every *full* window is kept, including the one
that ends exactly on the last frame; frames past ``T * c_len`` are cut; missing windows are zero
padding, counted out by ``n_valid``. An utterance shorter than one window gets one zero-padded
window (``n_valid`` 1), so no utterance is ever silently empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

LAYOUTS = ("2d", "3d")


def n_steps(max_steps: int, c_len: int) -> int:
    """Windows per utterance (T)."""
    if c_len < 1 or max_steps < c_len:
        raise ValueError(f"need 1 <= c_len <= max_steps, got c_len={c_len}, max_steps={max_steps}")
    return max_steps // c_len


def cut_windows(feat: np.ndarray, c_len: int, max_steps: int) -> tuple[np.ndarray, int]:
    """Return ``(windows, n_valid)``: windows is (T, c_len, dims) float32, zero padded."""
    if feat.ndim != 2 or feat.shape[0] == 0:
        raise ValueError(f"expected a non-empty (frames, dims) array, got shape {feat.shape}")
    out = np.empty((n_steps(max_steps, c_len), c_len, feat.shape[1]), dtype=np.float32)
    return out, fill_windows(feat, out)


def fill_windows(feat: np.ndarray, out: np.ndarray) -> int:
    """Cut ``feat`` (frames, dims) into ``out`` (T, c_len, dims), zero padded (a buffer reused
    from row to row); return ``n_valid``."""
    if feat.ndim != 2 or feat.shape[0] == 0:
        raise ValueError(f"expected a non-empty (frames, dims) array, got shape {feat.shape}")
    t_max, c_len, dims = out.shape
    n_frames = feat.shape[0]
    n_full = min(n_frames // c_len, t_max)
    if n_full:
        out[:n_full] = feat[: n_full * c_len].reshape(n_full, c_len, dims)
        out[n_full:] = 0.0
        return n_full
    out[:] = 0.0
    out[0, :n_frames] = feat
    return 1


def count_valid(n_frames: np.ndarray, c_len: int, t_max: int) -> np.ndarray:
    """``n_valid`` of utterances of ``n_frames`` frames, as :func:`fill_windows` counts it."""
    return np.maximum(np.minimum(np.asarray(n_frames) // c_len, t_max), 1).astype(np.int32)


def to_layout(windows: np.ndarray, layout: str) -> np.ndarray:
    """(N, T, c_len, D) -> 2d (N, T, 1, c_len, D) or 3d (N, 1, T, c_len, D), as the original."""
    if layout == "2d":
        return windows[:, :, None]
    if layout == "3d":
        return windows[:, None]
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


def as_row(windows: np.ndarray, layout: str) -> np.ndarray:
    """One utterance's windows (T, c_len, D) as a database row (2d or 3d layout)."""
    return to_layout(windows[None], layout)[0]


def layout_shape(layout: str, t_max: int, c_len: int, dims: int) -> tuple[int, ...]:
    """Per-row shape of the ``feat`` dataset for a layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    return (t_max, 1, c_len, dims) if layout == "2d" else (1, t_max, c_len, dims)


def row_shape(window_spec: Mapping[str, Any]) -> tuple[int, ...]:
    """Per-row shape of a database (and model input) from its ``window_spec``."""
    w = window_spec
    return layout_shape(w["layout"], w["n_steps"], w["c_len"], w["dims"])
