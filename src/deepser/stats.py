"""Running per-dimension moments: the one accumulator behind every feature standardisation
(training statistics, per-speaker statistics, the recogniser's running speaker statistics), so
training and inference compute mean and standard deviation identically."""

from __future__ import annotations

import numpy as np

VARIANCE_FLOOR = 1e-12  # a constant dimension gets this variance, not a division by zero


class Moments:
    """Sum, sum of squares and count of frames, per dimension, accumulated in float64."""

    def __init__(self, dims: int | None = None) -> None:
        self.count = 0
        self.s1 = None if dims is None else np.zeros(dims)
        self.s2 = None if dims is None else np.zeros(dims)

    def add(self, frames: np.ndarray) -> None:
        """Add frames ``(..., dims)``."""
        frames = np.asarray(frames, np.float64).reshape(-1, np.shape(frames)[-1])
        s1, s2 = frames.sum(0), (frames**2).sum(0)
        self.s1 = s1 if self.s1 is None else self.s1 + s1
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.count += frames.shape[0]

    @property
    def mean(self) -> np.ndarray:
        return self.s1 / self.count

    @property
    def variance(self) -> np.ndarray:
        """Population variance, floored at :data:`VARIANCE_FLOOR`."""
        return np.maximum(self.s2 / self.count - self.mean**2, VARIANCE_FLOOR)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.variance)


def grouped_moments(
    s1: np.ndarray, s2: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per group from per-group sums ``(groups, dims)`` and frame
    counts ``(groups,)``, with the same floor as :class:`Moments`."""
    mean = s1 / count[:, None]
    std = np.sqrt(np.maximum(s2 / count[:, None] - mean**2, VARIANCE_FLOOR))
    return mean, std


def standardise(frames: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(frames - mean) / std`` as float32."""
    return ((frames - mean) / std).astype(np.float32)
