"""``predictions.csv``: a real CSV with the row identity (corpus, utt_id); class names come back
as the text they were, whatever they look like."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepser.evaluation.predictions import read_predictions, write_predictions
from deepser.metrics import fold_metrics

TASKS = [
    {"name": "x", "type": "categorical", "classes": ["1", "2.0", "NA", "007"]},
    {"name": "x_p", "type": "categorical", "classes": ["a", "b"]},  # its columns start with x_p_
    {"name": "score", "type": "continuous"},
]


def test_predictions_round_trip_as_text(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "corpus": ["a", "b", "a"],
            "utt_id": ["s1/u1", "s1/u1", "s2/u,2"],  # the same id in two corpora; a comma
            "speaker": ["a/s1", "b/s1", "a/s2"],
            "fold": [0, 0, 1],
            "x_true": ["1", "NA", "007"],
            "x_pred": ["2.0", "NA", "1"],
            **{f"x_p_{c}": [0.25, 0.25, 0.25] for c in TASKS[0]["classes"]},
            "x_p_true": ["a", "b", "a"],
            "x_p_pred": ["a", "a", "b"],
            "x_p_p_a": [0.6, 0.7, 0.1],
            "x_p_p_b": [0.4, 0.3, 0.9],
            "score_true": [0.5, np.nan, 1.0],  # not labelled for the second utterance
            "score_pred": [0.4, 0.2, 0.9],
        }
    )
    path = tmp_path / "predictions.csv"
    write_predictions(path, table)
    assert path.read_text().splitlines()[0].startswith("corpus,utt_id,speaker,fold,")
    back = read_predictions(path, TASKS)
    assert list(back["x_true"]) == ["1", "NA", "007"] and list(back["x_pred"]) == ["2.0", "NA", "1"]
    assert list(back["utt_id"]) == ["s1/u1", "s1/u1", "s2/u,2"]
    assert back["fold"].tolist() == [0, 0, 1] and back["x_p_p_a"].dtype == float
    assert back["score_true"].isna().tolist() == [False, True, False]
    metrics = fold_metrics(back, TASKS)["tasks"]
    assert metrics["x"]["n"] == 3 and metrics["x"]["wa"] == 1 / 3
    assert metrics["score"]["n"] == 2
