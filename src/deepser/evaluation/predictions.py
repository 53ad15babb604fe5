"""The format of ``predictions.csv`` (its only reader and writer) and the table of a model's
predictions for database rows.

``predictions.csv`` is comma-separated with a header: one row per test utterance with
``corpus, utt_id, speaker, fold`` (a row is identified by (corpus, utt_id), as in the
database), then per categorical task ``T_true`` and ``T_pred`` (class names) and one
probability column ``T_p_<class>`` per class, per continuous task ``T_true`` and ``T_pred``
numbers. :func:`read_predictions` reads class names back as text, whatever they look like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.database.normalise import SpeakerNorm
from deepser.database.store import DatabaseInfo, read_rows
from deepser.files import atomic_path
from deepser.models import as_inputs
from deepser.tasks import is_categorical

ID_COLUMNS = ("corpus", "utt_id", "speaker", "fold")


def predictions_table(
    model,
    info: DatabaseInfo,
    rows: np.ndarray,
    tasks: list[dict],
    fold: int,
    batch_size: int = 64,
    norm: SpeakerNorm | None = None,
) -> pd.DataFrame:
    """One row per utterance of ``rows`` (the format of this module's docstring); no rows: an
    empty table with every column."""
    if not len(rows):
        return pd.DataFrame(columns=prediction_columns(tasks))
    arrays = read_rows(info.path, rows, info.label_columns([t["name"] for t in tasks]), norm)
    out = model.predict(as_inputs(arrays.feat, arrays.n_valid), batch_size=batch_size, verbose=0)
    if not isinstance(out, dict):
        out = {tasks[0]["name"]: out}
    table = pd.DataFrame(
        {
            "corpus": info.corpus[rows],
            "utt_id": info.utt_id[rows],
            "speaker": info.speaker[rows],
            "fold": fold,
        }
    )
    for j, task in enumerate(tasks):
        name, y = task["name"], arrays.label[:, j]
        if is_categorical(task):
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


def prediction_columns(tasks: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns of ``predictions.csv`` for ``tasks``, in order."""
    columns = list(ID_COLUMNS)
    for task in tasks:
        name = task["name"]
        columns += [f"{name}_true", f"{name}_pred"]
        if is_categorical(task):
            columns += [f"{name}_p_{c}" for c in task["classes"]]
    return columns


def write_predictions(path: str | Path, table: pd.DataFrame) -> None:
    """Write ``predictions.csv`` atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")


def read_predictions(path: str | Path, tasks: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Read ``predictions.csv``: identifiers and class names as text (a class "1" stays "1",
    a class "NA" stays "NA"), the fold as an integer, probabilities and continuous values as
    floats (an empty cell: not labelled)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["fold"] = table["fold"].astype(int)
    numeric = []
    for task in tasks:
        name = task["name"]
        if is_categorical(task):
            numeric += [f"{name}_p_{c}" for c in task["classes"]]
        else:
            numeric += [f"{name}_true", f"{name}_pred"]
    for column in numeric:
        table[column] = pd.to_numeric(table[column].replace("", np.nan))
    return table
