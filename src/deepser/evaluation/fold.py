"""Evaluate one fold: its model predicts every test utterance once; ``predictions.csv`` and
``metrics.json`` are written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepser.database.normalise import SpeakerNorm
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
) -> dict[str, Any]:
    """Predict every test utterance of ``fold`` once; write predictions and metrics."""
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
    write_json(out_metrics, metrics)
    return metrics
