"""Leave-one-speaker-out sweep of a config's experiments without Snakemake's per-job start-up.

An experiment runner, not a benchmark. It runs the library's own per-fold functions
(``deepser.training.train.train`` then ``deepser.evaluation.fold.evaluate_fold``) for
every fold of each experiment, ``--workers`` folds at a time in long-lived worker processes (one
thread each), pools the folds with ``deepser.metrics.summarize_experiment`` (as the workflow's
summary does) and prints one JSON line per experiment: mean +- sample std of the task's UA over
folds, pooled UA and confusion, per-fold values and wall time; the lines are also appended to
``OUT/sweep.jsonl``. A fold whose results are already in ``OUT/<experiment>/fold-<k>`` is not run
again (a fold evaluated by an older deepser, whose ``predictions.csv`` is not the current CSV, is
evaluated again). Speaker-normalised experiments also give their strict (training-fold
statistics) figures. The config's ``fusions`` and ``selections`` are then computed from the swept
folds with the workflow's own functions (inner folds run first when a method needs them, cached
as ``OUT/<experiment>/fold-<k>/inner-<n>.csv``); their outputs go to ``OUT/fusions/<name>`` and
``OUT/selections/<name>``.

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
    if not (out / "strict_predictions.csv").is_file():
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
            out / "strict_predictions.csv",
        )
    return str(out)


def run_inner(args: tuple) -> str:
    """Inner-fold predictions of one outer fold (for weighted or stacked fusion, selection)."""
    db, name, experiment, fold, n_inner, out_root = args
    from deepser.evaluation.inner import inner_predictions

    out = Path(out_root) / name / f"fold-{fold}" / f"inner-{n_inner}.csv"
    if not out.is_file():
        inner_predictions(db, experiment, fold, n_inner, out, threads=1)
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
    out = summarize_experiment(name, metrics, predictions, tasks)["tasks"][task]
    if all("strict" in m for m in metrics):
        strict = [read_predictions(d / "strict_predictions.csv", tasks) for d in fold_dirs]
        summary = summarize_experiment(name, [m["strict"] for m in metrics], strict, tasks)
        out["strict"] = summary["tasks"][task]
    return out


def line_of(name: str, entry: dict, started: float) -> dict:
    """The JSON line printed for an experiment, fusion or selection."""
    line = {
        "experiment": name,
        "ua_mean": round(entry["ua"]["mean"], 4),
        "ua_std": round(entry["ua"]["std"], 4),
        "pooled_ua": round(entry["pooled"]["ua"], 4),
        "per_fold": [round(u, 3) for u in entry["ua"]["per_fold"]],
        "pooled_confusion": entry["pooled"]["confusion"],
        "seconds": round(time.perf_counter() - started),
    }
    if "strict" in entry:
        line["strict_ua_mean"] = round(entry["strict"]["ua"]["mean"], 4)
        line["strict_ua_std"] = round(entry["strict"]["ua"]["std"], 4)
        line["strict_per_fold"] = [round(u, 3) for u in entry["strict"]["ua"]["per_fold"]]
    return line


def combined(kind: str, name: str, entry: dict, experiments: dict, results: str, args) -> dict:
    """A fusion or selection of swept experiments (their inner folds run first if needed)."""
    from deepser.database.store import read_info
    from deepser.evaluation.combine import member_tasks
    from deepser.evaluation.fusion import NEEDS_INNER, fuse
    from deepser.evaluation.selection import select

    key = "members" if kind == "fusion" else "candidates"
    members = entry[key]
    n_inner = int(entry.get("inner_folds", 3))
    needs_inner = kind == "selection" or entry.get("method", "average") in NEEDS_INNER
    folds = {
        m: [
            Path(args.out) / m / f"fold-{k}"
            for k in range(read_info(f"{results}/db/{experiments[m]['database']}.h5").n_folds)
        ]
        for m in members
    }
    inner = None
    if needs_inner:
        jobs = []
        for m in members:
            db = f"{results}/db/{experiments[m]['database']}.h5"
            jobs += [(db, m, experiments[m], k, n_inner, args.out) for k in range(len(folds[m]))]
        with ProcessPoolExecutor(args.workers) as pool:
            paths = list(pool.map(run_inner, jobs))
        inner, i = {}, 0
        for m in members:
            inner[m] = paths[i : i + len(folds[m])]
            i += len(folds[m])
    tasks = member_tasks({m: [d[0] / "training.json"] for m, d in folds.items()})
    preds = {m: [d / "predictions.csv" for d in ds] for m, ds in folds.items()}
    strict = {m: [d / "strict_predictions.csv" for d in ds] for m, ds in folds.items()}
    out = Path(args.out) / f"{kind}s" / name
    if kind == "fusion":
        summary = fuse(name, entry, tasks, preds, strict, inner, out)
    else:
        summary = select(name, entry, tasks, preds, strict, inner, out)
    result = dict(summary["tasks"][args.task])
    if "strict" in summary:
        result["strict"] = summary["strict"]["tasks"][args.task]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--only", nargs="*", help="experiments to run (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task", default="emotion")
    parser.add_argument("--out", default="results/sweeps")
    parser.add_argument(
        "--final",
        nargs="*",
        metavar="FUSION",
        help="also write the final bundles (OUT/<experiment>/final, as the workflow's "
        "summarize and train_final) of these fusions' members, and the fused bundles "
        "(OUT/fusions/<name>/final)",
    )
    args = parser.parse_args()
    from deepser.database.store import read_info
    from deepser.workflow.config import resolve_experiments

    config = yaml.safe_load(Path(args.config).read_text())
    results = config.get("results", "results")
    experiments = resolve_experiments(config)
    names = [n for n in experiments if not args.only or n in args.only]
    for name in names:
        exp = experiments[name]
        db = f"{results}/db/{exp['database']}.h5"
        folds = range(read_info(db).n_folds)
        started = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            jobs = [(db, name, exp, k, args.out) for k in folds]
            fold_dirs = [Path(d) for d in pool.map(run_fold, jobs)]
        line = line_of(name, pool_folds(name, fold_dirs, args.task), started)
        print(json.dumps(line), flush=True)
        with open(Path(args.out) / "sweep.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
    for kind in ("fusion", "selection"):
        for name, entry in (config.get(f"{kind}s") or {}).items():
            if args.only and name not in args.only:
                continue
            started = time.perf_counter()
            line = line_of(name, combined(kind, name, entry, experiments, results, args), started)
            line["kind"] = kind
            print(json.dumps(line), flush=True)
            with open(Path(args.out) / "sweep.jsonl", "a") as fh:
                fh.write(json.dumps(line) + "\n")
    for name in args.final or []:
        final_bundles(name, config["fusions"][name], experiments, results, Path(args.out))


def final_bundles(name: str, fusion: dict, experiments: dict, results: str, out: Path) -> None:
    """The fusion's members summarised and trained on every speaker, and the fused bundle."""
    from deepser.database.store import read_info
    from deepser.evaluation.fusion import write_fused_bundle
    from deepser.evaluation.summary import summarize
    from deepser.training.final import train_final

    bundles = {}
    for member in fusion["members"]:
        exp = experiments[member]
        db = f"{results}/db/{exp['database']}.h5"
        folds = [out / member / f"fold-{k}" for k in range(read_info(db).n_folds)]
        if not (out / member / "final" / "bundle.json").is_file():
            summarize(member, exp, db, folds, None, out / member)
            trainings = [f / "training.json" for f in folds]
            train_final(
                member, exp, db, trainings, out / member / "metrics.json", out / member / "final"
            )
        bundles[member] = out / member / "final"
    folder = out / "fusions" / name
    write_fused_bundle(folder / "fusion.json", folder / "metrics.json", bundles, folder / "final")
    print(f"fused bundle: {folder / 'final'}", flush=True)


if __name__ == "__main__":
    main()
