"""Per-group evaluation: does the recogniser work as well for every speaker, gender, ...?

Works on the pooled predictions table (one row per test utterance of all folds: ``corpus,
utt_id, speaker, fold``, ``T_true``/``T_pred`` per task, optionally group columns such as
``gender`` merged in with :func:`merge_meta_columns`). Each group is scored with the metrics of
:mod:`deepser.metrics` on its labelled rows; :func:`largest_gap` names the best and worst group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deepser.evaluation.report import _plain, _save
from deepser.metrics import ccc, classification_metrics
from deepser.tasks import task_type

NONE_GROUP = "(none)"
SPEAKER = "speaker"
_FRACTIONS = ("ua", "wa", "macro_f1")
_LABELS = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1", "ccc": "CCC"}


def _text(values: pd.Series) -> pd.Series:
    """Values as text, missing ones (NaN, None) as ``""``."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _labelled(table: pd.DataFrame, task: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """Mask of the rows labelled for ``task`` and the task's type; checks the columns and that
    every labelled row has a prediction."""
    name = task["name"]
    kind = task_type(task)
    missing = [c for c in (f"{name}_true", f"{name}_pred") if c not in table.columns]
    if missing:
        raise ValueError(f"the predictions table lacks the columns {missing} for task {name!r}")
    true, pred = table[f"{name}_true"], table[f"{name}_pred"]
    if kind == "categorical":
        labelled = (_text(true) != "").to_numpy()
        predicted = (_text(pred) != "").to_numpy()
    else:
        labelled = true.notna().to_numpy()
        predicted = pred.notna().to_numpy()
    unpredicted = labelled & ~predicted
    if unpredicted.any():
        raise ValueError(
            f"task {name!r}: {int(unpredicted.sum())} labelled rows have no prediction "
            f"(rows {table.index[unpredicted][:5].tolist()})"
        )
    return labelled, kind


def _score(rows: pd.DataFrame, task: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Metrics of labelled ``rows`` for ``task`` (``n`` included)."""
    name = task["name"]
    if kind == "categorical":
        classes = [str(c) for c in task["classes"]]
        m = classification_metrics(
            _text(rows[f"{name}_true"]).tolist(), _text(rows[f"{name}_pred"]).tolist(), classes
        )
        return {k: float(m[k]) for k in _FRACTIONS} | {"n": int(m["n"])}
    true = rows[f"{name}_true"].to_numpy(dtype=np.float64)
    pred = rows[f"{name}_pred"].to_numpy(dtype=np.float64)
    return {"ccc": float(ccc(true, pred)), "n": int(true.size)}


def _speakers(rows: pd.DataFrame) -> int:
    """Distinct speakers; a speaker is (corpus, speaker) when there is a corpus column."""
    if SPEAKER not in rows.columns:
        return 0
    keys = [c for c in ("corpus", SPEAKER) if c in rows.columns]
    return int(rows[keys].astype(str).drop_duplicates().shape[0])


def group_metrics(
    table: pd.DataFrame, task: Mapping[str, Any], column: str, min_utterances: int = 1
) -> list[dict[str, Any]]:
    """One row per distinct value of ``column`` (sorted as text; missing or empty values as
    ``"(none)"``): ``group, n, n_speakers`` and ``ua, wa, macro_f1`` (categorical task) or
    ``ccc`` (continuous), on the rows labelled for ``task``. Groups with fewer than
    ``min_utterances`` labelled rows are left out."""
    if column not in table.columns:
        raise ValueError(f"the predictions table has no column {column!r}")
    labelled, kind = _labelled(table, task)
    rows = table[labelled]
    groups = _text(rows[column]).replace("", NONE_GROUP)
    out = []
    for value in sorted(groups.unique()):
        subset = rows[(groups == value).to_numpy()]
        if len(subset) < max(1, min_utterances):
            continue
        m = _score(subset, task, kind)
        out.append({"group": str(value), "n": m.pop("n"), "n_speakers": _speakers(subset), **m})
    return out


def largest_gap(rows: Sequence[Mapping[str, Any]], metric: str = "ua") -> dict[str, Any] | None:
    """Best and worst group by ``metric`` and their difference, or None with fewer than two
    groups holding a value; utterances without a value of the column (``(none)``) are not a
    group."""
    scored = [
        r
        for r in rows
        if r.get(metric) is not None
        and np.isfinite(float(r[metric]))
        and str(r.get("group")) != NONE_GROUP
    ]
    if len(scored) < 2:
        return None
    values = [float(r[metric]) for r in scored]
    best = int(np.argmax(values))
    worst = len(values) - 1 - int(np.argmin(values[::-1]))  # last minimum: differs on ties
    return {
        "metric": metric,
        "best": str(scored[best]["group"]),
        "best_value": values[best],
        "worst": str(scored[worst]["group"]),
        "worst_value": values[worst],
        "gap": values[best] - values[worst],
    }


def _main_metric(task: Mapping[str, Any]) -> str:
    return "ua" if task_type(task) == "categorical" else "ccc"


