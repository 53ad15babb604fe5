"""Per-epoch learning rate and early stopping on the validation UA."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class LearningRate:
    """Per-epoch learning rate: constant, cosine decay to ``lr_min``, exponential decay, or
    reduce-on-plateau of the validation UA; optional linear warm-up."""

    def __init__(self, training: Mapping[str, Any], epochs: int) -> None:
        self.base, self.kind = float(training["learning_rate"]), training["lr_schedule"]
        self.warmup, self.epochs = int(training["warmup_epochs"]), max(1, epochs)
        self.decay, self.floor = float(training["lr_decay"]), float(training["lr_min"])
        self.patience = int(training["plateau_patience"])
        self.current, self.best, self.since = self.base, -1.0, 0

    def at(self, epoch: int) -> float:
        """The rate for ``epoch`` (1-based)."""
        if epoch <= self.warmup:
            return self.base * epoch / (self.warmup + 1)
        t = epoch - 1 - self.warmup
        if self.kind == "cosine":
            span = max(1, self.epochs - self.warmup - 1)
            cos = 0.5 * (1 + math.cos(math.pi * min(t, span) / span))
            return self.floor + (self.base - self.floor) * cos
        if self.kind == "exponential":
            return max(self.floor, self.base * self.decay**t)
        return self.current  # constant, or plateau (changed by observe)

    def observe(self, val_ua: float) -> None:
        """Plateau schedule: reduce after ``plateau_patience`` epochs without a better UA."""
        if val_ua > self.best:
            self.best, self.since = val_ua, 0
            return
        self.since += 1
        if self.kind == "plateau" and self.since >= self.patience:
            self.current, self.since = max(self.floor, self.current * self.decay), 0


class EarlyStopping:
    """Stop after ``patience`` epochs without a better validation UA; keep the best weights."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best, self.best_epoch, self.best_weights = -1.0, 0, None

    def update(self, score: float, epoch: int, model) -> bool:
        """Record an epoch's score; True when training should stop."""
        if score > self.best:
            self.best, self.best_epoch, self.best_weights = score, epoch, model.get_weights()
        return epoch - self.best_epoch >= self.patience

    def restore(self, model) -> None:
        if self.best_weights is not None:
            model.set_weights(self.best_weights)
