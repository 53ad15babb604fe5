"""Fit one fold (or the final model): seeds, normalisation from training data, class weights,
early stopping on validation UA with the best weights restored, history and timing."""

from __future__ import annotations

import logging
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
    class_weights,
    feature_moments,
    label_columns,
    read_info,
    read_rows,
    split_fold,
)
from deepser.files import write_json
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

    kwargs = {"learning_rate": training["learning_rate"]}
    if training.get("clipnorm"):
        kwargs["clipnorm"] = training["clipnorm"]
    if training.get("optimizer", "adam") == "adamw":
        optimizer = keras.optimizers.AdamW(weight_decay=training.get("weight_decay", 0.0), **kwargs)
    else:
        optimizer = keras.optimizers.Adam(**kwargs)
    losses = {
        t["name"]: (
            "sparse_categorical_crossentropy"
            if t["type"] == "categorical"
            else "mean_squared_error"
        )
        for t in tasks
    }
    model.compile(
        optimizer=optimizer, loss=losses, loss_weights={t["name"]: t["loss_weight"] for t in tasks}
    )


def train(
    db_path: str | Path,
    experiment: Mapping[str, Any],
    test_fold: int | None,
    out_dir: str | Path,
    threads: int = 1,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Train a fresh model on the training speakers of ``test_fold`` (None: on all speakers,
    for ``epochs`` epochs without validation) and write ``model.keras``, ``history.csv`` and
    ``training.json`` into ``out_dir``. Returns the training summary."""
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
    mean, var = feature_moments(db_path, split.train)
    layout = info.attrs["window_spec"]["layout"]
    row_bytes = 4 * int(np.prod(info.row_shape))
    in_ram = split.train.size * row_bytes <= training["max_ram_mb"] * 2**20
    train_arrays = read_rows(db_path, split.train, cols) if in_ram else None
    weights = {}
    if training["class_weights"]:
        labels = (
            train_arrays.label
            if train_arrays is not None
            else read_labels(db_path, split.train, cols)
        )
        for j, task in enumerate(tasks):
            if task["type"] == "categorical":
                weights[task["name"]] = class_weights(labels[:, j], len(task["classes"]))
    batches = ChunkedBatches(
        db_path,
        split.train,
        cols,
        tasks,
        int(training["batch_size"]),
        seed,
        weights=weights,
        arrays=train_arrays,
    )
    model_cfg = dict(experiment.get("model", {}))
    architecture = model_cfg.pop("architecture", "cnn_lstm")
    model = build_model(architecture, info.row_shape, layout, tasks, mean, var, **model_cfg)
    _compile(model, tasks, training)
    n_epochs = int(epochs if epochs is not None else training["epochs"])
    monitor = val = None
    if split.val.size:
        monitor = monitor_task(tasks, experiment.get("monitor"))
        val = read_rows(db_path, split.val, cols)
    stopper = EarlyStopping(int(training["patience"]))
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, n_epochs + 1):
        # train_on_batch / predict_on_batch are compiled once per model: no per-epoch pipeline
        sums: dict[str, float] = {}
        n_batches = 0
        for inputs, targets, weights_ in batches.epoch():
            logs = model.train_on_batch(inputs, targets, sample_weight=weights_, return_dict=True)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            n_batches += 1
        row = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()}}
        if val is not None:
            row.update(validation_logs(model, val, tasks, batches, monitor))
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
    model.save(out_dir / "model.keras")
    history.to_csv(out_dir / "history.csv", index=False)
    summary = {
        "test_fold": test_fold,
        "speakers": split.speakers,
        "n_rows": {
            "train": int(split.train.size),
            "validation": int(split.val.size),
            "test": int(split.test.size),
        },
        "tasks": tasks,
        "monitor": None if monitor is None else monitor["name"],
        "best_epoch": int(best_epoch),
        "epochs_run": int(len(history)),
        "train_seconds": round(seconds, 3),
        "samples_per_second": round(split.train.size * len(history) / max(seconds, 1e-9), 1),
        "in_ram": bool(in_ram),
        "backend": keras.backend.backend(),
        "architecture": architecture,
        "seed": seed,
    }
    write_json(out_dir / "training.json", summary)
    log.info("trained: %s", summary)
    return summary


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