def group_report(
    table: pd.DataFrame,
    tasks: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    min_utterances: int = 1,
) -> dict[str, Any]:
    """Per-group metrics for ``"speaker"`` and each of ``columns``.

    ``{"overall": {T: pooled metrics}, "speaker": {T: {"groups": [...], "gap": {...} | None}},
    COLUMN: {...}, "missing": [columns not in the table]}``; the gap is on UA (categorical) or
    CCC (continuous). Speakers of different corpora are kept apart (``corpus/speaker``) when the
    table holds more than one corpus. JSON-serialisable."""
    work = table
    if SPEAKER in table.columns and "corpus" in table.columns and table["corpus"].nunique() > 1:
        work = table.copy()
        work[SPEAKER] = _text(table["corpus"]) + "/" + _text(table[SPEAKER])
    report: dict[str, Any] = {"overall": {}}
    for task in tasks:
        labelled, kind = _labelled(work, task)
        if labelled.any():
            report["overall"][str(task["name"])] = _score(work[labelled], task, kind)
    missing: list[str] = []
    for column in dict.fromkeys([SPEAKER, *columns]):
        if column not in work.columns:
            missing.append(str(column))
            continue
        per_task = {}
        for task in tasks:
            groups = group_metrics(work, task, column, min_utterances)
            per_task[str(task["name"])] = {
                "groups": groups,
                "gap": largest_gap(groups, _main_metric(task)),
            }
        report[str(column)] = per_task
    report["missing"] = missing
    return report


def merge_meta_columns(
    table: pd.DataFrame, metas: Mapping[str, pd.DataFrame], columns: Sequence[str]
) -> pd.DataFrame:
    """The predictions table with ``columns`` added from the per-corpus meta tables (``metas``:
    corpus -> table with ``utt_id`` and those columns), matched on (corpus, utt_id).

    Row order and count are kept; values are text, ``""`` where a corpus's meta lacks the column
    or the utterance. Existing columns of that name are replaced."""
    keys = pd.DataFrame({"corpus": _text(table["corpus"]), "utt_id": _text(table["utt_id"])})
    parts = []
    for corpus, meta in metas.items():
        if "utt_id" not in meta.columns:
            raise ValueError(f"meta of corpus {corpus!r} has no utt_id column")
        part = pd.DataFrame({"corpus": str(corpus), "utt_id": _text(meta["utt_id"])})
        for column in columns:
            part[column] = _text(meta[column]) if column in meta.columns else ""
        parts.append(part.drop_duplicates(["corpus", "utt_id"]))
    lookup = pd.concat(parts, ignore_index=True) if parts else None
    out = table.drop(columns=[c for c in columns if c in table.columns])
    if lookup is None:
        for column in columns:
            out[column] = ""
        return out
    merged = keys.merge(lookup, on=["corpus", "utt_id"], how="left", validate="many_to_one")
    for column in columns:
        out[column] = merged[column].fillna("").to_numpy()
    return out


def plot_groups(
    report: Mapping[str, Any],
    task: str,
    path: str | Path,
    metric: str = "ua",
    chance: float | None = None,
) -> Path:
    """One horizontal bar panel per grouping of ``report`` (:func:`group_report`) for ``task``:
    a bar per group, labelled with its value and n, the worst group in red; dashed lines at the
    pooled value (``report["overall"]``) and at ``chance`` when given. Fractions drawn as %."""
    scale = 100.0 if metric in _FRACTIONS else 1.0
    unit = " (%)" if scale == 100.0 else ""
    label = _LABELS.get(metric, metric)
    panels = [
        (str(key), value[task]["groups"])
        for key, value in report.items()
        if key not in ("overall", "missing")
        and isinstance(value, Mapping)
        and task in value
        and value[task]["groups"]
    ]
    heights = [max(1.6, 0.3 * len(groups) + 1.0) for _, groups in panels] or [2.0]
    fig = Figure(figsize=(6.5, sum(heights) + 0.4), layout="constrained")
    if not panels:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, f"no groups for {_plain(task)}", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    overall = report.get("overall", {}).get(task, {}).get(metric)
    axes = fig.subplots(len(panels), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (grouping, groups) in zip(axes[:, 0], panels, strict=True):
        values = [scale * float(g[metric]) for g in groups]
        worst = largest_gap(groups, metric)
        colors = [
            "tab:red" if worst and g["group"] == worst["worst"] else "tab:blue" for g in groups
        ]
        ys = np.arange(len(groups))[::-1]
        bars = ax.barh(ys, values, color=colors)
        fmt = "{:.1f}" if scale == 100.0 else "{:.3f}"
        texts = [f"{fmt.format(v)} (n={g['n']})" for v, g in zip(values, groups, strict=True)]
        ax.bar_label(bars, texts, fontsize=7, padding=2)
        ax.set_yticks(ys, [_plain(g["group"]) for g in groups], fontsize=8)
        if overall is not None:
            ax.axvline(scale * float(overall), color="black", ls="--", lw=1, label="pooled")
        if chance is not None:
            ax.axvline(scale * float(chance), color="gray", ls=":", lw=1, label="chance")
        if scale == 100.0:
            ax.set_xlim(0, 118)
        else:
            ax.set_xlim(min(0.0, *values) - 0.05, 1.25)
        ax.set_xlabel(f"{label}{unit}")
        title = f"{_plain(task)} by {_plain(grouping)}"
        if worst:
            title += f" (gap {fmt.format(scale * worst['gap'])})"
        ax.set_title(title, fontsize=10)
        if overall is not None or chance is not None:
            ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
