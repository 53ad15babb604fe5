"""The final model: trained on every speaker for a number of epochs chosen from the folds, and
written as the experiment's model bundle."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepser.bundle import Bundle, make_bundle
from deepser.database.store import class_counts, read_info
from deepser.files import write_json
from deepser.training.record import TrainingRecord, read_training
from deepser.training.train import train


def final_epochs(config: Mapping[str, Any], trainings: Sequence[TrainingRecord]) -> int:
    """Epochs for the final model: the config's number, or the median of the folds' best epochs."""
    chosen = config.get("final_epochs", "auto")
    if chosen != "auto":
        return int(chosen)
    return max(1, int(round(statistics.median(t.best_epoch for t in trainings))))


def train_final(
    experiment: str,
    config: Mapping[str, Any],
    db_path: str | Path,
    fold_trainings: Sequence[str | Path],
    out_dir: str | Path,
    base_json: str | Path,
    threads: int = 1,
    init_model: str | Path | None = None,
) -> Bundle:
    """Train on all speakers for the chosen number of epochs: ``model.keras`` in ``out_dir``
    and the bundle without the cross-validated figures in ``base_json`` (the experiment's
    auxiliary tasks left out); :func:`finish_bundle` adds them. Evaluation settings therefore
    never retrain the final model."""
    trainings = [read_training(p) for p in fold_trainings]
    epochs = final_epochs(config, trainings)
    out_dir = Path(out_dir)
    record = train(
        db_path, config, None, out_dir, threads=threads, epochs=epochs, init_model=init_model
    )
    tasks = record.kept_tasks
    info = read_info(db_path)
    data = {
        "corpora": info.attrs["corpora"],
        "n_utterances": int((~info.augmented).sum()),
        "speakers": info.attrs["speakers"],
        "database": str(db_path),
        "n_augmented": int(info.augmented.sum()),
        "class_counts": class_counts(info, tasks),
    }
    training = {
        "epochs": epochs,
        "epochs_rule": config.get("final_epochs", "auto"),
        "fold_best_epochs": [t.best_epoch for t in trainings],
        "architecture": record.architecture,
        "seed": record.seed,
        "model": dict(config.get("model", {})),
        "hyper_parameters": dict(config.get("training", {})),
        "auxiliary_tasks": record.auxiliary,
        "initialised_from": record.initialised_from,
    }
    bundle = make_bundle(
        info.attrs,
        tasks,
        experiment,
        training=training,
        data=data,
        normalisation=record.normalisation,
    )
    write_json(base_json, bundle.to_json())
    return bundle
