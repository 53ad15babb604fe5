"""Shared steps of results derived from experiments' predictions (fusion, selection): reading
the members' per-fold predictions, aligning them by utterance, and summarising a predictions
table into ``metrics.json`` with a report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.evaluation import groups, report, trust
from deepser.evaluation.predictions import read_predictions
from deepser.files import write_json
from deepser.metrics import fold_metrics, summarize_experiment
from deepser.tasks import is_categorical
from deepser.training.record import read_training

KEY = ["corpus", "utt_id"]


def shared_tasks(
    members: Mapping[str, Sequence[Mapping[str, Any]]], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The categorical tasks every member predicts with the same classes (in the first member's
    order), or those named; raises ValueError when a named task is not shared or none is."""
    first_name, first = next(iter(members.items()))
    shared = []
    for task in first:
        if not is_categorical(task):
            continue
        same = all(
            [list(t["classes"]) for t in m if t["name"] == task["name"]] == [task["classes"]]
            for m in members.values()
        )
        if same:
            shared.append({"name": task["name"], "type": "categorical", "classes": task["classes"]})
    if names:
        missing = [n for n in names if n not in {t["name"] for t in shared}]
        if missing:
            raise ValueError(
                f"task(s) {missing} are not categorical tasks with the same classes in every "
                f"member ({', '.join(members)})"
            )
        shared = [t for t in shared if t["name"] in names]
    if not shared:
        raise ValueError(
            f"the members {', '.join(members)} share no categorical task with the same classes "
            f"(first member {first_name!r} has {[t['name'] for t in first]})"
        )
    return shared


