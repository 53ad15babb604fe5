"""Late fusion of several experiments' per-utterance class probabilities on the same folds.

Methods (per categorical task):

- ``average``: the mean of the members' probabilities (nothing fitted);
- ``weighted``: a weighted mean, the weights (on a simplex grid) maximising UA on the members'
  *inner-fold* predictions of the outer fold's training speakers (never its test speakers);
- ``stacking``: a multinomial logistic regression on the members' log-probabilities, trained on
  the same inner-fold predictions (class-balanced, standardised inputs).

A fitted combiner is a small JSON-able dict, applied without scikit-learn by :func:`combine`
(the recogniser runs it on every segment). The final bundle's combiner is fitted on the
members' outer-fold predictions of every speaker (each predicted by a model that did not train
on its speaker).
"""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.bundle import FusionBundle, read_bundle
from deepser.evaluation import combine as cb
from deepser.evaluation import report
from deepser.evaluation.predictions import write_predictions
from deepser.files import read_json, write_json
from deepser.late_fusion import combine, stack_inputs
from deepser.metrics import unweighted_average_recall

log = logging.getLogger(__name__)

NEEDS_INNER = ("weighted", "stacking")


def weight_grid(n_members: int, steps: int | None = None) -> np.ndarray:
    """Every weight vector on the simplex with the given number of steps per unit."""
    if steps is None:
        steps = {1: 1, 2: 20, 3: 10, 4: 8}.get(n_members, 4)
    combos = [c for c in itertools.product(range(steps + 1), repeat=n_members) if sum(c) == steps]
    return np.array(combos, np.float64) / steps


def fit_weights(probas: Sequence[np.ndarray], y: np.ndarray, n_classes: int) -> list[float]:
    """Simplex weights maximising UA of the weighted mean on labelled rows; ties go to the
    weights closest to uniform (so flat inner evidence gives the plain average)."""
    keep = y >= 0
    stack = np.stack([p[keep] for p in probas])  # (members, rows, classes)
    grid = weight_grid(len(probas))
    uniform = np.full(len(probas), 1.0 / len(probas))
    best, best_key = uniform, (-1.0, 0.0)
    for w in grid:
        pred = np.tensordot(w, stack, axes=1).argmax(-1)
        ua = unweighted_average_recall(y[keep], pred, n_classes)
        key = (round(ua, 9), -float(np.abs(w - uniform).sum()))
        if key > best_key:
            best, best_key = w, key
    return [float(v) for v in best]


def fit_stacking(
    probas: Sequence[np.ndarray], y: np.ndarray, n_classes: int, c: float = 1.0, seed: int = 0
) -> dict[str, Any]:
    """A class-balanced multinomial logistic regression on standardised log-probabilities;
    returned as plain numbers (mean, scale, coef, intercept)."""
    from sklearn.linear_model import LogisticRegression

    keep = y >= 0
    x = stack_inputs([p[keep] for p in probas])
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    present = np.unique(y[keep])
    if len(present) < 2:
        raise ValueError("stacking needs at least two classes in the inner-fold predictions")
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit((x - mean) / scale, y[keep])
    coef = np.full((n_classes, x.shape[1]), 0.0)
    intercept = np.full(n_classes, -30.0)  # a class never seen in training is never predicted
    coef[model.classes_] = model.coef_ if len(present) > 2 else np.vstack([-0.5, 0.5]) @ model.coef_
    intercept[model.classes_] = (
        model.intercept_ if len(present) > 2 else np.array([-0.5, 0.5]) * model.intercept_[0]
    )
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        "intercept": intercept.tolist(),
    }


def fit(
    method: str,
    tables: Mapping[str, pd.DataFrame],
    tasks: Sequence[Mapping[str, Any]],
    seed: int = 0,
) -> dict[str, Any]:
    """The combiner's parameters per task, fitted on aligned member tables (``average``:
    none)."""
    if method == "average":
        return {t["name"]: None for t in tasks}
    out = {}
    first = next(iter(tables.values()))
    for task in tasks:
        probas = [cb.probabilities(t, task) for t in tables.values()]
        y = cb.labels(first, task)
        if method == "weighted":
            out[task["name"]] = {"weights": fit_weights(probas, y, len(task["classes"]))}
        else:
            out[task["name"]] = fit_stacking(probas, y, len(task["classes"]), seed=seed)
    return out


def apply(
    method: str,
    params: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    tasks: Sequence[Mapping[str, Any]],
) -> pd.DataFrame:
    """The fused predictions table of aligned member tables."""
    probas = {
        t["name"]: combine(
            method, params[t["name"]], [cb.probabilities(m, t) for m in tables.values()]
        )
        for t in tasks
    }
    return cb.predictions_from(next(iter(tables.values())), probas, tasks)


