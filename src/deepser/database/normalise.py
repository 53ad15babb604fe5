"""Feature statistics of a database for standardisation: the training rows' per-dimension
moments (global normalisation, computed on training data only) and each speaker's own moments
(speaker-level normalisation, label-free, the one documented use of test speakers' audio).

Both count only valid windows (padding is left out) and use :mod:`deepser.stats`, the
accumulator the recogniser's running speaker statistics use too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepser.database.store import DatabaseInfo, to_time_major, valid_windows
from deepser.stats import Moments, grouped_moments


class SpeakerNorm:
    """Speaker-level normalisation: each speaker's features standardised with that speaker's own
    per-dimension mean and standard deviation, over the valid windows of the speaker's original
    (not augmented) recordings. Uses no labels, and includes the test speakers (as a deployed
    recogniser adapting to its user would, see the recogniser's running statistics)."""

    def __init__(self, info: DatabaseInfo, chunk_rows: int = 1024) -> None:
        self.speakers, self.code = np.unique(info.speaker.astype(str), return_inverse=True)
        n_spk, dims = len(self.speakers), info.row_shape[-1]
        s1, s2 = np.zeros((n_spk, dims)), np.zeros((n_spk, dims))
        count = np.zeros(n_spk)
        rows = np.flatnonzero(~info.augmented)
        for start, windows, mask in valid_windows(info.path, rows, chunk_rows):
            valid = np.where(mask[:, :, None, None, None], windows, 0).astype(np.float64)
            codes = self.code[start : start + len(windows)]
            np.add.at(s1, codes, valid.sum((1, 2, 3)))
            np.add.at(s2, codes, (valid**2).sum((1, 2, 3)))
            np.add.at(count, codes, mask.sum(1) * windows.shape[3])
        if (count == 0).any():
            raise ValueError(f"speaker(s) without frames: {list(self.speakers[count == 0])}")
        mean, std = grouped_moments(s1, s2, count)
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)

    def apply(self, feat: np.ndarray, n_valid: np.ndarray, rows: np.ndarray, layout: str) -> None:
        """Standardise ``feat`` (rows ``rows`` of the database) in place; padding windows stay 0."""
        k = self.code[rows]
        shape = (len(rows),) + (1,) * (feat.ndim - 2) + (feat.shape[-1],)
        feat -= self.mean[k].reshape(shape)
        feat /= self.std[k].reshape(shape)
        time_major = to_time_major(feat, layout)  # a view
        steps = time_major.shape[1]
        time_major[np.arange(steps)[None, :] >= n_valid[:, None]] = 0.0


def feature_moments(
    path: str | Path, rows: np.ndarray, chunk_rows: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and variance of the features over the *valid* windows of ``rows``
    (training data only), read in contiguous chunks with float64 accumulation."""
    moments = Moments()
    for _, windows, mask in valid_windows(path, rows, chunk_rows):
        moments.add(windows[mask])
    if not moments.count:
        raise ValueError("no valid feature windows to compute normalisation statistics from")
    return moments.mean.astype(np.float32), moments.variance.astype(np.float32)


class FixedNorm:
    """Standardisation with fixed per-dimension statistics (e.g. a training fold's pooled
    moments), with the :meth:`SpeakerNorm.apply` interface: the *strict* (cold-start) input of a
    model trained with speaker-level normalisation, which has not seen the test speaker."""

    def __init__(self, mean: np.ndarray, var: np.ndarray) -> None:
        self.mean = np.asarray(mean, np.float32)
        self.std = np.sqrt(np.maximum(np.asarray(var, np.float32), 1e-12)).astype(np.float32)

    def apply(self, feat: np.ndarray, n_valid: np.ndarray, rows: np.ndarray, layout: str) -> None:
        """Standardise ``feat`` in place; padding windows stay 0."""
        feat -= self.mean
        feat /= self.std
        time_major = to_time_major(feat, layout)
        steps = time_major.shape[1]
        time_major[np.arange(steps)[None, :] >= n_valid[:, None]] = 0.0
