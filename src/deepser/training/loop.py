"""The fit loop: the optimizer and losses, then epochs of compiled ``train_on_batch`` steps with
the learning-rate schedule, validation UA and early stopping.

The loop is ours rather than ``model.fit``: ``train_on_batch`` / ``predict_on_batch`` are
compiled once per model, so an epoch starts no new input pipeline (measured faster on small
folds, where ``fit``'s per-epoch set-up dominated).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepser.database.store import Arrays
from deepser.metrics import unweighted_average_recall
from deepser.training.batches import ChunkedBatches, mixup
from deepser.training.schedule import EarlyStopping, LearningRate

log = logging.getLogger(__name__)


def compile_model(model, tasks: list[dict], training: Mapping[str, Any]) -> None:
    """Compile with the configured optimizer and one loss (and loss weight) per task."""
    import keras

    from deepser.training.losses import task_loss

    kwargs = {"learning_rate": training["learning_rate"]}
    if training.get("clipnorm"):
        kwargs["clipnorm"] = training["clipnorm"]
    if training.get("ema"):  # a moving average of the weights, see fit
        kwargs.update(use_ema=True, ema_momentum=float(training["ema"]))
    name = training.get("optimizer", "adam")
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(weight_decay=training.get("weight_decay", 0.0), **kwargs)
    elif name == "sgd":
        optimizer = keras.optimizers.SGD(momentum=training["momentum"], nesterov=True, **kwargs)
    elif name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(**kwargs)
    else:
        optimizer = keras.optimizers.Adam(**kwargs)
    model.compile(
        optimizer=optimizer,
        loss={t["name"]: task_loss(t, training) for t in tasks},
        loss_weights={t["name"]: t["loss_weight"] for t in tasks},
    )


@dataclass(frozen=True)
class FitResult:
    """What the loop did: one history row per epoch, the epoch whose weights the model holds."""

    history: pd.DataFrame
    best_epoch: int
    seconds: float


def fit(
    model,
    batches: ChunkedBatches,
    epochs: int,
    training: Mapping[str, Any],
    val: Arrays | None = None,
    monitor: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` (compiled) for up to ``epochs`` epochs. With ``val``, every epoch is
    scored on it (validation UA of ``monitor``), training stops after ``patience`` epochs
    without a better score, and the best epoch's weights are restored.

    ``training['mixup']`` > 0 mixes every training batch (:func:`mixup`, seeded by the training
    seed). ``training['ema']`` > 0 (compiled in by :func:`compile_model`): the model ends with
    the exponential moving average of its weights, and validation scores the averaged weights."""
    schedule = LearningRate(training, epochs)
    stopper = EarlyStopping(int(training["patience"]))
    alpha = float(training.get("mixup") or 0.0)
    mix_rng = np.random.default_rng([int(training["seed"]), 2])
    ema = bool(getattr(model.optimizer, "use_ema", False))
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.optimizer.learning_rate = schedule.at(epoch)
        sums: dict[str, float] = {}
        n_batches = 0
        for inputs, targets, weights in batches.epoch():
            if alpha > 0:
                inputs, targets, weights = mixup(
                    inputs, targets, weights, batches.tasks, mix_rng, alpha
                )
            logs = model.train_on_batch(inputs, targets, sample_weight=weights, return_dict=True)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            n_batches += 1
        row = {
            "epoch": epoch,
            "lr": schedule.at(epoch),
            **{k: v / n_batches for k, v in sums.items()},
        }
        stop = False
        if val is not None:
            if ema:
                swap_average(model)
            row.update(validation_logs(model, val, batches, monitor))
            schedule.observe(row["val_ua"])
            stop = stopper.update(row["val_ua"], epoch, model)
            if ema:
                swap_average(model)
        rows.append(row)
        log.info("epoch %d: %s%s", epoch, row, " (stopping)" if stop else "")
        if stop:
            break
    seconds = time.perf_counter() - started
    best_epoch = epochs
    if val is not None:
        best_epoch = stopper.best_epoch
        stopper.restore(model)
    elif ema:
        swap_average(model)
    return FitResult(history=pd.DataFrame(rows), best_epoch=int(best_epoch), seconds=seconds)


def swap_average(model) -> None:
    """Exchange the model's trainable weights with the optimizer's moving averages of them
    (Keras's ``use_ema``): twice is the identity."""
    optimizer = model.optimizer
    averages = optimizer._model_variables_moving_average  # in trainable_variables' order
    variables = model.trainable_variables
    if len(averages) != len(variables):
        raise RuntimeError("the optimizer's weight averages do not match the model's weights")
    for var, avg in zip(variables, averages, strict=True):
        current = np.array(var.numpy())
        var.assign(avg.numpy())
        avg.assign(current)


def validation_logs(
    model, val: Arrays, batches: ChunkedBatches, monitor: Mapping[str, Any], chunk: int = 256
) -> dict[str, float]:
    """Validation loss (as training computes it) and UA of the monitored task."""
    losses: dict[str, float] = {}
    preds = []
    for i in range(0, len(val), chunk):
        idx = np.arange(i, min(len(val), i + chunk))
        inputs, targets, weights = batches.batch(val, idx)
        logs = model.test_on_batch(inputs, targets, sample_weight=weights, return_dict=True)
        for key, value in logs.items():
            losses[f"val_{key}"] = losses.get(f"val_{key}", 0.0) + float(value) * idx.size
        out = model.predict_on_batch(inputs)
        preds.append(np.asarray(out[monitor["name"]] if isinstance(out, dict) else out))
    j = [t["name"] for t in batches.tasks].index(monitor["name"])
    y_pred = np.concatenate(preds).argmax(-1)
    ua = unweighted_average_recall(val.label[:, j].astype(int), y_pred, len(monitor["classes"]))
    return {**{k: v / len(val) for k, v in losses.items()}, "val_ua": float(ua)}
