"""Leave-one-speaker-out sweep of a config's experiments without Snakemake's per-job start-up.

An experiment runner, not a benchmark. It runs the library's own per-fold functions
(``deepser.training.train.train`` then ``deepser.evaluation.fold.evaluate_fold``) for
every fold of each experiment, ``--workers`` folds at a time in long-lived worker processes (one
thread each), pools the folds with ``deepser.metrics.summarize_experiment`` (as the workflow's
summary does) and prints one JSON line per experiment: mean +- sample std of the task's UA over
folds, pooled UA and confusion, per-fold values and wall time; the lines are also appended to
``OUT/sweep.jsonl``. A fold whose results are already in ``OUT/<experiment>/fold-<k>`` is not run
again (a fold evaluated by an older deepser, whose ``predictions.csv`` is not the current CSV, is
evaluated again).

The databases must exist (``snakemake results/db/<db>.h5 --configfile CONFIG``). The workflow
runs the same functions with the rule's thread count; TensorFlow's numerics depend slightly on
the thread count, so per-fold values can differ a little from a Snakemake run.

    .venv/bin/python tools/emodb_sweep.py config/emodb_zoo.yaml [--only NAME ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml


def is_current(out: Path) -> bool:
    """Whether ``out`` holds a fold's metrics and predictions in the current format."""
    predictions = out / "predictions.csv"
    if not (out / "metrics.json").is_file() or not predictions.is_file():
        return False
    with predictions.open(encoding="utf-8") as fh:
        return fh.readline().startswith("corpus,")


def run_fold(args: tuple) -> str:
    """Train (unless a model is there) and evaluate one fold; returns its folder."""
    db, name, experiment, fold, out_root = args
    from deepser.evaluation.fold import evaluate_fold
    from deepser.training.train import train

    out = Path(out_root) / name / f"fold-{fold}"
    if not is_current(out):
        if not (out / "model.keras").is_file() or not (out / "training.json").is_file():
            train(db, experiment, fold, out, threads=1)
        evaluate_fold(
            db,
            out / "model.keras",
            out / "training.json",
            fold,
            out / "predictions.csv",
            out / "metrics.json",
        )
    return str(out)


def pool_folds(name: str, fold_dirs: list[Path], task: str) -> dict:
    """The experiment's summary of ``task`` over its folds (deepser.metrics)."""
    from deepser.evaluation.predictions import read_predictions
    from deepser.files import read_json
    from deepser.metrics import summarize_experiment
    from deepser.training.record import read_training

    tasks = read_training(fold_dirs[0] / "training.json").tasks
    metrics = [read_json(d / "metrics.json") for d in fold_dirs]
    predictions = [read_predictions(d / "predictions.csv", tasks) for d in fold_dirs]
    return summarize_experiment(name, metrics, predictions, tasks)["tasks"][task]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--only", nargs="*", help="experiments to run (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task", default="emotion")
    parser.add_argument("--out", default="results/sweeps")
    args = parser.parse_args()
    from deepser.database.store import read_info
    from deepser.workflow.config import resolve_experiments

    config = yaml.safe_load(Path(args.config).read_text())
    results = config.get("results", "results")
    experiments = resolve_experiments(config)
    names = args.only or list(experiments)
    for name in names:
        exp = experiments[name]
        db = f"{results}/db/{exp['database']}.h5"
        folds = range(read_info(db).n_folds)
        started = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            jobs = [(db, name, exp, k, args.out) for k in folds]
            fold_dirs = [Path(d) for d in pool.map(run_fold, jobs)]
        pooled = pool_folds(name, fold_dirs, args.task)
        line = {
            "experiment": name,
            "ua_mean": round(pooled["ua"]["mean"], 4),
            "ua_std": round(pooled["ua"]["std"], 4),
            "pooled_ua": round(pooled["pooled"]["ua"], 4),
            "per_fold": [round(u, 3) for u in pooled["ua"]["per_fold"]],
            "pooled_confusion": pooled["pooled"]["confusion"],
            "seconds": round(time.perf_counter() - started),
        }
        print(json.dumps(line), flush=True)
        with open(Path(args.out) / "sweep.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