def fuse(
    name: str,
    fusion: Mapping[str, Any],
    member_tasks: Mapping[str, Sequence[Mapping[str, Any]]],
    member_folds: Mapping[str, Sequence[str | Path]],
    member_strict: Mapping[str, Sequence[str | Path]],
    member_inner: Mapping[str, Sequence[str | Path]] | None,
    out_dir: str | Path,
    evaluation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fuse the members' outer-fold predictions fold by fold (each fold's combiner fitted on
    that fold's inner predictions only), write ``predictions.csv``, ``strict_predictions.csv``,
    ``fusion.json`` (per-fold and final combiners), ``metrics.json`` and ``report.html``."""
    method = fusion.get("method", "average")
    tasks = cb.shared_tasks(member_tasks, fusion.get("tasks"))
    outer = cb.align({m: cb.read_member_folds(member_folds[m], tasks) for m in member_folds})
    strict = cb.align({m: cb.read_member_folds(member_strict[m], tasks) for m in member_strict})
    folds = sorted(next(iter(outer.values()))["fold"].unique())
    fused, fused_strict, per_fold = [], [], []
    for k in folds:
        test = {m: t[t["fold"] == k] for m, t in outer.items()}
        params = {t["name"]: None for t in tasks}
        if method in NEEDS_INNER:
            if member_inner is None:
                raise ValueError(f"fusion method {method!r} needs the members' inner folds")
            inner = cb.align(
                {m: cb.read_member_folds([member_inner[m][k]], tasks) for m in member_inner}
            )
            speakers = set(next(iter(inner.values()))["speaker"])
            leak = speakers & set(next(iter(test.values()))["speaker"])
            if leak:
                raise ValueError(f"fold {k}: inner predictions hold test speakers {sorted(leak)}")
            params = fit(method, inner, tasks)
        per_fold.append({"fold": int(k), "params": params})
        fused.append(apply(method, params, test, tasks))
        fused_strict.append(
            apply(method, params, {m: t[t["fold"] == k] for m, t in strict.items()}, tasks)
        )
    table = pd.concat(fused, ignore_index=True)
    strict_table = pd.concat(fused_strict, ignore_index=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.csv", table)
    write_predictions(out_dir / "strict_predictions.csv", strict_table)
    final = fit(method, outer, tasks)  # out-of-fold predictions of every speaker
    write_json(
        out_dir / "fusion.json",
        {
            "fusion": name,
            "method": method,
            "members": list(member_folds),
            "tasks": tasks,
            "folds": per_fold,
            "final": final,
        },
    )
    summary = cb.summarize_table(name, table, tasks)
    summary["kind"] = "fusion"
    summary["method"] = method
    summary["members"] = list(member_folds)
    strict_summary = cb.summarize_table(name, strict_table, tasks)
    if not table.equals(strict_table):
        summary["strict"] = {"tasks": strict_summary["tasks"]}
    member_rows = []
    for m, t in outer.items():
        s = cb.summarize_table(m, t, tasks)
        for task in tasks:
            member_rows.append(
                {
                    "member": m,
                    "task": task["name"],
                    "UA": s["tasks"][task["name"]]["ua"]["mean"],
                    "UA std": s["tasks"][task["name"]]["ua"]["std"],
                    "pooled UA": s["tasks"][task["name"]]["pooled"]["ua"],
                }
            )
    for task in tasks:
        entry = summary["tasks"][task["name"]]
        member_rows.append(
            {
                "member": f"fusion ({method})",
                "task": task["name"],
                "UA": entry["ua"]["mean"],
                "UA std": entry["ua"]["std"],
                "pooled UA": entry["pooled"]["ua"],
            }
        )
    summary["member_ua"] = member_rows
    weights = [
        {
            "fold": f["fold"],
            "task": t,
            **{"weight " + m: w for m, w in zip(outer, p["weights"], strict=True)},
        }
        for f in per_fold
        for t, p in f["params"].items()
        if p and "weights" in p
    ]
    sections = [
        (
            "members",
            "Members and fusion",
            report.html_table(
                member_rows,
                "Mean UA over the folds and pooled UA of each member on the same utterances, "
                "and of the fused output.",
            ),
        ),
        ("strict", "Adapted and strict", cb.strict_html(summary)),
    ]
    if weights:
        sections.append(
            (
                "weights",
                "Weights per fold",
                report.html_table(weights, "Chosen on each outer fold's inner-fold predictions."),
            )
        )
    cb.write_summary(out_dir, name, "fusion", summary, tasks, sections, fusion, table, evaluation)
    return summary


def write_fused_bundle(
    fusion_json: str | Path,
    metrics_json: str | Path,
    members: Mapping[str, str | Path],
    out_dir: str | Path,
) -> FusionBundle:
    """The fused bundle: each member's final bundle copied into ``members/<name>/`` and a
    ``bundle.json`` with the final combiner (fitted on every speaker's out-of-fold
    predictions). The recogniser runs it like any bundle."""
    fitted = read_json(fusion_json)
    rates = {}
    for name, folder in members.items():
        rates[name] = read_bundle(folder).sample_rate
    if len(set(rates.values())) != 1:
        raise ValueError(f"the members' bundles use different sample rates: {rates}")
    out_dir = Path(out_dir)
    relative = []
    for name, folder in members.items():
        target = out_dir / "members" / name
        target.mkdir(parents=True, exist_ok=True)
        for file in ("model.keras", "bundle.json"):
            shutil.copy2(Path(folder) / file, target / file)
        relative.append(f"members/{name}")
    fused = FusionBundle(
        fusion=fitted["fusion"],
        method=fitted["method"],
        members=relative,
        tasks=fitted["tasks"],
        params=fitted["final"],
        metrics=read_json(metrics_json),
    )
    write_json(out_dir / "bundle.json", fused.to_json())
    return fused
