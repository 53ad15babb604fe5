"""An experiment's training settings with their defaults, its tasks, and the task that early
stopping monitors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepser.database.store import DatabaseInfo
from deepser.tasks import is_categorical

TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 40,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "patience": 8,
    "validation_fraction": 0.25,
    "class_weights": True,
    "seed": 1,
    "max_ram_mb": 4096,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "clipnorm": None,
    "momentum": 0.9,  # sgd only
    "loss": "crossentropy",  # or focal
    "focal_gamma": 2.0,
    "focal_alpha": None,  # one number, or one weight per class
    "label_smoothing": 0.0,
    "regression_loss": "mse",  # or ccc
    "sampling": "none",  # over | under: random re-sampling of the training fold
    "lr_schedule": "constant",  # cosine | exponential | plateau
    "warmup_epochs": 0,
    "lr_decay": 0.95,  # exponential: factor per epoch; plateau: factor per plateau (0.5)
    "lr_min": 0.0,
    "plateau_patience": 4,
    "spec_augment": None,
    "mixup": 0.0,  # alpha of mixup's Beta(alpha, alpha) mixing weights; 0: no mixup
    "ema": 0.0,  # momentum of an exponential moving average of the weights; 0: none
}


def training_settings(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment's ``training`` entry over :data:`TRAINING_DEFAULTS`."""
    return {**TRAINING_DEFAULTS, **experiment.get("training", {})}


def experiment_tasks(info: DatabaseInfo, weights: Mapping[str, float] | None) -> list[dict]:
    """The database tasks an experiment trains (all, unless it names some), with loss weights."""
    by_name = {t["name"]: t for t in info.tasks}
    chosen = dict(weights) if weights else {t["name"]: 1.0 for t in info.tasks}
    missing = [t for t in chosen if t not in by_name]
    if missing:
        raise ValueError(f"task(s) {missing} not in the database (it has {list(by_name)})")
    return [{**by_name[name], "loss_weight": float(w)} for name, w in chosen.items()]


def monitor_task(tasks: list[dict], name: str | None) -> dict | None:
    """The categorical task whose validation UA drives early stopping: the one named, else the
    first categorical task (None: there is none, so no early stopping)."""
    if name is None:
        return next((t for t in tasks if is_categorical(t)), None)
    named = [t for t in tasks if t["name"] == name]
    if not named or not is_categorical(named[0]):
        choices = [t["name"] for t in tasks if is_categorical(t)]
        raise ValueError(f"monitor: {name!r} is not a categorical task of the experiment {choices}")
    return named[0]
