"""The classic baseline beside every network: per fold, a linear classifier (class-balanced
multinomial logistic regression, or a linear SVM) on utterance-level functionals of the same
utterances and speakers, standardised with the training fold's statistics only. Cheap (seconds)
and strong on small corpora: a network that does not beat it does not earn its cost.

The functionals come from the feature shards of a ``functionals`` feature set of the database's
corpora (the database's own when it is one). Rows are the database's original recordings, in its
folds; predictions and metrics have the format of an experiment's."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.database.store import DatabaseInfo, read_info, read_labels
from deepser.evaluation.predictions import write_predictions
from deepser.features.shards import FeatureShard
from deepser.files import write_json
from deepser.metrics import fold_metrics, summarize_experiment
from deepser.tasks import is_categorical

log = logging.getLogger(__name__)

CLASSIFIERS = ("logistic_regression", "linear_svm")
DEFAULTS: dict[str, Any] = {"classifier": "logistic_regression", "c": 1.0}


def utterance_vectors(
    info: DatabaseInfo, rows: np.ndarray, shards: Mapping[str, Sequence[str | Path]]
) -> np.ndarray:
    """(rows, dims) functionals of the database rows, from each corpus's shards (every
    utterance must be there; a missing one is a ValueError naming it)."""
    found: dict[tuple[str, str], np.ndarray] = {}
    for corpus, paths in shards.items():
        for path in paths:
            with FeatureShard(path) as shard:
                for utt, vec in shard.read_all().items():
                    found[(corpus, utt)] = vec
    out = []
    for r in rows:
        key = (str(info.corpus[r]), str(info.utt_id[r]))
        if key not in found:
            raise ValueError(f"baseline: no functionals for {key[0]}/{key[1]} in its shards")
        vec = found[key]
        if vec.shape[0] != 1:
            raise ValueError(
                f"baseline: {key[0]}/{key[1]} has {vec.shape[0]} frames; the baseline needs a "
                "functionals feature set (one vector per utterance)"
            )
        out.append(vec[0])
    return np.asarray(out, np.float64)


def make_classifier(settings: Mapping[str, Any], seed: int = 0):
    """The scikit-learn classifier of ``settings`` (class-balanced)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    kind, c = settings["classifier"], float(settings["c"])
    if kind == "logistic_regression":
        return LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    if kind == "linear_svm":
        return LinearSVC(C=c, class_weight="balanced", max_iter=20000, random_state=seed)
    raise ValueError(f"unknown baseline classifier {kind!r} (use one of {', '.join(CLASSIFIERS)})")


def _probabilities(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(rows, classes) scores: probabilities (logistic regression) or a softmax of the SVM's
    decision values; classes absent from training get 0."""
    if hasattr(model, "predict_proba"):
        p = model.predict_proba(x)
    else:
        d = model.decision_function(x)
        d = np.stack([-d, d], 1) if d.ndim == 1 else d
        e = np.exp(d - d.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_.astype(int)] = p
    return out


def fold_predictions(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    n_classes: int,
    settings: Mapping[str, Any],
) -> np.ndarray:
    """Standardise with the training rows' mean and std, fit, and return the test rows'
    (rows, classes) scores. ``train``/``test``: boolean masks; unlabelled training rows
    (y < 0) are left out."""
    fit_rows = train & (y >= 0)
    mean = x[fit_rows].mean(0)
    std = x[fit_rows].std(0)
    std[std < 1e-12] = 1.0
    model = make_classifier(settings)
    model.fit((x[fit_rows] - mean) / std, y[fit_rows].astype(int))
    return _probabilities(model, (x[test] - mean) / std, n_classes)


def run_baseline(
    db_path: str | Path,
    shards: Mapping[str, Sequence[str | Path]],
    settings: Mapping[str, Any] | None,
    out_dir: str | Path,
    name: str = "baseline",
) -> dict[str, Any]:
    """Cross-validate the baseline on the database's folds; write ``predictions.csv`` and
    ``metrics.json`` (an experiment's format, plus ``classifier``). Returns the summary."""
    settings = {**DEFAULTS, **(settings or {})}
    info = read_info(db_path)
    tasks = [t for t in info.tasks if is_categorical(t)]
    if not tasks:
        raise ValueError("the baseline needs a categorical task in the database")
    if not info.n_folds:
        raise ValueError("the baseline needs a database with folds (fold_by)")
    rows = np.flatnonzero(~info.augmented)
    x = utterance_vectors(info, rows, shards)
    labels = read_labels(db_path, rows, info.label_columns([t["name"] for t in tasks]))
    fold = info.fold[rows]
    table = pd.DataFrame(
        {
            "corpus": info.corpus[rows],
            "utt_id": info.utt_id[rows],
            "speaker": info.speaker[rows],
            "fold": fold,
        }
    )
    for j, task in enumerate(tasks):
        y = np.where(np.isnan(labels[:, j]), -1, labels[:, j]).astype(int)
        classes = task["classes"]
        proba = np.zeros((len(rows), len(classes)))
        for k in range(info.n_folds):
            test = fold == k
            proba[test] = fold_predictions(x, y, fold != k, test, len(classes), settings)
        table[f"{task['name']}_true"] = [classes[i] if i >= 0 else "" for i in y]
        table[f"{task['name']}_pred"] = [classes[int(i)] for i in proba.argmax(1)]
        for c, cls in enumerate(classes):
            table[f"{task['name']}_p_{cls}"] = np.round(proba[:, c], 6)
    for task in tasks:  # unlabelled rows: no truth (empty cell, read back as missing)
        column = f"{task['name']}_true"
        table[column] = table[column].replace("", np.nan)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.csv", table)
    folds = [table[table["fold"] == k] for k in range(info.n_folds)]
    summary = summarize_experiment(name, [fold_metrics(f, tasks) for f in folds], folds, tasks)
    summary["kind"] = "baseline"
    summary["classifier"] = dict(settings)
    summary["dims"] = int(x.shape[1])
    write_json(out_dir / "metrics.json", summary)
    log.info("baseline: %s", {t: summary["tasks"][t]["ua"]["mean"] for t in summary["tasks"]})
    return summary
