"""Train one fold (or the final model) in three steps: :func:`prepare` (split, normalisation,
class weights, re-sampling, batches), :func:`deepser.training.loop.fit` (the epoch loop with
early stopping), and :func:`save_outputs` (``model.keras``, ``history.csv``,
``training.json``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepser.database.normalise import SpeakerNorm, feature_moments
from deepser.database.store import Arrays, DatabaseInfo, read_info, read_labels, read_rows
from deepser.files import atomic_path
from deepser.runtime import configure_backend
from deepser.tasks import is_categorical
from deepser.training.batches import ChunkedBatches, class_weights, resample_factors
from deepser.training.loop import compile_model, fit
from deepser.training.record import TrainingRecord, write_training
from deepser.training.settings import experiment_tasks, monitor_task, training_settings
from deepser.training.split import FoldSplit, split_fold
from deepser.training.transfer import initialise_from

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldData:
    """Everything the loop needs for one fold, read and decided before any model exists."""

    info: DatabaseInfo
    tasks: list[dict[str, Any]]
    split: FoldSplit
    normalisation: str
    mean: np.ndarray  # per-dimension statistics the model's normalisation layer holds
    var: np.ndarray
    batches: ChunkedBatches
    val: Arrays | None
    monitor: dict[str, Any] | None

    @property
    def in_ram(self) -> bool:
        """Whether the training rows are held in memory (else read block by block)."""
        return self.batches.arrays is not None


def prepare(
    db_path: str | Path,
    experiment: Mapping[str, Any],
    test_fold: int | None,
    inner: tuple[int, int] | None = None,
) -> FoldData:
    """Split the database for ``test_fold`` (None: every speaker trains, no validation;
    ``inner=(n_inner, j)``: inner fold j inside the outer fold's training speakers), choose
    the normalisation statistics (training rows only, or per speaker), class weights and
    re-sampling factors from the training labels, and set up the batches."""
    training = training_settings(experiment)
    seed = int(training["seed"])
    info = read_info(db_path)
    tasks = experiment_tasks(info, experiment.get("tasks"))
    val_fraction = 0.0 if test_fold is None else float(training["validation_fraction"])
    split = split_fold(info, test_fold, val_fraction, seed, inner)
    log.info("fold %s speakers: %s", test_fold, split.speakers)
    cols = info.label_columns([t["name"] for t in tasks])
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
    labels = train_arrays.label if in_ram else read_labels(db_path, split.train, cols)
    weights = {}
    if training["class_weights"]:
        for j, task in enumerate(tasks):
            if is_categorical(task):
                weights[task["name"]] = class_weights(labels[:, j], len(task["classes"]))
    monitor = monitor_task(tasks, experiment.get("monitor"))
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
        augment=training.get("spec_augment"),
        augment_fill=mean,
    )
    val = None
    if split.val.size:
        if monitor is None:
            raise ValueError("early stopping needs a categorical task to monitor")
        val = read_rows(db_path, split.val, cols, norm)
    return FoldData(info, tasks, split, normalisation, mean, var, batches, val, monitor)


def train(
    db_path: str | Path,
    experiment: Mapping[str, Any],
    test_fold: int | None,
    out_dir: str | Path,
    threads: int = 1,
    epochs: int | None = None,
    init_model: str | Path | None = None,
    inner: tuple[int, int] | None = None,
) -> TrainingRecord:
    """Train a fresh model on the training speakers of ``test_fold`` (None: on all speakers,
    for ``epochs`` epochs without validation) and write ``model.keras``, ``history.csv`` and
    ``training.json`` into ``out_dir``. ``init_model``: start from that model's weights
    (fine-tuning; see :func:`deepser.training.transfer.initialise_from`). ``inner=(n_inner, j)``:
    train inner fold j of ``test_fold`` (see :func:`deepser.training.split.split_fold`). Returns
    the record of ``training.json``."""
    training = training_settings(experiment)
    configure_backend(threads, int(training["seed"]))
    # Keras and the models load only now, after the backend's threads are bound
    import keras

    from deepser.models.registry import build_model

    data = prepare(db_path, experiment, test_fold, inner)
    model_cfg = dict(experiment.get("model", {}))
    architecture = model_cfg.pop("architecture", "cnn_lstm")
    model = build_model(
        architecture,
        data.info.row_shape,
        data.info.layout,
        data.tasks,
        data.mean,
        data.var,
        **model_cfg,
    )
    initialised = None
    if init_model is not None:
        initialised = initialise_from(model, init_model, list(experiment.get("freeze", [])))
    compile_model(model, data.tasks, training)
    n_epochs = int(epochs if epochs is not None else training["epochs"])
    result = fit(model, data.batches, n_epochs, training, data.val, data.monitor)
    auxiliary = list(experiment.get("auxiliary", []))
    if test_fold is None and auxiliary:  # the bundle's model: without the auxiliary heads
        keep = [t["name"] for t in data.tasks if t["name"] not in auxiliary]
        model = keras.Model(model.inputs, {n: model.get_layer(n).output for n in keep})
    split, info = data.split, data.info
    n_samples = len(data.batches) * int(training["batch_size"]) * len(result.history)
    record = TrainingRecord(
        test_fold=test_fold,
        speakers=split.speakers,
        n_rows={
            "train": int(split.train.size),
            "train_augmented": int(info.augmented[split.train].sum()),
            "validation": int(split.val.size),
            "test": int(split.test.size),
        },
        tasks=data.tasks,
        auxiliary=auxiliary,
        monitor=None if data.monitor is None else data.monitor["name"],
        normalisation=data.normalisation,
        best_epoch=result.best_epoch,
        epochs_run=int(len(result.history)),
        train_seconds=round(result.seconds, 3),
        samples_per_second=round(n_samples / max(result.seconds, 1e-9), 1),
        in_ram=data.in_ram,
        backend=keras.backend.backend(),
        architecture=architecture,
        n_parameters=int(model.count_params()),
        initialised_from=None if init_model is None else {"model": str(init_model), **initialised},
        seed=int(training["seed"]),
    )
    save_outputs(model, result.history, record, out_dir)
    log.info("trained: %s", record)
    return record


def save_outputs(model, history, record: TrainingRecord, out_dir: str | Path) -> None:
    """Write ``model.keras``, ``history.csv`` and ``training.json`` (each atomically)."""
    from deepser.models.saving import save_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, out_dir / "model.keras")
    with atomic_path(out_dir / "history.csv") as tmp:
        history.to_csv(tmp, index=False)
    write_training(out_dir / "training.json", record)
