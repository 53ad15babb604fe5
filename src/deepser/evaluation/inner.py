"""Inner cross-validation inside one outer fold: the experiment is trained on all but one inner
fold of the outer fold's *training* speakers and predicts the held-out inner fold, for every
inner fold in turn. The result (``inner_predictions.csv``, the format of
:mod:`deepser.evaluation.predictions` plus an ``inner_fold`` column) holds one prediction per
training utterance of the outer fold from a model that did not train on its speaker, and never
touches the outer test speakers: what model selection and fusion weights are fitted on."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.database.normalise import SpeakerNorm
from deepser.database.store import read_info
from deepser.evaluation.predictions import predictions_table, write_predictions
from deepser.training.split import inner_speakers
from deepser.training.train import train

log = logging.getLogger(__name__)


def inner_predictions(
    db_path: str | Path,
    experiment: Mapping[str, Any],
    fold: int,
    n_inner: int,
    out_csv: str | Path,
    threads: int = 1,
    init_model: str | Path | None = None,
) -> pd.DataFrame:
    """Train and predict every inner fold of outer fold ``fold``; write ``out_csv``."""
    from deepser.models.saving import load_model

    info = read_info(db_path)
    groups = inner_speakers(info, fold, n_inner)
    outside = (info.fold != fold) & ~info.augmented
    norm = None
    tables = []
    with tempfile.TemporaryDirectory(prefix="deepser-inner-") as tmp:
        for j, speakers in enumerate(groups):
            out = Path(tmp) / f"inner-{j}"
            record = train(
                db_path,
                experiment,
                fold,
                out,
                threads=threads,
                init_model=init_model,
                inner=(n_inner, j),
            )
            if record.normalisation == "speaker" and norm is None:
                norm = SpeakerNorm(info)
            rows = np.flatnonzero(outside & np.isin(info.speaker, speakers))
            model = load_model(out / "model.keras")
            table = predictions_table(
                model,
                info,
                rows,
                record.tasks,
                fold,
                norm=norm if record.normalisation == "speaker" else None,
            )
            table["inner_fold"] = j
            tables.append(table)
            log.info("fold %d, inner fold %d of %d: speakers %s", fold, j, len(groups), speakers)
    result = pd.concat(tables, ignore_index=True)
    write_predictions(out_csv, result)
    return result
