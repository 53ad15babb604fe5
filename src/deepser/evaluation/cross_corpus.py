"""Cross-corpus evaluation: an experiment's fold models on every utterance of another corpus,
whose classes are mapped onto the experiment's by a label mapping from the config.

Utterances whose class the mapping leaves out are dropped and counted per class. A model still
knows classes that no mapped class reaches; predictions are taken over the reached classes
(``T_pred``, the figures reported) and, for reference, over all of the model's classes
(``T_pred_all``, ``ua_all_classes``). Each fold model is scored on its own (mean ± std over the
models) and their averaged probabilities once more (the ensemble, with speaker-bootstrap
intervals over the other corpus's speakers)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.database.normalise import SpeakerNorm
from deepser.database.store import read_info, read_labels, read_rows
from deepser.evaluation import intervals
from deepser.evaluation.predictions import write_predictions
from deepser.files import write_json
from deepser.metrics import classification_metrics
from deepser.models import as_inputs
from deepser.tasks import is_categorical
from deepser.training.record import read_training


def check_mapping(
    labels: Mapping[str, Mapping[str, Any]],
    source_tasks: Sequence[Mapping[str, Any]],
    target_tasks: Sequence[Mapping[str, Any]],
    where: str = "labels",
) -> list[str]:
    """Problems of a label mapping: tasks the experiment lacks or that are not categorical,
    classes of the other corpus that do not exist, classes of the experiment that do not."""
    problems = []
    source = {t["name"]: t for t in source_tasks}
    target = {t["name"]: t for t in target_tasks}
    for task, mapping in labels.items():
        if task not in source or not is_categorical(source[task]):
            known = ", ".join(n for n, t in source.items() if is_categorical(t))
            problems.append(f"{where}.{task}: not a categorical task of the experiment ({known})")
            continue
        if task not in target:
            problems.append(f"{where}.{task}: the other corpus has no column {task!r}")
            continue
        theirs = [str(c) for c in target[task]["classes"]]
        ours = [str(c) for c in source[task]["classes"]]
        unknown = [str(k) for k in mapping if str(k) not in theirs]
        if unknown:
            problems.append(
                f"{where}.{task}: {', '.join(unknown)} not among the other corpus's classes "
                f"({', '.join(theirs)})"
            )
        wrong = sorted({str(v) for v in mapping.values()} - set(ours))
        if wrong:
            problems.append(
                f"{where}.{task}: {', '.join(wrong)} not among the experiment's classes "
                f"({', '.join(ours)})"
            )
    return problems


def evaluate_cross_corpus(
    fold_dirs: Sequence[str | Path],
    target_db: str | Path,
    labels: Mapping[str, Mapping[str, Any]],
    out_json: str | Path,
    out_predictions: str | Path,
    name: str = "",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Score every fold model of an experiment (``fold_dirs``: ``model.keras`` and
    ``training.json``) on every utterance of ``target_db`` with the mapping ``labels``
    (task -> {other corpus's class: experiment's class}); write ``metrics.json`` and the
    predictions (one row per utterance and fold model, ``fold`` naming the model)."""
    from deepser.models.saving import load_model

    info = read_info(target_db)
    trainings = [read_training(Path(d) / "training.json") for d in fold_dirs]
    source_tasks = trainings[0].kept_tasks
    problems = check_mapping(labels, source_tasks, info.tasks)
    if problems:
        raise ValueError("the label mapping does not fit:\n  " + "\n  ".join(problems))
    names = list(labels)
    rows = np.flatnonzero(~info.augmented)
    norm = SpeakerNorm(info) if trainings[0].normalisation == "speaker" else None
    label = read_labels(info.path, rows, info.label_columns(names))
    by_task = {t["name"]: t for t in source_tasks}
    target_classes = {t["name"]: [str(c) for c in t["classes"]] for t in info.tasks}
    base = pd.DataFrame(
        {"corpus": info.corpus[rows], "utt_id": info.utt_id[rows], "speaker": info.speaker[rows]}
    )
    mapped: dict[str, list[str]] = {}
    reached: dict[str, list[int]] = {}
    dropped: dict[str, dict[str, int]] = {}
    for j, task in enumerate(names):
        mapping = {str(k): str(v) for k, v in labels[task].items()}
        theirs = [target_classes[task][int(i)] for i in label[:, j]]
        mapped[task] = [mapping.get(c, "") for c in theirs]
        base[f"{task}_target"] = theirs
        dropped[task] = dict(sorted(Counter(c for c in theirs if c not in mapping).items()))
        classes = [str(c) for c in by_task[task]["classes"]]
        reached[task] = sorted({classes.index(v) for v in mapping.values()})
    tables, per_model = [], []
    proba_sum = {t: 0.0 for t in names}
    for fold_dir, trained in zip(map(Path, fold_dirs), trainings, strict=True):
        out = _predict(load_model(fold_dir / "model.keras"), info, rows, norm, source_tasks)
        table = base.assign(fold=int(trained.test_fold))
        scores = {}
        for task in names:
            classes = [str(c) for c in by_task[task]["classes"]]
            proba = np.asarray(out[task], np.float64)
            proba_sum[task] = proba_sum[task] + proba
            _add_task(table, task, classes, mapped[task], proba, reached[task])
            scores[task] = _scores(table, task, classes)
        tables.append(table)
        per_model.append(scores)
    ensemble = base.assign(fold=-1)
    summary: dict[str, Any] = {"name": name, "database": str(target_db), "tasks": {}}
    for task in names:
        classes = [str(c) for c in by_task[task]["classes"]]
        proba = proba_sum[task] / len(fold_dirs)
        _add_task(ensemble, task, classes, mapped[task], proba, reached[task])
        kept = ensemble[ensemble[f"{task}_true"] != ""]
        entry: dict[str, Any] = {
            "classes": classes,
            "reached_classes": [classes[i] for i in reached[task]],
            "mapping": {str(k): str(v) for k, v in labels[task].items()},
            "n": int(len(kept)),
            "n_total": int(len(ensemble)),
            "dropped": dropped[task],
            "n_dropped": int(sum(dropped[task].values())),
            "ensemble": _scores(ensemble, task, classes),
        }
        for key in ("ua", "wa", "macro_f1", "ua_all_classes"):
            values = np.array([m[task][key] for m in per_model if task in m], np.float64)
            entry[key] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "per_model": [float(v) for v in values],
            }
        if n_boot and len(kept):
            entry["intervals"] = intervals.task_intervals(
                kept, {"name": task, "classes": classes}, n_boot=n_boot, level=level, seed=seed
            )
        summary["tasks"][task] = entry
    summary["n_models"] = len(fold_dirs)
    summary["speakers"] = int(base["speaker"].nunique())
    write_json(out_json, summary)
    write_predictions(out_predictions, pd.concat([*tables, ensemble], ignore_index=True))
    return summary


