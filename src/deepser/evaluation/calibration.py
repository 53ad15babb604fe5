"""Calibration and selective prediction for classifiers that output class probabilities.

Top-label expected calibration error (ECE) and reliability bins, temperature scaling fitted on
held-out (validation) predictions, accuracy/UA against coverage when the least confident rows are
abstained on, and the matching plots (matplotlib ``Figure`` with the Agg canvas, no pyplot).

``proba`` is always ``(N, C)`` (rows are samples, columns classes) and ``y_true`` ``(N,)`` integer
class indices in ``[0, C)``. Temperature scaling treats ``log(max(p, 1e-7))`` as the logits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy.optimize import minimize_scalar

from deepser.evaluation.report import _plain, _save
from deepser.metrics import unweighted_average_recall

_EPS = 1e-7  # floor of a probability before its log is taken
_T_BOUNDS = (0.05, 20.0)  # search range of the temperature
_MAX_POINTS = 101  # points kept of a selective curve
_TOLERANCE = 1e-6  # slack above 1 allowed for a probability (float32 round-off)


# ------------------------------------------------------------------------------------ validation


def _check(proba: Any, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
    """``proba`` as float64 ``(N, C)`` and ``y_true`` as int64 ``(N,)``, or ValueError."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"proba must be 2-D (N, C) with C >= 1, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains non-finite values (NaN or inf)")
    if p.size and (p.min() < 0 or p.max() > 1 + _TOLERANCE):
        raise ValueError(f"proba must lie in [0, 1], got values in [{p.min()}, {p.max()}]")
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if len(y) != len(p):
        raise ValueError(f"proba has {len(p)} rows but y_true has {len(y)} labels")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("y_true must hold integer class indices")
    elif y.dtype.kind not in "iub" and y.size:
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(
            f"y_true must be class indices in [0, {p.shape[1]}), got [{y.min()}, {y.max()}]"
        )
    return p, y


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    return int(n_bins)


def _confidence(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence (clipped to [0, 1]) and predicted class of each row."""
    if not len(p):
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.clip(p.max(axis=1), 0.0, 1.0), p.argmax(axis=1)


# ----------------------------------------------------------------------------------- calibration


def _binned(
    p: np.ndarray, y: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edges, per-bin count, summed confidence and summed correctness."""
    conf, pred = _confidence(p)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=(pred == y).astype(np.float64), minlength=n_bins)
    return edges, count, conf_sum, acc_sum


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: ``sum_b (n_b / N) |acc_b - conf_b|`` over equal-width confidence bins.

    Confidence is the max probability, correct means argmax == label; a confidence of exactly 1
    falls in the last bin. NaN for no rows."""
    p, y = _check(proba, y_true)
    n_bins = _check_bins(n_bins)
    if not len(p):
        return float("nan")
    _, count, conf_sum, acc_sum = _binned(p, y, n_bins)
    return float(np.sum(np.abs(acc_sum - conf_sum)) / len(p))


def reliability_bins(proba: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> dict[str, list]:
    """Per-bin mean confidence, accuracy (None for an empty bin) and count, with the bin edges."""
    p, y = _check(proba, y_true)
    n_bins = _check_bins(n_bins)
    edges, count, conf_sum, acc_sum = _binned(p, y, n_bins)
    return {
        "edges": [float(e) for e in edges],
        "confidence": [float(c / n) if n else None for c, n in zip(conf_sum, count, strict=True)],
        "accuracy": [float(a / n) if n else None for a, n in zip(acc_sum, count, strict=True)],
        "count": [int(n) for n in count],
    }


def _scaled_log_proba(p: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise log-softmax of ``log(max(p, 1e-7)) / T``."""
    z = np.log(np.maximum(p, _EPS)) / temperature
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _nll(p: np.ndarray, y: np.ndarray, temperature: float) -> float:
    return float(-np.mean(_scaled_log_proba(p, temperature)[np.arange(len(y)), y]))


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    return t


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(max(p, 1e-7)) / T)`` row-wise, float64 rows summing to 1.

    T > 1 softens, T < 1 sharpens, the argmax is kept; T = 1 renormalises the (floored) input."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"proba must be 2-D (N, C) with C >= 1, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains non-finite values (NaN or inf)")
    t = _check_temperature(temperature)
    if not len(p):
        return p.copy()
    return np.exp(_scaled_log_proba(p, t))


