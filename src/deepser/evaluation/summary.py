"""Experiment-level results: the cross-validated summary with its plots and report, and the
comparison of several experiments."""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepser.database.store import read_database_attrs
from deepser.evaluation import groups, intervals, report, trust
from deepser.evaluation.combine import strict_html
from deepser.evaluation.cross_corpus import cross_corpus_rows
from deepser.evaluation.predictions import read_predictions, write_predictions
from deepser.evaluation.robustness import robustness_rows
from deepser.files import read_json, read_tsv, write_json
from deepser.metrics import summarize_experiment
from deepser.tasks import is_categorical
from deepser.training.record import read_training

log = logging.getLogger(__name__)


def summarize(
    experiment: str,
    config: Mapping[str, Any],
    db_path: str | Path,
    fold_dirs: Sequence[str | Path],
    rejected: str | Path | None,
    out_dir: str | Path,
    baseline: str | Path | None = None,
    evaluation: Mapping[str, Any] | None = None,
    metas: Mapping[str, str | Path] | None = None,
    robustness: str | Path | None = None,
    cross_corpus: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Pool the folds into ``metrics.json``, ``predictions.csv`` (every fold's), plots and the
    self-contained ``report.html``.

    ``metrics.json``: ``{"experiment", "n_folds", "normalisation", "tasks": {TASK: {"classes",
    "ua"|"wa"|"macro_f1": {"mean", "std", "per_fold"}, "pooled": {"ua", "wa", "macro_f1",
    "confusion"}}}}``, fractions in [0, 1]; continuous tasks carry ``ccc`` instead. A
    speaker-normalised experiment also gets ``"strict": {"tasks": ...}`` (its folds'
    ``strict_predictions.csv``: the same models with training-fold statistics only), and with
    ``baseline`` (the database's classic baseline ``metrics.json``) ``"baseline"``: the
    baseline's figures of the same tasks.

    Trust (``evaluation``: the config's settings): per task ``intervals`` (speaker bootstrap of
    the pooled metrics); ``groups`` (UA per speaker and per value of the meta columns named,
    read from ``metas``: corpus -> validated meta); ``calibration`` (temperatures fitted on each
    fold's ``validation_predictions.csv``, ECE, reliability, coverage); ``robustness`` (the
    experiment's ``robustness.json``) and ``cross_corpus`` (name -> ``metrics.json``)."""
    settings = trust.settings_of(evaluation)
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    fold_dirs = [Path(d) for d in fold_dirs]
    trainings = [read_training(d / "training.json") for d in fold_dirs]
    tasks = trainings[0].tasks
    predictions = [read_predictions(d / "predictions.csv", tasks) for d in fold_dirs]
    fold_metrics = [read_json(d / "metrics.json") for d in fold_dirs]
    summary = summarize_experiment(experiment, fold_metrics, predictions, tasks)
    summary["normalisation"] = trainings[0].normalisation
    summary["database"] = Path(db_path).stem
    summary["fold_by"] = read_database_attrs(db_path).get("fold_by")
    pooled = pd.concat(predictions, ignore_index=True)
    write_predictions(out_dir / "predictions.csv", pooled)
    sections = []
    warnings = coverage_warnings(predictions, tasks)
    if warnings:
        summary["warnings"] = warnings
        for warning in warnings:
            log.warning("%s", warning)
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        sections.append(("warnings", "Data warnings", f"<ul>{items}</ul>"))
    if summary["normalisation"] == "speaker":
        strict = [read_json(d / "metrics.json").get("strict") for d in fold_dirs]
        if all(strict):
            tables = [read_predictions(d / "strict_predictions.csv", tasks) for d in fold_dirs]
            strict_summary = summarize_experiment(experiment, strict, tables, tasks)
            summary["strict"] = {
                "normalisation": "training-fold statistics only (cold start)",
                "tasks": strict_summary["tasks"],
            }
        sections.append(("strict", "Adapted and strict", strict_html(summary)))
    if baseline is not None:
        base = read_json(baseline)
        summary["baseline"] = {
            "classifier": base.get("classifier"),
            "tasks": {t: m for t, m in base["tasks"].items() if t in summary["tasks"]},
        }
        sections.append(("baseline", "Classic baseline", baseline_html(summary)))
    sections += trust_sections(
        summary, pooled, predictions, fold_dirs, tasks, settings, metas, plots
    )
    if robustness is not None:
        found = read_json(robustness)
        summary["robustness"] = found
        sections.append(("robustness", "Degraded audio", robustness_html(found)))
    if cross_corpus:
        summary["cross_corpus"] = {n: read_json(p) for n, p in cross_corpus.items()}
        rows = [r for n, f in summary["cross_corpus"].items() for r in cross_corpus_rows(n, f)]
        sections.append(
            (
                "cross-corpus",
                "Other corpora",
                report.html_table(
                    rows,
                    "Each fold model on every utterance of another corpus, its classes mapped "
                    "onto this experiment's (utterances of unmapped classes dropped and "
                    "counted); predictions over the classes the mapping reaches. Ensemble: the "
                    "fold models' averaged probabilities, with its speaker-bootstrap interval.",
                ),
            )
        )
    write_json(out_dir / "metrics.json", summary)

    images: dict[str, Path] = {}
    for task in tasks:
        entry = summary["tasks"][task["name"]]
        if is_categorical(task):
            path = plots / f"confusion-{task['name']}.png"
            report.plot_confusion(
                entry["pooled"]["confusion"],
                task["classes"],
                path,
                title=f"{task['name']}: pooled over {len(fold_dirs)} folds",
            )
            images[f"Pooled confusion matrix, {task['name']} (rows: true class)"] = path
    histories = [pd.read_csv(d / "history.csv") for d in fold_dirs]
    images["Learning curves per fold"] = report.plot_learning_curves(
        histories,
        plots / "learning_curves.png",
        labels=[f"fold {t.test_fold}" for t in trainings],
        best_epochs=[t.best_epoch if t.n_rows["validation"] else None for t in trainings],
    )
    attrs = read_database_attrs(db_path)
    counts = {}
    with_labels = pd.concat(predictions, ignore_index=True)
    for task in tasks:
        if is_categorical(task):
            values = with_labels[f"{task['name']}_true"].value_counts()
            counts[task["name"]] = {c: int(values.get(c, 0)) for c in task["classes"]}
    if counts:
        images["Class distribution (all test folds)"] = report.plot_class_distribution(
            counts, plots / "class_distribution.png"
        )

    fold_table = []
    for fm, tr in zip(fold_metrics, trainings, strict=True):
        row = {
            "fold": tr.test_fold,
            "test speakers": " ".join(tr.speakers["test"]),
            "validation speakers": " ".join(tr.speakers["validation"]),
            "n test": fm["n"],
            "best epoch": tr.best_epoch,
            "train s": tr.train_seconds,
        }
        for name, m in fm["tasks"].items():
            for key in ("ua", "wa", "macro_f1", "ccc"):
                if key in m:
                    row[f"{name} {key.upper()}"] = m[key]
        fold_table.append(row)
    rejected_table = None
    if rejected is not None and Path(rejected).is_file():
        rejected_table = read_tsv(rejected)
    report.write_html_report(
        out_dir / "report.html",
        title=f"deepser experiment '{experiment}'",
        summary=summary,
        fold_table=fold_table,
        images=images,
        folds_speakers=[{"fold": tr.test_fold, **tr.speakers} for tr in trainings],
        rejected=rejected_table,
        sections=sections,
        config={
            "experiment": dict(config),
            "database": attrs.get("window_spec"),
            "feature_spec": attrs.get("feature_spec"),
            "gain": attrs.get("gain"),
            "database_folds": attrs.get("folds"),
        },
    )
    log.info("summary written to %s", out_dir)
    return summary


def trust_sections(
    summary: dict[str, Any],
    pooled: pd.DataFrame,
    predictions: Sequence[pd.DataFrame],
    fold_dirs: Sequence[Path],
    tasks: Sequence[Any],
    settings: Mapping[str, Any],
    metas: Mapping[str, str | Path] | None,
    plots: Path,
) -> list[tuple[str, str, str]]:
    """Intervals, groups and calibration into ``summary``, with their report sections."""
    sections = []
    found = trust.task_intervals(pooled, tasks, settings)
    for task, entry in found.items():
        summary["tasks"][task]["intervals"] = entry
    if found:
        html_ = trust.intervals_html(summary, int(settings["bootstrap"]))
        sections.append(("intervals", "Confidence intervals", html_))
    table = pooled
    if metas:
        tables = {c: read_tsv(p) for c, p in metas.items()}
        table = groups.merge_meta_columns(pooled, tables, settings["groups"])
    found_groups = groups.group_report(table, tasks, settings["groups"])
    trust.add_gap_intervals(found_groups, table, tasks, settings)
    summary["groups"] = found_groups
    images = trust.group_plots(found_groups, tasks, plots)
    sections.append(("groups", "Speakers and groups", trust.groups_html(found_groups, images)))
    validations = [read_predictions(d / "validation_predictions.csv", tasks) for d in fold_dirs]
    found_cal = trust.calibration_report(predictions, validations, tasks, settings)
    if found_cal:
        images = trust.calibration_plots(found_cal, plots)
        summary["calibration"] = trust.without_arrays(found_cal)
        sections.append(
            ("calibration", "Calibration and abstention", trust.calibration_html(found_cal, images))
        )
    return sections


def robustness_html(found: Mapping[str, Any]) -> str:
    """The degraded-audio table."""
    return report.html_table(
        robustness_rows(found),
        "Each fold model on its own test speakers' utterances after the transformation "
        "(features extracted again, the same gain and windows); clean: the same utterances "
        "unchanged; drop: clean minus degraded.",
    )


def coverage_warnings(predictions: Sequence[pd.DataFrame], tasks: Sequence[Any]) -> list[str]:
    """Classes a fold tests that its model never saw in training: each fold's test classes
    (``predictions``, one table per fold) that no other fold holds, naming the speakers."""
    warnings = []
    for task in tasks:
        if not is_categorical(task):
            continue
        column = f"{task['name']}_true"
        per_fold = [set(p[column].dropna().astype(str)) for p in predictions]
        for k, table in enumerate(predictions):
            others = set().union(*(c for j, c in enumerate(per_fold) if j != k))
            for cls in sorted(per_fold[k] - others):
                rows = table[table[column].astype(str) == cls]
                speakers = ", ".join(sorted(set(rows["speaker"].astype(str))))
                warnings.append(
                    f"class {cls!r} of task {task['name']} occurs in fold {k} only (speaker "
                    f"{speakers}): that fold's model never saw it in training, so its recall "
                    "there is 0 by construction"
                )
    return warnings


def baseline_html(summary: Mapping[str, Any]) -> str:
    """The network-vs-baseline table of a summary with a ``baseline`` entry."""
    rows = []
    classifier = summary["baseline"].get("classifier") or {}
    for task, base in summary["baseline"]["tasks"].items():
        net = summary["tasks"].get(task, {})
        for key in ("ua", "wa", "macro_f1"):
            if key in base and key in net:
                rows.append(
                    {
                        "task": task,
                        "metric": key.upper(),
                        "this experiment": f"{net[key]['mean']:.3f} ± {net[key]['std']:.3f}",
                        "baseline": f"{base[key]['mean']:.3f} ± {base[key]['std']:.3f}",
                        "difference": f"{net[key]['mean'] - base[key]['mean']:+.3f}",
                    }
                )
    return report.html_table(
        rows,
        f"Baseline: {classifier.get('classifier', 'linear classifier')} (C "
        f"{classifier.get('c', '?')}) on utterance functionals of the same utterances and folds, "
        "standardised with each training fold's statistics (strict).",
    )


def compare(
    metrics: Mapping[str, str | Path],
    out_html: str | Path,
    out_png: str | Path,
    predictions: Mapping[str, str | Path] | None = None,
    databases: Mapping[str, str] | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> list:
    """Side-by-side table and plot of several experiments' (fusions', selections')
    cross-validated metrics, with their strict figures and their database's classic baseline;
    with ``predictions`` (name -> pooled ``predictions.csv``) and ``databases`` (name ->
    database), the paired difference of every pair on the same database (speaker bootstrap
    interval, speaker-level permutation p-value)."""
    rows = []
    for name, path in metrics.items():
        summary = read_json(path)
        for task, entry in summary["tasks"].items():
            key = "ua" if "ua" in entry else "ccc"
            strict = summary.get("strict", {}).get("tasks", {}).get(task, {}).get(key)
            base = summary.get("baseline", {}).get("tasks", {}).get(task, {}).get(key)
            rows.append(
                {
                    "experiment": name,
                    "kind": summary.get("kind", "experiment"),
                    "task": task,
                    "metric": key.upper(),
                    "mean": entry[key]["mean"],
                    "std": entry[key]["std"],
                    "pooled": entry["pooled"][key],
                    "strict mean": strict["mean"] if strict else entry[key]["mean"],
                    "baseline mean": base["mean"] if base else None,
                    "n_folds": summary["n_folds"],
                }
            )
    sections = []
    settings = trust.settings_of(evaluation)
    if predictions and databases and settings["bootstrap"]:
        pairs = paired_differences(metrics, predictions, databases, settings)
        sections.append(("paired", "Paired differences", paired_html(pairs)))
    report.plot_experiment_comparison(rows, out_png)
    report.write_comparison_report(out_html, rows, out_png, sections=sections)
    return rows


def paired_differences(
    metrics: Mapping[str, str | Path],
    predictions: Mapping[str, str | Path],
    databases: Mapping[str, str],
    settings: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Every pair of results on the same database: per shared task, the difference of the
    pooled UA (CCC) on the utterances both predicted, its interval and p-value."""
    tasks: dict[str, dict[str, dict[str, Any]]] = {}
    for name, path in metrics.items():
        tasks[name] = {}
        for task, entry in read_json(path)["tasks"].items():
            if "classes" in entry:
                tasks[name][task] = {"name": task, "classes": entry["classes"]}
            else:
                tasks[name][task] = {"name": task, "type": "continuous"}
    tables = {n: read_predictions(p, list(tasks[n].values())) for n, p in predictions.items()}
    names = [n for n in metrics if n in tables]
    found = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if databases.get(a) != databases.get(b):
                continue
            for task, spec in tasks[a].items():
                if tasks[b].get(task) != spec:
                    continue
                result = intervals.paired_task_difference(
                    tables[a],
                    tables[b],
                    spec,
                    n_boot=int(settings["bootstrap"]),
                    level=float(settings["level"]),
                    seed=int(settings["seed"]),
                )
                if result is not None:
                    found.append({"a": a, "b": b, "task": task, **result})
    return found


def paired_html(pairs: Sequence[Mapping[str, Any]]) -> str:
    """The paired-differences table."""
    rows = [
        {
            "A": p["a"],
            "B": p["b"],
            "task": p["task"],
            "metric": p["metric"].upper(),
            "A − B": f"{p['difference']:+.3f}",
            f"{p.get('level', 0.95):.0%} interval": f"[{p['low']:+.3f}, {p['high']:+.3f}]",
            "p-value": f"{p['p_value']:.3f}",
            "utterances": p.get("n_utterances", ""),
            "speakers": p["n_groups"],
        }
        for p in pairs
    ]
    return report.html_table(
        rows,
        "Pairs of results on the same database, scored on the utterances both predicted. "
        "Interval: paired bootstrap of whole speakers (the same speakers drawn for A and B). "
        "p-value: speaker-level paired permutation test (each speaker's predictions of A and B "
        "swapped at random); a small p-value says the difference is unlikely to be chance "
        "given these speakers."
        if rows
        else "No two results share a database.",
    )
