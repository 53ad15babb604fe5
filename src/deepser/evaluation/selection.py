"""Model selection without peeking (nested cross-validation): for every outer fold, the
candidate experiment with the best UA on the inner folds (inner speaker folds inside the outer
fold's training speakers) is chosen, and its predictions of that outer fold's test speakers are
the selection's. The outer figures therefore estimate the whole procedure "pick the best of
these configurations on the training speakers", not the best candidate's luck on the test
folds. The figure of the candidate that is best on the test folds is shown beside it, labelled
as chosen on the test folds (optimistic).

The final model is the candidate with the best cross-validated UA over all speakers (the same
procedure applied to all the data)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepser.evaluation import combine as cb
from deepser.evaluation import report
from deepser.evaluation.predictions import write_predictions
from deepser.files import read_json, write_json
from deepser.metrics import unweighted_average_recall


def inner_ua(table: pd.DataFrame, task: Mapping[str, Any]) -> float:
    """Pooled UA of a candidate's inner-fold predictions for ``task``."""
    y = cb.labels(table, task)
    keep = y >= 0
    pred = cb.probabilities(table, task).argmax(-1)
    return unweighted_average_recall(y[keep], pred[keep], len(task["classes"]))


def choose(inner: Mapping[str, float]) -> str:
    """The candidate with the highest inner UA (the first listed on a tie)."""
    return max(inner, key=lambda name: (inner[name], -list(inner).index(name)))


def select(
    name: str,
    selection: Mapping[str, Any],
    candidate_tasks: Mapping[str, Sequence[Mapping[str, Any]]],
    candidate_folds: Mapping[str, Sequence[str | Path]],
    candidate_strict: Mapping[str, Sequence[str | Path]],
    candidate_inner: Mapping[str, Sequence[str | Path]],
    out_dir: str | Path,
    evaluation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Choose per outer fold on inner UA; write ``predictions.csv``, ``strict_predictions.csv``,
    ``selection.json``, ``metrics.json`` and ``report.html``. Returns the summary."""
    tasks = cb.shared_tasks(candidate_tasks, [selection["task"]] if "task" in selection else None)
    task = tasks[0]
    outer = cb.align({c: cb.read_member_folds(candidate_folds[c], tasks) for c in candidate_folds})
    strict = cb.align(
        {c: cb.read_member_folds(candidate_strict[c], tasks) for c in candidate_strict}
    )
    folds = sorted(next(iter(outer.values()))["fold"].unique())
    chosen_tables, chosen_strict, rows = [], [], []
    for k in folds:
        test_speakers = set(next(iter(outer.values())).query("fold == @k")["speaker"])
        scores = {}
        for c in candidate_inner:
            table = cb.read_member_folds([candidate_inner[c][k]], tasks)
            leak = set(table["speaker"]) & test_speakers
            if leak:
                raise ValueError(f"fold {k}: inner predictions of {c!r} hold test speakers {leak}")
            scores[c] = inner_ua(table, task)
        best = choose(scores)
        chosen_tables.append(outer[best][outer[best]["fold"] == k])
        chosen_strict.append(strict[best][strict[best]["fold"] == k])
        outer_ua = inner_ua(outer[best][outer[best]["fold"] == k], task)
        rows.append(
            {
                "fold": int(k),
                **{f"inner UA {c}": round(v, 4) for c, v in scores.items()},
                "chosen": best,
                "outer UA of the chosen": round(outer_ua, 4),
            }
        )
    table = pd.concat(chosen_tables, ignore_index=True)
    strict_table = pd.concat(chosen_strict, ignore_index=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.csv", table)
    write_predictions(out_dir / "strict_predictions.csv", strict_table)
    candidates = {c: cb.summarize_table(c, t, tasks) for c, t in outer.items()}
    cv_ua = {c: s["tasks"][task["name"]]["ua"]["mean"] for c, s in candidates.items()}
    final = choose(cv_ua)
    summary = cb.summarize_table(name, table, tasks)
    summary["kind"] = "selection"
    summary["candidates"] = list(candidate_folds)
    summary["chosen_per_fold"] = [r["chosen"] for r in rows]
    summary["final_candidate"] = final
    summary["chosen_on_test_folds"] = {
        "note": "the best candidate by its mean UA over the outer test folds: optimistic, "
        "chosen by looking at the test folds",
        "candidate": final,
        "ua": cv_ua[final],
    }
    if not table.equals(strict_table):
        summary["strict"] = {"tasks": cb.summarize_table(name, strict_table, tasks)["tasks"]}
    write_json(
        out_dir / "selection.json",
        {"selection": name, "task": task["name"], "folds": rows, "final": final, "cv_ua": cv_ua},
    )
    candidate_rows = [
        {
            "candidate": c,
            "UA (mean over folds)": round(cv_ua[c], 4),
            "chosen in folds": sum(r["chosen"] == c for r in rows),
        }
        for c in candidates
    ]
    sections = [
        (
            "selection",
            "Selection per outer fold",
            report.html_table(
                rows,
                f"Inner UA: {task['name']} UA on inner speaker folds inside each outer fold's "
                "training speakers (no test speaker). The headline is the outer-fold UA of the "
                "candidates chosen this way.",
            ),
        ),
        (
            "candidates",
            "Candidates",
            report.html_table(
                candidate_rows,
                f"Chosen on the test folds (optimistic, for contrast only): {final} with UA "
                f"{cv_ua[final]:.3f}. It is also the final model's candidate (the same "
                "selection on all speakers).",
            ),
        ),
        ("strict", "Adapted and strict", cb.strict_html(summary)),
    ]
    cb.write_summary(
        out_dir, name, "selection", summary, tasks, sections, selection, table, evaluation
    )
    return summary


def copy_final(
    selection_json: str | Path, bundles: Mapping[str, str | Path], out_dir: str | Path
) -> str:
    """Copy the final candidate's bundle (``model.keras`` and ``bundle.json``) to ``out_dir``;
    returns the candidate's name."""
    chosen = read_json(selection_json)["final"]
    source = Path(bundles[chosen]).parent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for file in ("model.keras", "bundle.json"):
        shutil.copy2(source / file, out_dir / file)
    return chosen
