"""Fit one fold (or the final model): seeds, normalisation from training data, class weights,
early stopping on validation UA with the best weights restored, history and timing."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.data import (
    ChunkedBatches,
    DatabaseInfo,
    FoldSplit,
    SpeakerNorm,
    class_weights,
    feature_moments,
    label_columns,
    read_info,
    read_rows,
    split_fold,
)
from deepser.files import atomic_path, write_json
from deepser.metrics import unweighted_average_recall

log = logging.getLogger(__name__)

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
}


def configure_backend(threads: int, seed: int, deterministic: bool = True) -> None:
    """Bind the backend's thread pools to ``threads`` and seed everything (call before Keras
    builds anything). TensorFlow also gets deterministic ops."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)
        except RuntimeError:  # already initialised in this process
            pass
        if deterministic:
            tf.config.experimental.enable_op_determinism()
    elif keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(threads)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    keras.utils.set_random_seed(seed)


def experiment_tasks(info: DatabaseInfo, weights: Mapping[str, float] | None) -> list[dict]:
    """The database tasks an experiment trains (all, unless it names some), with loss weights."""
    by_name = {t["name"]: t for t in info.tasks}
    chosen = dict(weights) if weights else {t["name"]: 1.0 for t in info.tasks}
    missing = [t for t in chosen if t not in by_name]
    if missing:
        raise ValueError(f"task(s) {missing} not in the database (it has {list(by_name)})")
    return [{**by_name[name], "loss_weight": float(w)} for name, w in chosen.items()]


def monitor_task(tasks: list[dict], name: str | None) -> dict:
    """The categorical task whose validation UA drives early stopping."""
    if name is not None:
        return next(t for t in tasks if t["name"] == name)
    for task in tasks:
        if task["type"] == "categorical":
            return task
    raise ValueError("early stopping needs a categorical task to monitor")


def _compile(model, tasks: list[dict], training: Mapping[str, Any]) -> None:
    import keras

    from deepser.losses import task_loss

    kwargs = {"learning_rate": training["learning_rate"]}
    if training.get("clipnorm"):
        kwargs["clipnorm"] = training["clipnorm"]
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


def resample_factors(labels: np.ndarray, n_classes: int, how: str) -> np.ndarray:
    """Per-class draw factor for random over-sampling (every class up to the largest) or
    under-sampling (every class down to the smallest present one)."""
    counts = np.bincount(labels.astype(int), minlength=n_classes).astype(float)
    present = counts[counts > 0]
    target = present.max() if how == "over" else present.min()
    return np.where(counts > 0, target / np.maximum(counts, 1), 0.0)