def fit_temperature(proba: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature minimising the mean NLL of ``apply_temperature(proba, T)`` against ``y_true``.

    Bounded scalar search over log T in [log 0.05, log 20]. 1.0 for no rows or a single class
    present (nothing to fit)."""
    p, y = _check(proba, y_true)
    if not len(p) or np.unique(y).size < 2:
        return 1.0
    result = minimize_scalar(
        lambda log_t: _nll(p, y, float(np.exp(log_t))),
        bounds=(np.log(_T_BOUNDS[0]), np.log(_T_BOUNDS[1])),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(np.exp(result.x))


def _none_if_nan(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def calibration_summary(
    proba_test: np.ndarray,
    y_test: np.ndarray,
    proba_val: np.ndarray,
    y_val: np.ndarray,
    n_bins: int = 10,
) -> dict[str, Any]:
    """ECE and NLL of the test predictions before and after temperature scaling.

    The temperature is fitted on the validation arrays only (1.0 without a validation row), never
    on the test ones. NLL is that of the renormalised, floored probabilities. ECE/NLL are None
    without a test row."""
    pt, yt = _check(proba_test, y_test)
    pv, yv = _check(proba_val, y_val)
    if pt.shape[1] != pv.shape[1]:
        raise ValueError(f"test has {pt.shape[1]} classes but validation has {pv.shape[1]}")
    n_bins = _check_bins(n_bins)
    temperature = fit_temperature(pv, yv)
    calibrated = apply_temperature(pt, temperature)
    empty = not len(pt)
    return {
        "temperature": temperature,
        "n_fit": int(len(pv)),
        "ece": _none_if_nan(expected_calibration_error(pt, yt, n_bins)),
        "ece_calibrated": _none_if_nan(expected_calibration_error(calibrated, yt, n_bins)),
        "nll": None if empty else _nll(pt, yt, 1.0),
        "nll_calibrated": None if empty else _nll(pt, yt, temperature),
        "n": int(len(pt)),
    }


# --------------------------------------------------------------------------- selective prediction


def selective_curve(
    proba: np.ndarray, y_true: np.ndarray, n_classes: int | None = None
) -> dict[str, list[float]]:
    """Accuracy and UA of the ``k`` most confident rows against coverage ``k / N``.

    ``threshold`` is the confidence of the k-th row (rows sorted by confidence, descending). UA is
    the mean recall over the classes present among the kept rows' labels. At most 101 points
    (coverage ≈ 0, 0.01, …, 1; always full coverage). ``n_classes``, if given, must equal C."""
    p, y = _check(proba, y_true)
    n_cls = p.shape[1]
    if n_classes is not None and n_classes != n_cls:
        raise ValueError(f"n_classes is {n_classes} but proba has {n_cls} columns")
    n = len(p)
    if not n:
        return {"coverage": [], "accuracy": [], "ua": [], "threshold": []}
    conf, pred = _confidence(p)
    order = np.argsort(-conf, kind="stable")
    conf, pred, y = conf[order], pred[order], y[order]
    correct = pred == y
    if n <= _MAX_POINTS:
        ks = np.arange(1, n + 1)
    else:
        steps = np.arange(_MAX_POINTS)
        ks = np.unique(np.maximum((n * steps + _MAX_POINTS - 2) // (_MAX_POINTS - 1), 1))
    onehot = np.zeros((n, n_cls), dtype=np.int64)
    onehot[np.arange(n), y] = 1
    support = np.cumsum(onehot, axis=0)[ks - 1]
    hits = np.cumsum(onehot * correct[:, None], axis=0)[ks - 1]
    recall = np.divide(hits, support, out=np.zeros(hits.shape), where=support > 0)
    ua = recall.sum(axis=1) / (support > 0).sum(axis=1)
    accuracy = np.cumsum(correct)[ks - 1] / ks
    return {
        "coverage": [float(k / n) for k in ks],
        "accuracy": [float(a) for a in accuracy],
        "ua": [float(u) for u in ua],
        "threshold": [float(conf[k - 1]) for k in ks],
    }


def coverage_table(
    proba: np.ndarray,
    y_true: np.ndarray,
    thresholds: Sequence[float] = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
) -> list[dict[str, float | None]]:
    """Per minimum confidence P: fraction of rows kept (max prob >= P), their accuracy and UA
    (None when no row is kept)."""
    p, y = _check(proba, y_true)
    conf, pred = _confidence(p)
    rows: list[dict[str, float | None]] = []
    for threshold in thresholds:
        t = float(threshold)
        if not np.isfinite(t):
            raise ValueError(f"thresholds must be finite, got {threshold!r}")
        keep = conf >= t
        kept = int(keep.sum())
        rows.append(
            {
                "min_confidence": t,
                "coverage": float(kept / len(p)) if len(p) else 0.0,
                "accuracy": float(np.mean(pred[keep] == y[keep])) if kept else None,
                "ua": (
                    unweighted_average_recall(y[keep], pred[keep], p.shape[1]) if kept else None
                ),
            }
        )
    return rows


# ----------------------------------------------------------------------------------------- plots


def plot_reliability(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    title: str,
    n_bins: int = 10,
) -> Path:
    """Reliability diagram: accuracy against mean confidence per bin for each named
    ``(proba, y_true)`` (markers sized by count, ECE in the legend) over the diagonal, with a
    histogram of the confidences below."""
    n_bins = _check_bins(n_bins)
    data = {name: _check(proba, y) for name, (proba, y) in curves.items()}
    fig = Figure(figsize=(5.0, 5.6), layout="constrained")
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for k, (name, (p, y)) in enumerate(data.items()):
        color = f"C{k}"
        bins = reliability_bins(p, y, n_bins)
        filled = [i for i, n in enumerate(bins["count"]) if n > 0]
        xs = [bins["confidence"][i] for i in filled]
        ys = [bins["accuracy"][i] for i in filled]
        counts = np.array([bins["count"][i] for i in filled], dtype=np.float64)
        ece = expected_calibration_error(p, y, n_bins) if len(p) else float("nan")
        label = f"{_plain(name)} (ECE {100 * ece:.1f}%)" if len(p) else f"{_plain(name)} (no rows)"
        ax.plot(xs, ys, color=color, lw=1.5, label=label)
        if len(counts):
            sizes = 12 + 120 * counts / counts.max()
            ax.scatter(xs, ys, s=sizes, color=color, alpha=0.7, zorder=3)
        conf, _ = _confidence(p)
        hist.hist(conf, bins=edges, histtype="step", color=color, lw=1.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(_plain(title))
    ax.legend(fontsize=8, loc="upper left")
    hist.set_xlabel("confidence (max probability); marker area ∝ count")
    hist.set_ylabel("count")
    return _save(fig, path)


def plot_coverage(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str
) -> Path:
    """Accuracy (solid) and UA (dashed) against coverage for each named ``(proba, y_true)``."""
    data = {name: _check(proba, y) for name, (proba, y) in curves.items()}
    fig = Figure(figsize=(5.6, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for k, (name, (p, y)) in enumerate(data.items()):
        curve = selective_curve(p, y)
        color = f"C{k}"
        ax.plot(
            curve["coverage"],
            curve["accuracy"],
            color=color,
            lw=1.8,
            label=f"{_plain(name)} accuracy",
        )
        ax.plot(
            curve["coverage"], curve["ua"], color=color, lw=1.5, ls="--", label=f"{_plain(name)} UA"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coverage (fraction of most confident rows kept)")
    ax.set_ylabel("accuracy / UA")
    ax.set_title(_plain(title))
    if data:
        ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)
