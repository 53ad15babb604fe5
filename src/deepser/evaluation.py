"""Evaluate a fold's model on its test speakers: predictions.csv and metrics.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.data import (
    SpeakerNorm,
    as_inputs,
    label_columns,
    read_info,
    read_rows,
    split_fold,
)
from deepser.files import read_json, write_json
from deepser.metrics import fold_metrics


def predictions_table(
    model,
    info,
    rows: np.ndarray,
    tasks: list[dict],
    fold: int,
    batch_size: int = 64,
    norm: SpeakerNorm | None = None,
) -> pd.DataFrame:
    """One row per utterance: utt_id, speaker, fold, then per task true/predicted (and the
    class probabilities)."""
    arrays = read_rows(info.path, rows, label_columns(info, [t["name"] for t in tasks]), norm)
    out = model.predict(as_inputs(arrays.feat, arrays.n_valid), batch_size=batch_size, verbose=0)
    if not isinstance(out, dict):
        out = {tasks[0]["name"]: out}
    table = pd.DataFrame({"utt_id": info.utt_id[rows], "speaker": info.speaker[rows], "fold": fold})
    for j, task in enumerate(tasks):
        name, y = task["name"], arrays.label[:, j]
        if task["type"] == "categorical":
            classes = task["classes"]
            proba = np.asarray(out[name])
            table[f"{name}_true"] = [classes[int(i)] for i in y]
            table[f"{name}_pred"] = [classes[int(i)] for i in proba.argmax(-1)]
            for k, cls in enumerate(classes):
                table[f"{name}_p_{cls}"] = np.round(proba[:, k], 6)
        else:
            table[f"{name}_true"] = y
            table[f"{name}_pred"] = np.asarray(out[name]).reshape(-1)
    return table


def evaluate_fold(
    db_path: str | Path,
    model_path: str | Path,
    training_json: str | Path,
    fold: int,
    out_predictions: str | Path,
    out_metrics: str | Path,
) -> dict[str, Any]:
    """Predict every test utterance of ``fold`` once; write predictions and metrics."""
    import keras

    import deepser.models  # noqa: F401  (registers the custom layers)

    info = read_info(db_path)
    trained = read_json(training_json)
    tasks = trained["tasks"]
    split = split_fold(info, fold, 0.0, 0)
    model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    norm = SpeakerNorm(info) if trained.get("normalisation") == "speaker" else None
    table = predictions_table(model, info, split.test, tasks, fold, norm=norm)
    from deepser.meta import write_table

    write_table(out_predictions, table)
    metrics = fold_metrics(table, tasks)
    metrics.update(fold=fold, speakers=trained["speakers"], best_epoch=trained["best_epoch"])
    write_json(out_metrics, metrics)
    return metrics