def read_member_folds(
    paths: Sequence[str | Path], tasks: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """One member's predictions of every fold, concatenated."""
    return pd.concat([read_predictions(p, tasks) for p in paths], ignore_index=True)


def align(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The members' tables in one row order (by corpus, utt_id). Raises ValueError naming the
    first difference when they do not hold the same utterances in the same folds (members of a
    fusion must be evaluated on the same database folds)."""
    names = list(tables)
    ref = tables[names[0]].sort_values(KEY, kind="stable").reset_index(drop=True)
    out = {names[0]: ref}
    for name in names[1:]:
        other = tables[name].sort_values(KEY, kind="stable").reset_index(drop=True)
        if len(other) != len(ref) or not (other[KEY] == ref[KEY]).all(axis=None):
            a = set(zip(ref["corpus"], ref["utt_id"], strict=True))
            b = set(zip(other["corpus"], other["utt_id"], strict=True))
            diff = sorted(a ^ b)[:3]
            raise ValueError(
                f"{name!r} and {names[0]!r} do not predict the same utterances "
                f"({len(other)} vs {len(ref)} rows; e.g. {diff}): members must use databases "
                "of the same corpora with the same folds"
            )
        if not (other["fold"].to_numpy() == ref["fold"].to_numpy()).all():
            raise ValueError(
                f"{name!r} and {names[0]!r} put utterances in different folds: members must "
                "use databases with the same fold_by and n_folds"
            )
        out[name] = other
    return out


def probabilities(table: pd.DataFrame, task: Mapping[str, Any]) -> np.ndarray:
    """(rows, classes) probabilities of a categorical task."""
    return table[[f"{task['name']}_p_{c}" for c in task["classes"]]].to_numpy(np.float64)


def labels(table: pd.DataFrame, task: Mapping[str, Any]) -> np.ndarray:
    """Class index of each row (-1: not labelled)."""
    index = {str(c): k for k, c in enumerate(task["classes"])}
    return np.array([index.get(str(v), -1) for v in table[f"{task['name']}_true"]])


def predictions_from(
    base: pd.DataFrame, probas: Mapping[str, np.ndarray], tasks: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """A predictions table (identifiers and true labels of ``base``) with new probabilities."""
    table = base[["corpus", "utt_id", "speaker", "fold"]].copy()
    for task in tasks:
        name, classes, p = task["name"], task["classes"], probas[task["name"]]
        table[f"{name}_true"] = base[f"{name}_true"].to_numpy()
        table[f"{name}_pred"] = [classes[int(i)] for i in p.argmax(-1)]
        for k, cls in enumerate(classes):
            table[f"{name}_p_{cls}"] = np.round(p[:, k], 6)
    return table


def summarize_table(
    name: str, table: pd.DataFrame, tasks: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``metrics.json`` of a predictions table holding every fold (as an experiment's)."""
    folds = [table[table["fold"] == k] for k in sorted(table["fold"].unique())]
    return summarize_experiment(name, [fold_metrics(f, tasks) for f in folds], folds, tasks)


def write_summary(
    out_dir: str | Path,
    name: str,
    kind: str,
    summary: dict[str, Any],
    tasks: Sequence[Mapping[str, Any]],
    sections: Sequence[tuple[str, str, str]],
    config: Mapping[str, Any],
    table: pd.DataFrame | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> None:
    """Write ``metrics.json``, the confusion plots and ``report.html`` of a derived result
    (``table``: its predictions, for the speakers of each fold, which also give the
    speaker-bootstrap intervals and the per-speaker table; ``evaluation``: their settings)."""
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    sections = list(sections)
    if table is not None:
        settings = trust.settings_of(evaluation)
        found = trust.task_intervals(table, tasks, settings)
        for task, entry in found.items():
            summary["tasks"][task]["intervals"] = entry
        if found:
            html_ = trust.intervals_html(summary, int(settings["bootstrap"]))
            sections.append(("intervals", "Confidence intervals", html_))
        speakers = groups.group_report(table, tasks, [])
        summary["groups"] = speakers
        images = trust.group_plots(speakers, tasks, plots)
        sections.append(("groups", "Speakers", trust.groups_html(speakers, images)))
    write_json(out_dir / "metrics.json", summary)
    images = {}
    for task in tasks:
        path = plots / f"confusion-{task['name']}.png"
        report.plot_confusion(
            summary["tasks"][task["name"]]["pooled"]["confusion"],
            task["classes"],
            path,
            title=f"{name} ({kind}) {task['name']}: pooled over {summary['n_folds']} folds",
        )
        images[f"Pooled confusion matrix, {task['name']} (rows: true class)"] = path
    report.write_html_report(
        out_dir / "report.html",
        title=f"deepser {kind} '{name}'",
        summary=summary,
        images=images,
        config={kind: dict(config)},
        sections=sections,
        folds_speakers=None
        if table is None
        else [
            {"fold": int(k), "test": sorted(set(part["speaker"]))}
            for k, part in table.groupby("fold", sort=True)
        ],
    )


def strict_html(summary: Mapping[str, Any]) -> str:
    """The adapted-vs-strict table of a summary with a ``strict`` entry."""
    if "strict" not in summary:
        return report.html_table(
            [], "Training-fold statistics only: the headline figures are already strict."
        )
    rows = []
    for task, entry in summary["tasks"].items():
        strict = summary["strict"]["tasks"].get(task, {})
        for key in ("ua", "wa", "macro_f1"):
            if key in entry and key in strict:
                rows.append(
                    {
                        "task": task,
                        "metric": key.upper(),
                        "adapted (test speaker's own statistics)": f"{entry[key]['mean']:.3f} "
                        f"± {entry[key]['std']:.3f}",
                        "strict (training-fold statistics only)": f"{strict[key]['mean']:.3f} "
                        f"± {strict[key]['std']:.3f}",
                    }
                )
    return report.html_table(
        rows,
        "Adapted: every speaker standardised with their own label-free statistics, the test "
        "speaker's included (a recogniser adapting to its user). Strict: the same model with the "
        "training folds' statistics only (a new speaker before any adaptation).",
    )


def by_member(members: Sequence[str], paths: Sequence[str | Path]) -> dict[str, list[str]]:
    """A flat, member-by-member list of per-fold files split back per member (every member
    has the same number of folds)."""
    paths = [str(p) for p in paths]
    if not members or len(paths) % len(members):
        raise ValueError(f"{len(paths)} files cannot be split over {len(members)} members")
    n = len(paths) // len(members)
    return {m: paths[i * n : (i + 1) * n] for i, m in enumerate(members)}


def member_tasks(trainings: Mapping[str, Sequence[str | Path]]) -> dict[str, list[dict]]:
    """Each member's tasks (without auxiliary ones), from its first fold's ``training.json``."""
    return {m: read_training(paths[0]).kept_tasks for m, paths in trainings.items()}
