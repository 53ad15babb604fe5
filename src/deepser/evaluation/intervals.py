"""Speaker-level (cluster) bootstrap confidence intervals and paired comparison tests.

Utterances of one speaker are not independent, so the uncertainty of a metric is estimated by
resampling *speakers* (groups) rather than utterances: a bootstrap draw takes ``n_groups``
speakers with replacement and pools all their rows (a speaker drawn twice counts twice). The
interval is the percentile interval of the draws at ``(1 - level) / 2`` and
``1 - (1 - level) / 2``.

Two models scored on the same rows are compared by

- the paired speaker bootstrap (the same speakers drawn for both models) for the interval of
  the difference ``metric(a) - metric(b)``, and
- a speaker-level paired permutation test for the two-sided p-value: for each speaker, a's and
  b's predictions are swapped with probability 1/2, and
  ``p = (1 + #{|d*| >= |d|}) / (1 + n_perm)``.

The metrics are those of :mod:`deepser.metrics` (UA over the classes present in ``y_true``, WA,
macro-F1 over the classes present in ``y_true`` or ``y_pred``, Lin's CCC with population
moments) and the point estimates are computed by those functions on all rows. Everything is
vectorised: per-speaker confusion matrices (or CCC sufficient statistics) are computed once and
a draw is a vector of per-speaker counts (or swap indicators).

With a single speaker every draw is that speaker, so the interval is degenerate
(``low == high == estimate``): there is no between-speaker information to estimate from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deepser.metrics import ccc, macro_f1, unweighted_average_recall, weighted_accuracy
from deepser.tasks import task_type

CATEGORICAL_METRICS = ("ua", "wa", "macro_f1")
PERMUTATION_TEST = "speaker-level paired permutation (swap a and b per speaker)"


# ------------------------------------------------------------------ checks and group coding


def _check_options(level: float, n_boot: int, n_perm: int | None = None) -> None:
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if n_perm is not None and int(n_perm) < 1:
        raise ValueError(f"n_perm must be at least 1, got {n_perm}")


def _check_lengths(**arrays: np.ndarray) -> int:
    sizes = {name: int(np.asarray(a).size) for name, a in arrays.items()}
    n = next(iter(sizes.values()))
    if len(set(sizes.values())) > 1:
        raise ValueError(f"lengths differ: {sizes}")
    if n == 0:
        raise ValueError("no values to score: the inputs are empty")
    return n


def _indices(values: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    a = np.asarray(values).ravel()
    if not np.issubdtype(a.dtype, np.integer):
        if not (np.issubdtype(a.dtype, np.floating) and bool(np.all(np.mod(a, 1) == 0))):
            raise ValueError(f"{name} must hold integer class indices, got dtype {a.dtype}")
    if a.min() < 0 or a.max() >= n_classes:
        raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}")
    return a.astype(np.int64)


def _floats(values: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (NaN or inf found)")
    return a


def _group_codes(groups: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, int]:
    """Integer code 0..G-1 of each row's group, and G."""
    g = np.asarray(groups).ravel()
    if g.dtype == object:
        g = g.astype(str)
    _, codes = np.unique(g, return_inverse=True)
    codes = codes.ravel().astype(np.int64)
    return codes, int(codes.max()) + 1


def _percentile(draws: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _boot_counts(rng: np.random.Generator, n_groups: int, n_boot: int) -> np.ndarray:
    """``(n_boot, n_groups)`` float counts: how often each group is drawn in each draw."""
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot).astype(
        np.float64
    )


def _interval(estimate: float, draws: np.ndarray, level: float, n_boot: int, g: int) -> dict:
    low, high = _percentile(draws, level)
    return {
        "estimate": float(estimate),
        "low": low,
        "high": high,
        "level": float(level),
        "n_boot": int(n_boot),
        "n_groups": g,
        "resampled": "speakers",
    }


# ------------------------------------------------------------------ vectorised metrics


