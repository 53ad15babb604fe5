"""Experiment-level steps: the cross-validated summary with its report, and the final bundle."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepser.data import read_info
from deepser.files import read_json, write_json
from deepser.metrics import summarize_experiment

log = logging.getLogger(__name__)


def summarize(
    experiment: str,
    config: Mapping[str, Any],
    db_path: str | Path,
    fold_dirs: Sequence[str | Path],
    rejected: str | Path | None,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Pool the folds into ``metrics.json`` (contract 'experiment metrics'), plots and the
    self-contained ``report.html``."""
    from deepser import report

    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    fold_dirs = [Path(d) for d in fold_dirs]
    predictions = [
        pd.read_csv(d / "predictions.csv", sep="\t", dtype={"utt_id": str, "speaker": str})
        for d in fold_dirs
    ]
    fold_metrics = [read_json(d / "metrics.json") for d in fold_dirs]
    trainings = [read_json(d / "training.json") for d in fold_dirs]
    tasks = trainings[0]["tasks"]
    summary = summarize_experiment(experiment, fold_metrics, predictions, tasks)
    summary["normalisation"] = trainings[0].get("normalisation", "global")
    write_json(out_dir / "metrics.json", summary)

    images: dict[str, Path] = {}
    for task in tasks:
        entry = summary["tasks"][task["name"]]
        if task["type"] == "categorical":
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
        labels=[f"fold {t['test_fold']}" for t in trainings],
    )
    info = read_info(db_path)
    counts = {}
    with_labels = pd.concat(predictions, ignore_index=True)
    for task in tasks:
        if task["type"] == "categorical":
            values = with_labels[f"{task['name']}_true"].astype(str).value_counts()
            counts[task["name"]] = {c: int(values.get(c, 0)) for c in task["classes"]}
    if counts:
        images["Class distribution (all test folds)"] = report.plot_class_distribution(
            counts, plots / "class_distribution.png"
        )

    fold_table = []
    for fm, tr in zip(fold_metrics, trainings, strict=True):
        row = {
            "fold": tr["test_fold"],
            "test speakers": " ".join(tr["speakers"]["test"]),
            "validation speakers": " ".join(tr["speakers"]["validation"]),
            "n test": fm["n"],
            "best epoch": tr["best_epoch"],
            "train s": tr["train_seconds"],
        }
        for name, m in fm["tasks"].items():
            for key in ("ua", "wa", "macro_f1", "ccc"):
                if key in m:
                    row[f"{name} {key.upper()}"] = m[key]
        fold_table.append(row)
    rejected_table = None
    if rejected is not None and Path(rejected).is_file():
        rejected_table = pd.read_csv(rejected, sep="\t", dtype=str, keep_default_na=False)
    report.write_html_report(
        out_dir / "report.html",
        title=f"deepser experiment '{experiment}'",
        summary=summary,
        fold_table=fold_table,
        images=images,
        folds_speakers=[{"fold": tr["test_fold"], **tr["speakers"]} for tr in trainings],
        rejected=rejected_table,
        config={
            "experiment": dict(config),
            "database": info.attrs.get("window_spec"),
            "feature_spec": info.attrs.get("feature_spec"),
            "gain": info.attrs.get("gain"),
            "database_folds": info.attrs.get("folds"),
        },
    )
    log.info("summary written to %s", out_dir)
    return summary


def final_epochs(config: Mapping[str, Any], trainings: Sequence[Mapping[str, Any]]) -> int:
    """Epochs for the final model: the config's number, or the median of the folds' best epochs."""
    chosen = config.get("final_epochs", "auto")
    if chosen != "auto":
        return int(chosen)
    return max(1, int(round(statistics.median(t["best_epoch"] for t in trainings))))


def train_final(
    experiment: str,
    config: Mapping[str, Any],
    db_path: str | Path,
    fold_trainings: Sequence[str | Path],
    metrics_path: str | Path,
    out_dir: str | Path,
    threads: int = 1,
    init_model: str | Path | None = None,
) -> dict[str, Any]:
    """Train on all speakers for the chosen number of epochs and write the model bundle
    (without the experiment's auxiliary tasks)."""
    from deepser.bundle import bundle_json
    from deepser.training import train

    trainings = [read_json(p) for p in fold_trainings]
    epochs = final_epochs(config, trainings)
    out_dir = Path(out_dir)
    summary = train(
        db_path, config, None, out_dir, threads=threads, epochs=epochs, init_model=init_model
    )
    tasks = [t for t in summary["tasks"] if t["name"] not in summary["auxiliary"]]
    info = read_info(db_path)
    data = {
        "corpora": info.attrs["corpora"],
        "n_utterances": int((~info.augmented).sum()),
        "speakers": info.attrs["speakers"],
        "database": str(db_path),
        "n_augmented": int(info.augmented.sum()),
        "class_counts": _class_counts(info, tasks),
    }
    training = {
        "epochs": epochs,
        "epochs_rule": config.get("final_epochs", "auto"),
        "fold_best_epochs": [t["best_epoch"] for t in trainings],
        "architecture": summary["architecture"],
        "seed": summary["seed"],
        "model": dict(config.get("model", {})),
        "hyper_parameters": dict(config.get("training", {})),
        "auxiliary_tasks": summary["auxiliary"],
        "initialised_from": summary["initialised_from"],
    }
    bundle = bundle_json(info.attrs, tasks, experiment, read_json(metrics_path), training, data)
    bundle["normalisation"] = normalisation_spec(summary["normalisation"])
    write_json(out_dir / "bundle.json", bundle)
    return bundle


def normalisation_spec(method: str) -> dict[str, Any]:
    """How the recogniser must normalise features for this model (bundle key)."""
    if method == "speaker":
        return {
            "method": "speaker",
            "live": "running per-dimension mean and standard deviation of the current "
            "speaker's speech frames, updated with every segment",
        }
    return {"method": "global", "live": "statistics inside the model"}


def _class_counts(info, tasks: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    import h5py

    from deepser.data import label_columns

    with h5py.File(info.path, "r") as h5:
        labels = h5["label"][()][~info.augmented]
    counts = {}
    for task, col in zip(tasks, label_columns(info, [t["name"] for t in tasks]), strict=True):
        if task["type"] == "categorical":
            values = labels[:, col].astype(int)
            counts[task["name"]] = {
                c: int((values == i).sum()) for i, c in enumerate(task["classes"])
            }
    return counts


def compare(metrics: Mapping[str, str | Path], out_html: str | Path, out_png: str | Path) -> list:
    """Side-by-side table and plot of several experiments' cross-validated metrics."""
    from deepser import report

    rows = []
    for name, path in metrics.items():
        summary = read_json(path)
        for task, entry in summary["tasks"].items():
            key = "ua" if "ua" in entry else "ccc"
            rows.append(
                {
                    "experiment": name,
                    "task": task,
                    "metric": key.upper(),
                    "mean": entry[key]["mean"],
                    "std": entry[key]["std"],
                    "pooled": entry["pooled"][key],
                    "n_folds": summary["n_folds"],
                }
            )
    report.plot_experiment_comparison(rows, out_png)
    report.write_comparison_report(out_html, rows, out_png)
    return rows