def save_model(model, path: Path) -> None:
    """Save atomically: a killed job never leaves a model.keras that looks complete."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def initialise_from(model, source: str | Path, freeze: list[str]) -> dict[str, list[str]]:
    """Copy the weights of every layer of the model ``source`` whose name and weight shapes
    match (the normalisation layer excepted: its statistics come from this training data),
    then freeze the layers whose names start with one of ``freeze``."""
    import keras

    import deepser.models  # noqa: F401  (registers the custom layers)

    donor = keras.models.load_model(source, safe_mode=True, compile=False)
    donors = {layer.name: layer for layer in donor.layers}
    copied, skipped = [], []
    for layer in model.layers:
        theirs = donors.get(layer.name)
        if theirs is None or not layer.weights or layer.name == "feature_norm":
            continue
        mine, other = layer.get_weights(), theirs.get_weights()
        same = len(mine) == len(other)
        if same and all(a.shape == b.shape for a, b in zip(mine, other, strict=True)):
            layer.set_weights(other)
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    if not copied:
        raise ValueError(f"{source}: no layer matches this model (same architecture and sizes?)")
    frozen = [
        layer.name
        for layer in model.layers
        if any(layer.name.startswith(prefix) for prefix in freeze)
    ]
    unknown = [p for p in freeze if not any(n.startswith(p) for n in frozen)]
    if unknown:
        names = ", ".join(layer.name for layer in model.layers)
        raise ValueError(f"freeze: no layer name starts with {unknown} (layers: {names})")
    for layer in model.layers:
        if layer.name in frozen:
            layer.trainable = False
    log.info(
        "initialised from %s: copied %s, shapes differ %s, frozen %s",
        source,
        copied,
        skipped,
        frozen,
    )
    return {"copied": copied, "shape_mismatch": skipped, "frozen": frozen}


def train(
    db_path: str | Path,
    experiment: Mapping[str, Any],
    test_fold: int | None,
    out_dir: str | Path,
    threads: int = 1,
    epochs: int | None = None,
    init_model: str | Path | None = None,
) -> dict[str, Any]:
    """Train a fresh model on the training speakers of ``test_fold`` (None: on all speakers,
    for ``epochs`` epochs without validation) and write ``model.keras``, ``history.csv`` and
    ``training.json`` into ``out_dir``. ``init_model``: start from that model's weights
    (fine-tuning; see :func:`initialise_from`). Returns the training summary."""
    training = {**TRAINING_DEFAULTS, **experiment.get("training", {})}
    seed = int(training["seed"])
    configure_backend(threads, seed)
    import keras

    from deepser.models import build_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = read_info(db_path)
    tasks = experiment_tasks(info, experiment.get("tasks"))
    val_fraction = 0.0 if test_fold is None else float(training["validation_fraction"])
    split: FoldSplit = split_fold(info, test_fold, val_fraction, seed)
    log.info("fold %s speakers: %s", test_fold, split.speakers)
    cols = label_columns(info, [t["name"] for t in tasks])
    layout = info.attrs["window_spec"]["layout"]
    normalisation = experiment.get("normalisation", "global")
    norm = SpeakerNorm(info) if normalisation == "speaker" else None
    if norm is None:
        mean, var = feature_moments(db_path, split.train)
    else:  # each speaker is already standardised: the pooled statistics are 0 and 1
        dims = info.row_shape[-1]
        mean, var = np.zeros(dims, np.float32), np.ones(dims, np.float32)
    row_bytes = 4 * int(np.prod(info.row_shape))
    in_ram = split.train.size * row_bytes <= training["max_ram_mb"] * 2**20
    train_arrays = read_rows(db_path, split.train, cols, norm) if in_ram else None
    labels = (
        train_arrays.label if train_arrays is not None else read_labels(db_path, split.train, cols)
    )
    weights = {}
    if training["class_weights"]:
        for j, task in enumerate(tasks):
            if task["type"] == "categorical":
                weights[task["name"]] = class_weights(labels[:, j], len(task["classes"]))
    monitor = monitor_task(tasks, experiment.get("monitor")) if _has_categorical(tasks) else None
    resample = None
    if training["sampling"] != "none":
        if monitor is None:
            raise ValueError("sampling needs a categorical task")
        j = [t["name"] for t in tasks].index(monitor["name"])
        factors = resample_factors(labels[:, j], len(monitor["classes"]), training["sampling"])
        resample = (j, factors)
        log.info(
            "%s-sampling %s: per-class factors %s",
            training["sampling"],
            monitor["name"],
            np.round(factors, 3).tolist(),
        )
    spec_augment = training.get("spec_augment")
    batches = ChunkedBatches(
        db_path,
        split.train,
        cols,
        tasks,
        int(training["batch_size"]),
        seed,
        weights=weights,
        arrays=train_arrays,
        norm=norm,
        resample=resample,
        augment=spec_augment,
        augment_fill=mean,
    )
    model_cfg = dict(experiment.get("model", {}))
    architecture = model_cfg.pop("architecture", "cnn_lstm")
    model = build_model(architecture, info.row_shape, layout, tasks, mean, var, **model_cfg)
    initialised = None
    if init_model is not None:
        initialised = initialise_from(model, init_model, list(experiment.get("freeze", [])))
    _compile(model, tasks, training)
    n_epochs = int(epochs if epochs is not None else training["epochs"])
    schedule = LearningRate(training, n_epochs)
    val = None
    if split.val.size:
        if monitor is None:
            raise ValueError("early stopping needs a categorical task to monitor")
        val = read_rows(db_path, split.val, cols, norm)
    stopper = EarlyStopping(int(training["patience"]))
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, n_epochs + 1):
        model.optimizer.learning_rate = schedule.at(epoch)
        # train_on_batch / predict_on_batch are compiled once per model: no per-epoch pipeline
        sums: dict[str, float] = {}
        n_batches = 0
        for inputs, targets, weights_ in batches.epoch():
            logs = model.train_on_batch(inputs, targets, sample_weight=weights_, return_dict=True)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            n_batches += 1
        row = {
            "epoch": epoch,
            "lr": schedule.at(epoch),
            **{k: v / n_batches for k, v in sums.items()},
        }
        if val is not None:
            row.update(validation_logs(model, val, tasks, batches, monitor))
            schedule.observe(row["val_ua"])
            if stopper.update(row["val_ua"], epoch, model):
                rows.append(row)
                log.info("epoch %d: %s (stopping)", epoch, row)
                break
        rows.append(row)
        log.info("epoch %d: %s", epoch, row)
    seconds = time.perf_counter() - started
    history = pd.DataFrame(rows)
    best_epoch = n_epochs
    if val is not None:
        best_epoch = stopper.best_epoch
        stopper.restore(model)
    auxiliary = list(experiment.get("auxiliary", []))
    if test_fold is None and auxiliary:  # the bundle's model: without the auxiliary heads
        keep = [t["name"] for t in tasks if t["name"] not in auxiliary]
        model = keras.Model(model.inputs, {n: model.get_layer(n).output for n in keep})
    save_model(model, out_dir / "model.keras")
    with atomic_path(out_dir / "history.csv") as tmp:
        history.to_csv(tmp, index=False)
    summary = {
        "test_fold": test_fold,
        "speakers": split.speakers,
        "n_rows": {
            "train": int(split.train.size),
            "train_augmented": int(info.augmented[split.train].sum()),
            "validation": int(split.val.size),
            "test": int(split.test.size),
        },
        "tasks": tasks,
        "auxiliary": auxiliary,
        "monitor": None if monitor is None else monitor["name"],
        "normalisation": normalisation,
        "best_epoch": int(best_epoch),
        "epochs_run": int(len(history)),
        "train_seconds": round(seconds, 3),
        "samples_per_second": round(
            len(batches) * int(training["batch_size"]) * len(history) / max(seconds, 1e-9), 1
        ),
        "in_ram": bool(in_ram),
        "backend": keras.backend.backend(),
        "architecture": architecture,
        "n_parameters": int(model.count_params()),
        "initialised_from": None
        if init_model is None
        else {"model": str(init_model), **initialised},
        "seed": seed,
    }
    write_json(out_dir / "training.json", summary)
    log.info("trained: %s", summary)
    return summary


def _has_categorical(tasks: list[dict]) -> bool:
    return any(t["type"] == "categorical" for t in tasks)


def read_labels(db_path: str | Path, rows: np.ndarray, cols: list[int]) -> np.ndarray:
    """Labels only (small), for class weights when features stay on disk."""
    import h5py

    with h5py.File(db_path, "r") as h5:
        return h5["label"][()][rows][:, cols]


def validation_logs(
    model, val, tasks: list[dict], batches: ChunkedBatches, monitor: dict, chunk: int = 256
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
    j = [t["name"] for t in tasks].index(monitor["name"])
    y_pred = np.concatenate(preds).argmax(-1)
    ua = unweighted_average_recall(val.label[:, j].astype(int), y_pred, len(monitor["classes"]))
    return {**{k: v / len(val) for k, v in losses.items()}, "val_ua": float(ua)}


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
