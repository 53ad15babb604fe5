"""Evaluation metrics (UA, WA, macro-F1, confusion matrices, standard CCC) and fold aggregation.

Pure functions on numpy arrays. Class labels given to the array functions are integer indices
``0 .. n_classes - 1``; :func:`classification_metrics` and the table functions take class names.
All metrics are fractions in [0, 1] (CCC and Pearson in [-1, 1]).

Definitions (the conventions of the SER literature and of scikit-learn):

- **WA** (weighted accuracy): plain accuracy.
- **UA** (unweighted accuracy, UAR): mean recall over the classes *present in* ``y_true``;
  classes with no true example are left out (as ``sklearn.metrics.balanced_accuracy_score``).
- **macro-F1**: mean F1 over the classes present in ``y_true`` or ``y_pred`` (as
  ``f1_score(average="macro", zero_division=0)`` with ``labels=None``).
- **CCC**: Lin's concordance correlation coefficient on the raw values (no min-max
  normalisation, unlike the original toolkit), population (biased) moments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deepser.tasks import task_type


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no values to score: y_true and y_pred are empty")
    return t, p


def _check_indices(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    t, p = _check_pair(y_true, y_pred)
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if not np.issubdtype(a.dtype, np.integer):
            ok = np.issubdtype(a.dtype, np.floating) and bool(np.all(np.mod(a, 1) == 0))
            if not ok:
                raise ValueError(
                    f"{name} must hold integer class indices, got dtype {a.dtype} "
                    "(use classification_metrics for class names)"
                )
        if a.min() < 0 or a.max() >= n_classes:
            raise ValueError(
                f"{name} holds class indices outside 0..{n_classes - 1} "
                f"(min {a.min()}, max {a.max()})"
            )
    return t.astype(np.int64), p.astype(np.int64)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix of counts, ``(n_classes, n_classes)`` int64: rows true, cols predicted."""
    t, p = _check_indices(y_true, y_pred, n_classes)
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def unweighted_average_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """UA: mean per-class recall over the classes present in ``y_true``.

    Classes absent from ``y_true`` have no recall and are excluded from the mean (as
    ``sklearn.metrics.balanced_accuracy_score``), so a fold lacking a class is not penalised
    for it."""
    cm = confusion(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """WA: plain accuracy, the fraction of exact matches."""
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean(t == p))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes present in ``y_true`` or ``y_pred``.

    Matches ``sklearn.metrics.f1_score(average="macro", labels=None, zero_division=0)``: a class
    never predicted but present in ``y_true`` (or predicted but absent) counts with F1 = 0;
    classes in neither are left out."""
    cm = confusion(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    used = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.mean(f1[used]))


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient on the raw values.

    ``2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))**2)`` with population (biased)
    variances and covariance. No normalisation is applied first. When the denominator is 0
    (both series constant and equal) the agreement is perfect and 1.0 is returned."""
    t, p = _check_pair(y_true, y_pred)
    t = t.astype(np.float64)
    p = p.astype(np.float64)
    mt, mp = t.mean(), p.mean()
    cov = np.mean((t - mt) * (p - mp))
    denom = t.var() + p.var() + (mt - mp) ** 2
    if denom == 0:
        return 1.0
    return float(2.0 * cov / denom)


def _pearson(t: np.ndarray, p: np.ndarray) -> float:
    st, sp = t.std(), p.std()
    if st == 0 or sp == 0:
        return 0.0
    return float(np.mean((t - t.mean()) * (p - p.mean())) / (st * sp))


def _encode(labels: Sequence[Any] | np.ndarray, classes: Sequence[str], what: str) -> np.ndarray:
    index = {str(c): i for i, c in enumerate(classes)}
    keys = [str(v) for v in labels]
    unknown = sorted({k for k in keys if k not in index})
    if unknown:
        raise ValueError(
            f"{what} holds labels that are not among the task's classes {list(index)}: {unknown}"
        )
    return np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))