def _group_confusions(
    t: np.ndarray, p: np.ndarray, codes: np.ndarray, n_groups: int, n_classes: int
) -> np.ndarray:
    """``(G, C*C)`` float per-group confusion counts (rows true, columns predicted)."""
    cc = n_classes * n_classes
    flat = np.bincount(codes * cc + t * n_classes + p, minlength=n_groups * cc)
    return flat.reshape(n_groups, cc).astype(np.float64)


def _confusion_metrics(conf: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """UA, WA and macro-F1 of ``(B, C*C)`` confusion counts, each ``(B,)``."""
    cm = conf.reshape(-1, n_classes, n_classes)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = support.sum(axis=1)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    ua = recall.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    denom = support + predicted  # 2 tp + fp + fn
    used = denom > 0
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=used)
    return {
        "ua": ua,
        "wa": tp.sum(axis=1) / total,
        "macro_f1": f1.sum(axis=1) / np.maximum(used.sum(axis=1), 1),
    }


def _group_moments(t: np.ndarray, p: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """``(G, 6)`` per-group sums n, t, p, t², p², tp, after shifting both by ``t[0]`` (CCC is
    invariant to a common shift; it limits cancellation and keeps constant series exact)."""
    shift = t[0]
    ts, ps = t - shift, p - shift
    cols = (np.ones_like(ts), ts, ps, ts * ts, ps * ps, ts * ps)
    return np.stack([np.bincount(codes, weights=c, minlength=n_groups) for c in cols], axis=1)


def _moments_ccc(m: np.ndarray) -> np.ndarray:
    """CCC of ``(B, 6)`` summed moments, 1.0 where the denominator is 0."""
    n, st, sp, stt, spp, stp = m.T
    mt, mp = st / n, sp / n
    var_t = np.maximum(stt / n - mt * mt, 0.0)
    var_p = np.maximum(spp / n - mp * mp, 0.0)
    cov = stp / n - mt * mp
    denom = var_t + var_p + (mt - mp) ** 2
    return np.divide(2.0 * cov, denom, out=np.ones_like(denom), where=denom > 0)


# ------------------------------------------------------------------ intervals


def metric_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    n_classes: int,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict]:
    """Speaker-bootstrap intervals of UA, WA and macro-F1 (integer class indices).

    Returns ``{"ua" | "wa" | "macro_f1": {"estimate", "low", "high", "level", "n_boot",
    "n_groups", "resampled": "speakers"}}``; ``estimate`` is the metric on all rows. With one
    group the interval is degenerate (``low == high == estimate``). Raises ValueError for empty
    or mismatched inputs, ``n_classes < 1``, ``level`` outside (0, 1) or ``n_boot < 1``."""
    _check_lengths(y_true=y_true, y_pred=y_pred, groups=groups)
    _check_options(level, n_boot)
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    t = _indices(y_true, n_classes, "y_true")
    p = _indices(y_pred, n_classes, "y_pred")
    codes, g = _group_codes(groups)
    cms = _group_confusions(t, p, codes, g, n_classes)
    counts = _boot_counts(np.random.default_rng(seed), g, n_boot)
    draws = _confusion_metrics(counts @ cms, n_classes)
    estimates = {
        "ua": unweighted_average_recall(t, p, n_classes),
        "wa": weighted_accuracy(t, p),
        "macro_f1": macro_f1(t, p, n_classes),
    }
    return {k: _interval(estimates[k], draws[k], level, n_boot, g) for k in CATEGORICAL_METRICS}


def ccc_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Speaker-bootstrap interval of Lin's CCC (continuous values); the dict of
    :func:`metric_intervals`'s entries. Degenerate with one group."""
    _check_lengths(y_true=y_true, y_pred=y_pred, groups=groups)
    _check_options(level, n_boot)
    t = _floats(y_true, "y_true")
    p = _floats(y_pred, "y_pred")
    codes, g = _group_codes(groups)
    moments = _group_moments(t, p, codes, g)
    counts = _boot_counts(np.random.default_rng(seed), g, n_boot)
    return _interval(ccc(t, p), _moments_ccc(counts @ moments), level, n_boot, g)


