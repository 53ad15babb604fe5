"""Evaluate one fold: its model predicts every test utterance once; ``predictions.csv`` and
``metrics.json`` are written, and ``strict_predictions.csv``: the same model on inputs
standardised with the training fold's statistics only. For a model trained with speaker-level
normalisation that is its cold start on a new speaker (the test speaker's own statistics unused);
for a globally normalised model it equals ``predictions.csv``. ``validation_predictions.csv``:
the same model on the fold's validation speakers (training speakers held out from training), on
which calibration is fitted without touching the test speakers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepser.database.normalise import FixedNorm, SpeakerNorm, feature_moments
from deepser.database.store import read_info
from deepser.evaluation.predictions import predictions_table, write_predictions
from deepser.files import write_json
from deepser.metrics import fold_metrics
from deepser.training.record import read_training


def evaluate_fold(
    db_path: str | Path,
    model_path: str | Path,
    training_json: str | Path,
    fold: int,
    out_predictions: str | Path,
    out_metrics: str | Path,
    out_strict: str | Path | None = None,
    out_validation: str | Path | None = None,
) -> dict[str, Any]:
    """Predict every test utterance of ``fold`` once; write predictions and metrics (and the
    strict predictions to ``out_strict``; their metrics go into ``metrics.json`` as
    ``strict``)."""
    from deepser.models.saving import load_model

    info = read_info(db_path)
    trained = read_training(training_json)
    model = load_model(model_path)
    rows = info.fold_rows(fold)
    if not rows.size:
        raise ValueError(f"fold {fold} has no rows (the database has {info.n_folds} folds)")
    norm = SpeakerNorm(info) if trained.normalisation == "speaker" else None
    table = predictions_table(model, info, rows, trained.tasks, fold, norm=norm)
    write_predictions(out_predictions, table)
    metrics = fold_metrics(table, trained.tasks)
    metrics.update(fold=fold, speakers=trained.speakers, best_epoch=trained.best_epoch)
    if out_strict is not None:
        strict = table
        if norm is not None:
            mean, var = feature_moments(db_path, np.flatnonzero(info.fold != fold))
            strict = predictions_table(
                model, info, rows, trained.tasks, fold, norm=FixedNorm(mean, var)
            )
            metrics["strict"] = fold_metrics(strict, trained.tasks)
        write_predictions(out_strict, strict)
    if out_validation is not None:
        write_predictions(
            out_validation,
            predictions_table(
                model,
                info,
                validation_rows(info, trained.speakers["validation"], fold),
                trained.tasks,
                fold,
                norm=norm,
            ),
        )
    write_json(out_metrics, metrics)
    return metrics


def validation_rows(info, speakers: list[str], fold: int) -> np.ndarray:
    """The original recordings of a fold's validation ``speakers`` (never of its test fold)."""
    keep = np.isin(info.speaker, list(speakers)) & ~info.augmented & (info.fold != fold)
    return np.flatnonzero(keep)