def classification_metrics(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    classes: Sequence[str],
) -> dict[str, Any]:
    """UA, WA, macro-F1, confusion (list of lists, rows true, in ``classes`` order) and n.

    ``y_true`` and ``y_pred`` hold class names (compared as text, so read label columns back
    as text: :func:`deepser.evaluation.predictions.read_predictions`); a name not in
    ``classes`` raises ValueError."""
    t = _encode(y_true, classes, "y_true")
    p = _encode(y_pred, classes, "y_pred")
    n = len(classes)
    return {
        "ua": unweighted_average_recall(t, p, n),
        "wa": weighted_accuracy(t, p),
        "macro_f1": macro_f1(t, p, n),
        "confusion": confusion(t, p, n).tolist(),
        "n": int(t.size),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """CCC, mean squared error, Pearson correlation (0.0 if either series is constant) and n."""
    t, p = _check_pair(y_true, y_pred)
    t = t.astype(np.float64)
    p = p.astype(np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError("regression values must be finite (NaN or inf found)")
    return {
        "ccc": ccc(t, p),
        "mse": float(np.mean((t - p) ** 2)),
        "pearson": _pearson(t, p),
        "n": int(t.size),
    }


def _task_columns(predictions: pd.DataFrame, name: str) -> tuple[pd.Series, pd.Series]:
    missing = [c for c in (f"{name}_true", f"{name}_pred") if c not in predictions.columns]
    if missing:
        raise ValueError(
            f"predictions lack the columns {missing} for task {name!r} "
            f"(columns present: {list(predictions.columns)})"
        )
    true = predictions[f"{name}_true"]
    pred = predictions[f"{name}_pred"]
    labelled = true.notna().to_numpy()
    unpredicted = labelled & pred.isna().to_numpy()
    if unpredicted.any():
        where = predictions.index[unpredicted][:5].tolist()
        raise ValueError(
            f"task {name!r}: {int(unpredicted.sum())} labelled rows have no prediction "
            f"(rows {where})"
        )
    return true[labelled], pred[labelled]


def fold_metrics(predictions: pd.DataFrame, tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of one fold's ``predictions.csv`` table.

    Columns: ``corpus, utt_id, speaker, fold``, then per categorical task T ``T_true``,
    ``T_pred`` (class names) and ``T_p_<class>`` probabilities, per continuous task ``T_true``,
    ``T_pred`` floats.
    ``tasks``: dicts ``{"name", "type": "categorical" | "continuous", "classes"}``.

    Rows whose ``T_true`` is missing (utterance not labelled for T) are skipped for that task.
    Returns ``{"tasks": {T: metrics}, "n": rows}``, metrics as :func:`classification_metrics`
    (plus ``classes``) or :func:`regression_metrics`; a task with no labelled row gets
    ``{"n": 0}`` only (plus ``classes`` for categorical tasks)."""
    out: dict[str, Any] = {}
    for task in tasks:
        name = task["name"]
        kind = task_type(task)
        true, pred = _task_columns(predictions, name)
        if kind == "categorical":
            classes = [str(c) for c in task["classes"]]
            if len(true) == 0:
                out[name] = {"classes": classes, "n": 0}
            else:
                out[name] = {
                    "classes": classes,
                    **classification_metrics(true.tolist(), pred.tolist(), classes),
                }
        else:
            if len(true) == 0:
                out[name] = {"n": 0}
            else:
                out[name] = regression_metrics(
                    true.to_numpy(dtype=np.float64), pred.to_numpy(dtype=np.float64)
                )
    return {"tasks": out, "n": int(len(predictions))}


def _spread(values: Sequence[float]) -> dict[str, Any]:
    """mean, sample std (ddof=1; 0.0 for a single value) and the values themselves."""
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "per_fold": [float(v) for v in arr],
    }


def _utterance_keys(df: pd.DataFrame, k: int) -> list[tuple[str, str]]:
    """(corpus, utt_id) of each row: the identity of an utterance in a database (a table
    without a corpus column is one corpus)."""
    if "utt_id" not in df.columns:
        raise ValueError(f"predictions of fold {k} have no utt_id column")
    corpus = df["corpus"].astype(str) if "corpus" in df.columns else [""] * len(df)
    return list(zip(corpus, df["utt_id"].astype(str), strict=True))


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}" if key[0] else key[1]


def _check_unique_utterances(fold_predictions: Sequence[pd.DataFrame]) -> None:
    seen: dict[tuple[str, str], int] = {}
    clashes: list[str] = []
    for k, df in enumerate(fold_predictions):
        keys = _utterance_keys(df, k)
        within = sorted(_name(u) for u, n in Counter(keys).items() if n > 1)
        if within:
            raise ValueError(
                f"predictions of fold {k} hold utterance(s) more than once: {within[:5]} "
                "(every test utterance must be predicted exactly once)"
            )
        for u in keys:
            if u in seen:
                clashes.append(f"{_name(u)!r} (folds {seen[u]} and {k})")
            else:
                seen[u] = k
    if clashes:
        raise ValueError(
            f"{len(clashes)} utterance(s) are predicted in two folds, e.g. "
            f"{', '.join(clashes[:5])}: every test utterance must be predicted exactly once "
            "(are the folds speaker-disjoint?)"
        )


def summarize_experiment(
    experiment: str,
    fold_metrics_list: Sequence[Mapping[str, Any]],
    fold_predictions: Sequence[pd.DataFrame],
    tasks: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The experiment's ``metrics.json`` (written by :func:`deepser.evaluation.summary.summarize`).

    ``{"experiment", "n_folds", "tasks": {T: {"classes", "ua", "wa", "macro_f1", "pooled"}}}`` for
    categorical tasks, ``{T: {"ccc", "pooled": {"ccc"}}}`` for continuous ones. Each metric holds
    ``mean``, ``std`` and ``per_fold`` (fold order of ``fold_metrics_list``); ``std`` is the
    sample standard deviation across folds (ddof=1), 0.0 when there is one fold. A fold without
    labelled rows for a task is left out of that task's ``per_fold``. ``pooled`` is computed on the
    concatenation of all folds' predictions. Raises ValueError if an utterance (corpus, utt_id)
    is predicted twice (in two folds or within one) or the two lists differ in length."""
    if len(fold_metrics_list) != len(fold_predictions):
        raise ValueError(
            f"{len(fold_metrics_list)} fold metrics but {len(fold_predictions)} prediction tables"
        )
    if not fold_metrics_list:
        raise ValueError(f"experiment {experiment!r}: no folds to summarise")
    _check_unique_utterances(fold_predictions)
    pooled = fold_metrics(pd.concat(list(fold_predictions), ignore_index=True), tasks)["tasks"]

    out: dict[str, Any] = {}
    for task in tasks:
        name = task["name"]
        kind = task_type(task)
        per_fold: list[Mapping[str, Any]] = []
        for k, fm in enumerate(fold_metrics_list):
            if name not in fm.get("tasks", {}):
                raise ValueError(f"metrics of fold {k} have no entry for task {name!r}")
            if fm["tasks"][name].get("n", 0) > 0:
                per_fold.append(fm["tasks"][name])
        if not per_fold:
            raise ValueError(f"task {name!r}: no fold has a labelled test utterance")
        p = pooled[name]
        if kind == "categorical":
            out[name] = {
                "classes": [str(c) for c in task["classes"]],
                "ua": _spread([m["ua"] for m in per_fold]),
                "wa": _spread([m["wa"] for m in per_fold]),
                "macro_f1": _spread([m["macro_f1"] for m in per_fold]),
                "pooled": {
                    "ua": p["ua"],
                    "wa": p["wa"],
                    "macro_f1": p["macro_f1"],
                    "confusion": p["confusion"],
                },
            }
        else:
            out[name] = {
                "ccc": _spread([m["ccc"] for m in per_fold]),
                "pooled": {"ccc": p["ccc"]},
            }
    return {"experiment": str(experiment), "n_folds": len(fold_metrics_list), "tasks": out}