# ------------------------------------------------------------------ paired comparisons


def _paired_result(
    metric: str,
    difference: float,
    boot: np.ndarray,
    perm: np.ndarray,
    level: float,
    n_boot: int,
    n_perm: int,
    g: int,
) -> dict:
    low, high = _percentile(boot, level)
    # a small tolerance so that ties (e.g. d = 0 for identical models) count as extreme
    extreme = np.abs(perm) >= abs(difference) - 1e-12
    return {
        "metric": metric,
        "difference": float(difference),
        "low": low,
        "high": high,
        "p_value": float((1 + int(extreme.sum())) / (1 + n_perm)),
        "level": float(level),
        "n_groups": g,
        "n_boot": int(n_boot),
        "n_perm": int(n_perm),
        "resampled": "speakers",
        "test": PERMUTATION_TEST,
    }


def _swap_masks(rng: np.random.Generator, n_groups: int, n_perm: int) -> np.ndarray:
    return (rng.random((n_perm, n_groups)) < 0.5).astype(np.float64)


def paired_difference(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    n_classes: int,
    metric: str = "ua",
    n_boot: int = 1000,
    n_perm: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """``metric(a) - metric(b)`` on the same rows (``metric`` one of ua, wa, macro_f1).

    Returns ``{"metric", "difference", "low", "high", "p_value", "level", "n_groups", "n_boot",
    "n_perm", "resampled", "test"}``: the interval by the paired speaker bootstrap (the same
    speakers drawn for a and b), the two-sided p-value by the speaker-level paired permutation
    test, ``(1 + #{|d*| >= |d|}) / (1 + n_perm)``."""
    if metric not in CATEGORICAL_METRICS:
        raise ValueError(f"metric must be one of {CATEGORICAL_METRICS}, got {metric!r}")
    _check_lengths(y_true=y_true, pred_a=pred_a, pred_b=pred_b, groups=groups)
    _check_options(level, n_boot, n_perm)
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    t = _indices(y_true, n_classes, "y_true")
    a = _indices(pred_a, n_classes, "pred_a")
    b = _indices(pred_b, n_classes, "pred_b")
    codes, g = _group_codes(groups)
    cms_a = _group_confusions(t, a, codes, g, n_classes)
    cms_b = _group_confusions(t, b, codes, g, n_classes)
    score = {
        "ua": lambda p: unweighted_average_recall(t, p, n_classes),
        "wa": lambda p: weighted_accuracy(t, p),
        "macro_f1": lambda p: macro_f1(t, p, n_classes),
    }[metric]
    difference = score(a) - score(b)

    def vec(conf: np.ndarray) -> np.ndarray:
        return _confusion_metrics(conf, n_classes)[metric]

    rng = np.random.default_rng(seed)
    counts = _boot_counts(rng, g, n_boot)
    boot = vec(counts @ cms_a) - vec(counts @ cms_b)
    swap = _swap_masks(rng, g, n_perm) @ (cms_b - cms_a)
    total_a, total_b = cms_a.sum(axis=0), cms_b.sum(axis=0)
    perm = vec(total_a + swap) - vec(total_b - swap)
    return _paired_result(metric, difference, boot, perm, level, n_boot, n_perm, g)


def paired_ccc_difference(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    n_boot: int = 1000,
    n_perm: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """``ccc(a) - ccc(b)`` on the same rows: the dict of :func:`paired_difference` with
    ``metric="ccc"``."""
    _check_lengths(y_true=y_true, pred_a=pred_a, pred_b=pred_b, groups=groups)
    _check_options(level, n_boot, n_perm)
    t = _floats(y_true, "y_true")
    a = _floats(pred_a, "pred_a")
    b = _floats(pred_b, "pred_b")
    codes, g = _group_codes(groups)
    m_a = _group_moments(t, a, codes, g)
    m_b = _group_moments(t, b, codes, g)
    difference = ccc(t, a) - ccc(t, b)
    rng = np.random.default_rng(seed)
    counts = _boot_counts(rng, g, n_boot)
    boot = _moments_ccc(counts @ m_a) - _moments_ccc(counts @ m_b)
    swap = _swap_masks(rng, g, n_perm) @ (m_b - m_a)
    total_a, total_b = m_a.sum(axis=0), m_b.sum(axis=0)
    perm = _moments_ccc(total_a + swap) - _moments_ccc(total_b - swap)
    return _paired_result("ccc", difference, boot, perm, level, n_boot, n_perm, g)


# ------------------------------------------------------------------ predictions tables


def _labelled(values: pd.Series) -> np.ndarray:
    """Rows whose label is present (not NaN/None and not empty text)."""
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    return ~missing


def _task_arrays(
    table: pd.DataFrame, task: Mapping[str, Any], group_column: str
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(kind, true, pred, groups) of the labelled rows; class names encoded as indices."""
    name = task["name"]
    kind = task_type(task)
    columns = [group_column, f"{name}_true", f"{name}_pred"]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"task {name!r}: the predictions lack the columns {missing}")
    keep = _labelled(table[f"{name}_true"])
    rows = table.loc[keep]
    if rows[f"{name}_pred"].isna().any():
        raise ValueError(f"task {name!r}: labelled rows without a prediction")
    groups = rows[group_column].astype(str).to_numpy()
    if kind == "continuous":
        true = rows[f"{name}_true"].to_numpy(dtype=np.float64)
        pred = rows[f"{name}_pred"].to_numpy(dtype=np.float64)
        return kind, true, pred, groups
    index = {str(c): i for i, c in enumerate(task["classes"])}
    encoded = []
    for column in (f"{name}_true", f"{name}_pred"):
        labels = rows[column].astype(str).tolist()
        unknown = sorted({v for v in labels if v not in index})
        if unknown:
            raise ValueError(
                f"task {name!r}: {column} holds labels not among the classes {list(index)}: "
                f"{unknown}"
            )
        encoded.append(np.array([index[v] for v in labels], dtype=np.int64))
    return kind, encoded[0], encoded[1], groups


def task_intervals(
    table: pd.DataFrame,
    task: Mapping[str, Any],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    group_column: str = "speaker",
) -> dict:
    """Speaker-bootstrap intervals of one task of a predictions table.

    ``table`` has the columns ``speaker`` (``group_column``), ``{task}_true`` and
    ``{task}_pred`` (class names, or floats for continuous tasks); rows with an empty or NaN
    ``{task}_true`` are skipped. Categorical: the result of :func:`metric_intervals`;
    continuous: ``{"ccc": ccc_interval(...)}``. Raises ValueError if no row is labelled."""
    kind, true, pred, groups = _task_arrays(table, task, group_column)
    if true.size == 0:
        raise ValueError(f"task {task['name']!r}: no labelled row")
    if kind == "continuous":
        return {"ccc": ccc_interval(true, pred, groups, n_boot, level, seed)}
    return metric_intervals(true, pred, groups, len(task["classes"]), n_boot, level, seed)


def paired_task_difference(
    table_a: pd.DataFrame,
    table_b: pd.DataFrame,
    task: Mapping[str, Any],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    n_perm: int = 1000,
    group_column: str = "speaker",
) -> dict | None:
    """Paired comparison of one task of two predictions tables (a minus b).

    The tables are inner-joined on ``(corpus, utt_id)`` (on ``utt_id`` alone when either lacks
    ``corpus``); the labels and speakers must agree on the joined rows (ValueError otherwise),
    and rows without a label are skipped. The metric is UA for categorical tasks and CCC for
    continuous ones. Returns the dict of :func:`paired_difference` plus ``n_utterances``, or
    None when the shared labelled rows span fewer than 2 speakers."""
    name = task["name"]
    kind = task_type(task)
    key = ["corpus", "utt_id"] if {"corpus"} <= set(table_a) & set(table_b) else ["utt_id"]
    columns = [group_column, f"{name}_true", f"{name}_pred"]
    frames = []
    for label, table in (("a", table_a), ("b", table_b)):
        missing = [c for c in [*key, *columns] if c not in table.columns]
        if missing:
            raise ValueError(f"predictions {label} lack the columns {missing}")
        if table.duplicated(subset=key).any():
            raise ValueError(f"predictions {label} hold an utterance more than once")
        frame = table[[*key, *columns]].copy()
        frame[key] = frame[key].astype(str)
        frames.append(frame)
    joined = frames[0].merge(frames[1], on=key, how="inner", suffixes=("_a", "_b"))
    true_a, true_b = joined[f"{name}_true_a"], joined[f"{name}_true_b"]
    lab_a, lab_b = _labelled(true_a), _labelled(true_b)
    if kind == "continuous":
        both = lab_a & lab_b
        va = true_a.to_numpy()[both].astype(np.float64)
        vb = true_b.to_numpy()[both].astype(np.float64)
        agree = bool(np.array_equal(lab_a, lab_b) and np.allclose(va, vb))
    else:
        agree = bool(
            np.array_equal(lab_a, lab_b)
            and np.array_equal(true_a[lab_a].astype(str), true_b[lab_b].astype(str))
        )
    if not agree:
        raise ValueError(f"task {name!r}: the two tables' labels differ on shared utterances")
    spk_a = joined[f"{group_column}_a"].astype(str).to_numpy()
    if not np.array_equal(spk_a, joined[f"{group_column}_b"].astype(str).to_numpy()):
        raise ValueError(f"task {name!r}: the two tables' speakers differ on shared utterances")
    side: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for s in ("a", "b"):
        view = pd.DataFrame(
            {
                group_column: joined[f"{group_column}_{s}"],
                f"{name}_true": joined[f"{name}_true_{s}"],
                f"{name}_pred": joined[f"{name}_pred_{s}"],
            }
        )
        _, true, pred, groups = _task_arrays(view, task, group_column)
        side.append((true, pred, groups))
    (true, pred_a, groups), (_, pred_b, _) = side
    if np.unique(groups).size < 2:
        return None
    if kind == "continuous":
        out = paired_ccc_difference(true, pred_a, pred_b, groups, n_boot, n_perm, level, seed)
    else:
        out = paired_difference(
            true, pred_a, pred_b, groups, len(task["classes"]), "ua", n_boot, n_perm, level, seed
        )
    out["n_utterances"] = int(true.size)
    return out


def gap_interval(
    table: pd.DataFrame,
    task: Mapping[str, Any],
    column: str,
    best: str,
    worst: str,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict | None:
    """Interval of the UA gap between the groups ``best`` and ``worst`` of ``column`` (e.g.
    gender): each draw resamples the speakers of each group, with replacement, within the
    group (stratified), so the interval says how much the gap depends on who was recorded.
    None for continuous tasks or when a group has fewer than two speakers."""
    if task_type(task) != "categorical" or column not in table.columns:
        return None
    rows = table.loc[_labelled(table[f"{task['name']}_true"])]
    values = rows[column].astype(str).to_numpy()
    n_classes = len(task["classes"])
    _, true, pred, speakers = _task_arrays(rows, task, "speaker")
    draws = []
    rng = np.random.default_rng(seed)
    for name in (best, worst):
        keep = values == name
        codes, g = _group_codes(speakers[keep])
        if g < 2:
            return None
        conf = _group_confusions(true[keep], pred[keep], codes, g, n_classes)
        counts = _boot_counts(rng, g, n_boot)
        draws.append(_confusion_metrics(counts @ conf, n_classes)["ua"])
        full = _confusion_metrics(conf.sum(axis=0, keepdims=True), n_classes)["ua"][0]
        draws[-1] = (draws[-1], full)
    (best_draws, best_ua), (worst_draws, worst_ua) = draws
    low, high = _percentile(best_draws - worst_draws, level)
    return {
        "estimate": float(best_ua - worst_ua),
        "low": low,
        "high": high,
        "level": float(level),
        "n_boot": int(n_boot),
        "resampled": "speakers within each group",
    }