def _predict(
    model, info, rows: np.ndarray, norm, tasks, chunk: int = 2048
) -> dict[str, np.ndarray]:
    """The model's outputs for ``rows``, read and predicted ``chunk`` rows at a time (memory
    stays flat for a large corpus)."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        arrays = read_rows(info.path, part, [], norm)
        out = model.predict(as_inputs(arrays.feat, arrays.n_valid), batch_size=64, verbose=0)
        if not isinstance(out, dict):
            out = {tasks[0]["name"]: out}
        for name, value in out.items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def _add_task(
    table: pd.DataFrame,
    task: str,
    classes: Sequence[str],
    true: Sequence[str],
    proba: np.ndarray,
    reached: Sequence[int],
) -> None:
    table[f"{task}_true"] = list(true)
    restricted = np.full_like(proba, -np.inf)
    restricted[:, list(reached)] = proba[:, list(reached)]
    table[f"{task}_pred"] = [classes[i] for i in restricted.argmax(-1)]
    table[f"{task}_pred_all"] = [classes[i] for i in proba.argmax(-1)]
    for k, cls in enumerate(classes):
        table[f"{task}_p_{cls}"] = np.round(proba[:, k], 6)


def _scores(table: pd.DataFrame, task: str, classes: Sequence[str]) -> dict[str, Any]:
    kept = table[table[f"{task}_true"] != ""]
    if not len(kept):
        raise ValueError(f"task {task!r}: the mapping leaves no utterance of the other corpus")
    m = classification_metrics(kept[f"{task}_true"], kept[f"{task}_pred"], classes)
    m["ua_all_classes"] = classification_metrics(
        kept[f"{task}_true"], kept[f"{task}_pred_all"], classes
    )["ua"]
    return m


def cross_corpus_rows(name: str, found: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Report rows of one cross-corpus evaluation."""
    rows = []
    for task, e in found["tasks"].items():
        ci = e.get("intervals", {}).get("ua")
        dropped = ", ".join(f"{c} {n}" for c, n in e["dropped"].items()) or "none"
        rows.append(
            {
                "evaluation": name,
                "task": task,
                "UA (fold models)": f"{e['ua']['mean']:.3f} ± {e['ua']['std']:.3f}",
                "UA (ensemble)": f"{e['ensemble']['ua']:.3f}"
                + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else ""),
                "UA over all classes": f"{e['ensemble']['ua_all_classes']:.3f}",
                "n": e["n"],
                "dropped (unmapped)": f"{e['n_dropped']}: {dropped}",
                "classes reached": " ".join(e["reached_classes"]),
            }
        )
    return rows
