"""``training.json``: what training one fold (or the final model) did, written by
:func:`deepser.training.train.train` and read by evaluation, the summary and the final bundle.
This module owns the format (no Keras import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from deepser.files import read_json, write_json


@dataclass(frozen=True)
class TrainingRecord:
    """One training run: its split, tasks, normalisation, epochs, speed and model."""

    test_fold: int | None
    speakers: dict[str, list[str]]  # train / validation / test
    n_rows: dict[str, int]  # train, train_augmented, validation, test
    tasks: list[dict[str, Any]]  # name, type, classes, loss_weight
    auxiliary: list[str]
    monitor: str | None
    normalisation: str  # global | speaker
    best_epoch: int
    epochs_run: int
    train_seconds: float
    samples_per_second: float
    in_ram: bool
    backend: str
    architecture: str
    n_parameters: int
    initialised_from: dict[str, Any] | None
    seed: int

    @property
    def kept_tasks(self) -> list[dict[str, Any]]:
        """The tasks without the auxiliary ones (the bundle's tasks)."""
        return [t for t in self.tasks if t["name"] not in self.auxiliary]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingRecord:
        """Read a record; keys added after a record was written get neutral values."""
        defaults = {"auxiliary": [], "normalisation": "global", "initialised_from": None}
        known = {f.name for f in fields(cls)}
        return cls(**{**defaults, **{k: v for k, v in data.items() if k in known}})


def write_training(path: str | Path, record: TrainingRecord) -> None:
    """Write ``training.json`` atomically."""
    write_json(path, record.to_json())


def read_training(path: str | Path) -> TrainingRecord:
    """Read ``training.json``."""
    return TrainingRecord.from_json(read_json(path))
