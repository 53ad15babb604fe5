"""Leave-one-speaker-out sweep of a config's experiments without Snakemake's per-job start-up.

Runs the library's own per-fold functions (``deepser.training.train`` then
``deepser.evaluation.evaluate_fold``) for every fold of each experiment, ``--workers`` folds at
a time in long-lived worker processes (one thread each), and prints one line per experiment:
mean +- sample std of the emotion UA over folds, pooled UA, per-fold values and wall time.
The databases must exist (``snakemake results/db/<db>.h5 --configfile CONFIG``). The workflow
runs the same functions with the rule's thread count; TensorFlow's numerics depend slightly on
the thread count, so per-fold values can differ a little from a Snakemake run.

    .venv/bin/python benchmarks/emodb_sweep.py config/emodb_zoo.yaml [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml


def run_fold(args: tuple) -> dict:
    db, name, experiment, fold, out_root, task = args
    from deepser.evaluation import evaluate_fold
    from deepser.training import train

    out = Path(out_root) / name / f"fold-{fold}"
    if not (out / "metrics.json").is_file():
        train(db, experiment, fold, out, threads=1)
        evaluate_fold(
            db,
            out / "model.keras",
            out / "training.json",
            fold,
            out / "predictions.csv",
            out / "metrics.json",
        )
    return json.loads((out / "metrics.json").read_text())["tasks"][task]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--only", nargs="*", help="experiments to run (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task", default="emotion")
    parser.add_argument("--out", default="results/sweeps")
    args = parser.parse_args()
    from deepser.config import resolve_experiments
    from deepser.data import read_info

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
            jobs = [(db, name, exp, k, args.out, args.task) for k in folds]
            per_fold = list(pool.map(run_fold, jobs))
        ua = np.array([m["ua"] for m in per_fold])
        confusion = np.sum([m["confusion"] for m in per_fold], axis=0)
        recall = np.diag(confusion) / confusion.sum(1)
        line = {
            "experiment": name,
            "ua_mean": round(float(ua.mean()), 4),
            "ua_std": round(float(ua.std(ddof=1)), 4),
            "pooled_ua": round(float(recall.mean()), 4),
            "per_fold": [round(float(u), 3) for u in ua],
            "pooled_confusion": confusion.tolist(),
            "seconds": round(time.perf_counter() - started),
        }
        print(json.dumps(line), flush=True)
        with open(Path(args.out) / "sweep.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
