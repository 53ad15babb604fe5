"""Training input pipeline and training throughput, each against a baseline from the same run.

1. **Input pipeline alone** (no model): one epoch of ``ChunkedBatches`` over fold 0's training
   rows, read from the H5 file in contiguous blocks and shuffled in memory (OURS), against the
   naive way (BASELINE): per batch, ``h5["feat"][sorted random row indices]`` with h5py fancy
   indexing, plus ``n_valid`` and ``label``. The baseline runs for at most ``--baseline-batches``
   batches or ``--baseline-seconds`` seconds, and its rate is extrapolated from those.
2. **Training throughput** of the default ``cnn_lstm`` model with the same batches and the same
   steps, in a ``train_on_batch`` loop like ``deepser.training.train``: (a) batches served from
   the training rows held in RAM (``arrays=read_rows(...)``), (b) batches streamed from the H5
   file (``arrays=None``), and (c) as (b), with the batches produced by a background thread (a
   prototype in this script, not part of deepser). One warm-up epoch (compilation of the full and
   the last, partial batch) is not timed. Each loop also splits its time into waiting for the
   next batch and the training step.

The database is synthetic, in the format of ``deepser.database.build.build_database``: ``--rows``
utterances of 20 speakers in 4 speaker folds, rows of shape (T=10, 1, c_len=10, D=80) (the
original toolkit's mel windows), 4 emotion classes with class-dependent feature offsets,
``n_valid`` in [5, 10]. It is written in blocks, so memory stays bounded at any ``--rows``.

Needs only numpy, h5py, pandas, keras and its backend: no tensorflow import here (the default
backend imports it itself), no librosa or soundfile, so it also runs with ``KERAS_BACKEND=jax``:

    .venv/bin/python benchmarks/bench_training.py
    KERAS_BACKEND=jax PYTHONPATH=src python benchmarks/bench_training.py --rows 200000 \
        --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from _harness import Verdict, load_average

from deepser.database.normalise import feature_moments
from deepser.database.store import DatabaseWriter, read_info, read_rows
from deepser.runtime import configure_backend
from deepser.training.batches import ChunkedBatches, class_weights, prefetch
from deepser.training.loop import compile_model
from deepser.training.settings import TRAINING_DEFAULTS
from deepser.training.split import split_fold

CLASSES = ["ang", "hap", "neu", "sad"]
N_SPEAKERS, N_FOLDS = 20, 4


# --------------------------------------------------------------------------- synthetic database


def write_database(path: Path, n_rows: int, steps: int, c_len: int, dims: int, seed: int) -> None:
    """A database in build_database's format, written in blocks (bounded memory)."""
    rng = np.random.default_rng(seed)
    row_shape = (steps, 1, c_len, dims)
    speakers = [f"spk{i:02d}" for i in range(N_SPEAKERS)]
    per_speaker = np.full(N_SPEAKERS, n_rows // N_SPEAKERS)
    per_speaker[: n_rows % N_SPEAKERS] += 1
    fold_of = {s: i % N_FOLDS for i, s in enumerate(speakers)}
    order = sorted(range(N_SPEAKERS), key=lambda i: (fold_of[speakers[i]], speakers[i]))
    offsets = rng.normal(0.0, 0.6, (len(CLASSES), dims)).astype(np.float32)
    writer = DatabaseWriter(path, n_rows, row_shape, 1)
    fold_bounds, folds_meta, row = [], [], 0
    try:
        for fold in range(N_FOLDS):
            start = row
            for i in (i for i in order if fold_of[speakers[i]] == fold):
                for lo in range(0, int(per_speaker[i]), 256):
                    n = min(256, int(per_speaker[i]) - lo)
                    cls = rng.integers(0, len(CLASSES), n)
                    n_valid = rng.integers(5, steps + 1, n)
                    feat = rng.standard_normal((n, *row_shape), dtype=np.float32)
                    feat += offsets[cls][:, None, None, None, :]
                    feat[np.arange(steps)[None, :] >= n_valid[:, None]] = 0.0  # zero padding
                    for k in range(n):
                        writer.append(
                            feat[k],
                            np.array([float(cls[k])]),
                            int(n_valid[k]),
                            fold,
                            f"{speakers[i]}_{lo + k:07d}",
                            speakers[i],
                            "synthetic",
                        )
                row += int(per_speaker[i])
            fold_bounds.append((start, row))
            folds_meta.append(
                {
                    "fold": fold,
                    "n_utterances": row - start,
                    "groups": sorted(s for s, f in fold_of.items() if f == fold),
                }
            )
        writer.finish(
            fold_bounds,
            {
                "feature_spec": {
                    "kind": "mel",
                    "sample_rate": 22050,
                    "n_fft": 512,
                    "hop": 512,
                    "n_mels": dims,
                    "synthetic": True,
                },
                "gain": {"synthetic": {"method": "none"}},
                "window_spec": {
                    "c_len": c_len,
                    "max_steps": steps * c_len,
                    "layout": "2d",
                    "n_steps": steps,
                    "dims": dims,
                },
                "tasks": [{"name": "emotion", "type": "categorical", "classes": CLASSES}],
                "fold_by": "speaker",
                "folds": folds_meta,
                "corpora": ["synthetic"],
                "n_utterances": n_rows,
                "speakers": speakers,
            },
        )
    except BaseException:
        writer.abort()
        raise


# --------------------------------------------------------------------------- helpers


def time_reads(batches: ChunkedBatches) -> dict[str, float]:
    """Make ``batches`` add the time spent in its block reads (``_read``) to the returned dict."""
    spent = {"read_s": 0.0}
    read = batches._read

    def timed(rows: np.ndarray):
        t0 = time.perf_counter()
        try:
            return read(rows)
        finally:
            spent["read_s"] += time.perf_counter() - t0

    batches._read = timed  # instance attribute: shadows the method for this object only
    return spent


def time_pipeline(
    make: Callable[[], Iterable], repeats: int, min_seconds: float
) -> tuple[int, float]:
    """(samples, best seconds) of iterating ``make()`` without a model, at least ``repeats``
    passes and until ``min_seconds`` have been spent (short passes are noisy)."""
    best, n, spent, passes = float("inf"), 0, 0.0, 0
    while passes < repeats or spent < min_seconds:
        batches = make()
        n, t0 = 0, time.perf_counter()
        for inputs, _, _ in batches:
            n += len(inputs["n_valid"])
        seconds = time.perf_counter() - t0
        best, spent, passes = min(best, seconds), spent + seconds, passes + 1
    return n, best


def baseline_reads(
    path: Path,
    rows: np.ndarray,
    cols: list[int],
    batch_size: int,
    seed: int,
    max_batches: int,
    max_seconds: float,
) -> tuple[int, float, int]:
    """The naive pipeline: random batches read row by row (h5py fancy indexing).
    Returns (samples, seconds, batches)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(rows)
    n = n_batches = 0
    with h5py.File(path, "r") as h5:
        feat, n_valid, label = h5["feat"], h5["n_valid"], h5["label"]
        t0 = time.perf_counter()
        for i in range(0, perm.size, batch_size):
            idx = np.sort(perm[i : i + batch_size])
            x = feat[idx]
            v = n_valid[idx]
            y = label[idx][:, cols]
            assert x.shape[0] == v.shape[0] == y.shape[0]
            n += idx.size
            n_batches += 1
            if n_batches >= max_batches or time.perf_counter() - t0 >= max_seconds:
                break
        seconds = time.perf_counter() - t0
    return n, seconds, n_batches


def train_epoch(model, batches: Iterable) -> dict[str, float]:
    """One pass of train_on_batch; wall time split into waiting for batches and steps."""
    wait = step = 0.0
    n = steps = 0
    t0 = time.perf_counter()
    it = iter(batches)
    while True:
        a = time.perf_counter()
        try:
            inputs, targets, weights = next(it)
        except StopIteration:
            break
        b = time.perf_counter()
        model.train_on_batch(inputs, targets, sample_weight=weights)
        step += time.perf_counter() - b
        wait += b - a
        n += len(inputs["n_valid"])
        steps += 1
    total = time.perf_counter() - t0
    return {"samples": n, "steps": steps, "seconds": total, "wait_s": wait, "step_s": step}


def device_description(backend: str) -> str:
    if backend == "jax":
        import jax

        return ", ".join(str(d) for d in jax.devices())
    if backend == "tensorflow":
        tf = sys.modules.get("tensorflow")  # already imported by keras; not imported here
        if tf is not None:
            return ", ".join(d.name for d in tf.config.list_logical_devices())
    if backend == "torch":
        torch = sys.modules.get("torch")
        if torch is not None:
            return "cuda" if torch.cuda.is_available() else "cpu"
    return "unknown"


def rate(samples: float, seconds: float) -> float:
    return samples / seconds if seconds > 0 else float("nan")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=4096, help="rows of the synthetic database")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="timed training epochs per variant")
    p.add_argument(
        "--repeats", type=int, default=3, help="pipeline-only passes, at least (the best is kept)"
    )
    p.add_argument(
        "--min-seconds",
        type=float,
        default=1.0,
        help="pipeline-only: repeat passes until this much time is spent",
    )
    p.add_argument("--db", type=Path, help="reuse this database instead of writing one")
    p.add_argument("--tmpdir", type=Path, help="where the synthetic database goes")
    p.add_argument("--keep-db", action="store_true", help="do not delete the synthetic database")
    p.add_argument("--json", type=Path, help="also write the key figures here")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--baseline-batches", type=int, default=200)
    p.add_argument("--baseline-seconds", type=float, default=30.0)
    p.add_argument("--block-rows", type=int, default=2048)
    p.add_argument("--buffer-blocks", type=int, default=4)
    args = p.parse_args(argv)

    configure_backend(args.threads, args.seed)
    import keras

    from deepser.models.registry import build_model

    backend = keras.backend.backend()
    print(
        f"bench_training: python {platform.python_version()}, keras {keras.__version__}, "
        f"backend {backend}, devices: {device_description(backend)}"
    )
    print(
        f"host: {platform.node()}, {os.cpu_count()} CPUs, threads {args.threads}, "
        f"load average {load_average()}"
    )

    tmp = None
    if args.db is not None:
        db = args.db
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench_training_", dir=args.tmpdir))
        db = tmp / "db.h5"
        t0 = time.perf_counter()
        write_database(db, args.rows, steps=10, c_len=10, dims=80, seed=args.seed)
        print(
            f"wrote synthetic database {db}: {args.rows} rows, "
            f"{db.stat().st_size / 2**20:.0f} MiB, {time.perf_counter() - t0:.1f} s"
        )
    try:
        results = run(args, db, keras, build_model, backend)
    finally:
        if tmp is not None and not args.keep_db:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


def run(args, db: Path, keras, build_model, backend: str) -> dict[str, Any]:
    info = read_info(db)
    split = split_fold(info, 0, float(TRAINING_DEFAULTS["validation_fraction"]), args.seed)
    tasks = [{**t, "loss_weight": 1.0} for t in info.tasks]
    cols = info.label_columns([t["name"] for t in tasks])
    train = split.train
    row_mb = 4 * int(np.prod(info.row_shape)) / 2**20
    print(
        f"database: {info.n_rows} rows of {info.row_shape} float32; fold 0 training rows: "
        f"{train.size} ({train.size * row_mb:.0f} MiB), batch size {args.batch_size}"
    )

    t0 = time.perf_counter()
    arrays = read_rows(db, train, cols)
    load_s = time.perf_counter() - t0
    weights = {
        t["name"]: class_weights(arrays.label[:, j], len(t["classes"]))
        for j, t in enumerate(tasks)
        if t["type"] == "categorical"
    }

    def batches(in_ram: bool) -> ChunkedBatches:
        return ChunkedBatches(
            db,
            train,
            cols,
            tasks,
            args.batch_size,
            args.seed,
            weights=weights,
            arrays=arrays if in_ram else None,
            block_rows=args.block_rows,
            buffer_blocks=args.buffer_blocks,
        )

    # 1. input pipeline alone
    pipe: dict[str, float] = {}
    for name, make in (
        ("h5", lambda: batches(False).epoch()),
        ("ram", lambda: batches(True).epoch()),
        ("h5_prefetch", lambda: prefetch(batches(False).epoch())),
    ):
        pipe[name] = rate(*time_pipeline(make, max(1, args.repeats), args.min_seconds))
    probe = batches(False)
    spent = time_reads(probe)
    n, seconds = time_pipeline(probe.epoch, 1, 0.0)
    read_share = spent["read_s"] / seconds
    base_n, base_s, base_batches = baseline_reads(
        db, train, cols, args.batch_size, args.seed, args.baseline_batches, args.baseline_seconds
    )
    pipe["baseline"] = rate(base_n, base_s)

    print()
    print("1. input pipeline alone (no model), samples/s")
    print(f"   {'way':<62}{'samples/s':>12}{'ours/base':>11}")
    lines = [
        ("OURS: ChunkedBatches from H5 (contiguous blocks + shuffle)", pipe["h5"]),
        ("     same, produced by a background thread", pipe["h5_prefetch"]),
        ("     ChunkedBatches from RAM (arrays=read_rows(...))", pipe["ram"]),
        (f"BASELINE: h5py fancy-indexed random batches ({base_batches} batches)", pipe["baseline"]),
    ]
    for label, value in lines:
        print(f"   {label:<62}{value:>12,.0f}{value / pipe['baseline']:>10.1f}x")
    print(
        f"   OURS from H5: {100 * read_share:.0f}% of the pass is in block reads (read_rows), "
        "the rest is shuffling and batch assembly"
    )
    print(
        f"   (one-off read_rows of all training rows into RAM, the first read of the file: "
        f"{rate(train.size, load_s):,.0f} samples/s, {load_s:.2f} s)"
    )

    # 2. training throughput
    mean, var = feature_moments(db, train)
    model = build_model(
        "cnn_lstm", info.row_shape, info.attrs["window_spec"]["layout"], tasks, mean, var
    )
    compile_model(model, tasks, {"learning_rate": 1e-3})
    t0 = time.perf_counter()
    warm = train_epoch(model, batches(True).epoch())
    warm_s = time.perf_counter() - t0
    variants = {
        "ram": ("(a) from RAM (arrays=read_rows(...))", lambda b: b.epoch(), True),
        "h5": ("(b) from H5 (arrays=None)", lambda b: b.epoch(), False),
        "h5_prefetch": (
            "(c) from H5 + background thread (prototype)",
            lambda b: prefetch(b.epoch()),
            False,
        ),
    }
    # same seed, so every variant trains on the same batches in the same order
    sources = {k: batches(in_ram) for k, (_, _, in_ram) in variants.items()}
    h5_reads = time_reads(sources["h5"])
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for _ in range(max(1, args.epochs)):
        for key, (_, wrap, _) in variants.items():
            runs[key].append(train_epoch(model, wrap(sources[key])))
    train_fig: dict[str, dict[str, float]] = {}
    for key, rs in runs.items():
        best = min(rs, key=lambda r: r["seconds"])
        total = sum(r["seconds"] for r in rs)
        train_fig[key] = {
            "samples_per_s": rate(best["samples"], best["seconds"]),
            "steps_per_epoch": best["steps"],
            "wait_fraction": sum(r["wait_s"] for r in rs) / total,
            "step_fraction": sum(r["step_s"] for r in rs) / total,
            "ms_per_step": 1e3 * best["seconds"] / best["steps"],
            "wait_ms_per_step": 1e3 * sum(r["wait_s"] for r in rs) / sum(r["steps"] for r in rs),
        }
    ref = train_fig["ram"]["samples_per_s"]

    print()
    print(
        f"2. training throughput, cnn_lstm defaults, {train_fig['ram']['steps_per_epoch']} "
        f"steps/epoch, best of {max(1, args.epochs)} epochs (warm-up epoch {warm_s:.1f} s, "
        "not timed)"
    )
    print(
        f"   {'fed':<46}{'samples/s':>11}{'ms/step':>9}{'wait ms/step':>14}{'wait %':>8}"
        f"{'vs (a)':>8}"
    )
    for key, (label, _, _) in variants.items():
        f = train_fig[key]
        print(
            f"   {label:<46}{f['samples_per_s']:>11,.0f}{f['ms_per_step']:>9.2f}"
            f"{f['wait_ms_per_step']:>14.2f}{100 * f['wait_fraction']:>7.1f}%"
            f"{100 * f['samples_per_s'] / ref:>7.1f}%"
        )
    ratio = train_fig["h5"]["samples_per_s"] / ref
    h5_total = sum(r["seconds"] for r in runs["h5"])
    train_fig["h5"]["read_fraction"] = h5_reads["read_s"] / h5_total
    train_fig["h5"]["read_ms_per_step"] = (
        1e3 * h5_reads["read_s"] / sum(r["steps"] for r in runs["h5"])
    )
    on_gpu = backend == "jax" and "cpu" not in device_description(backend).lower()
    judged = Verdict(
        "(b)/(a) training rate from H5 vs from RAM",
        f"{100 * ratio:.1f}%",
        ">= 90% with KERAS_BACKEND=jax on a GPU",
        ratio >= 0.9 if on_gpu else None,
    )
    verdict = judged.result if on_gpu else "not judged here"
    print(
        f"   (b)/(a) = {100 * ratio:.1f}% (target >= 90% with KERAS_BACKEND=jax on a GPU: "
        f"{verdict}); (c)/(a) = {100 * train_fig['h5_prefetch']['samples_per_s'] / ref:.1f}%"
    )
    print(
        f"   (b) spends {100 * train_fig['h5']['read_fraction']:.1f}% of its time in the "
        f"synchronous block reads ({train_fig['h5']['read_ms_per_step']:.2f} ms/step on average)"
    )
    print(
        "   wait % = share of the loop's time spent waiting for the next batch (reading, "
        "shuffling, slicing)"
    )
    print(judged.line())

    return {
        "backend": backend,
        "devices": device_description(backend),
        "keras": keras.__version__,
        "host": platform.node(),
        "threads": args.threads,
        "db_rows": info.n_rows,
        "row_shape": list(info.row_shape),
        "train_rows": int(train.size),
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "pipeline_samples_per_s": pipe,
        "pipeline_ratio_h5_vs_baseline": pipe["h5"] / pipe["baseline"],
        "pipeline_h5_read_share": read_share,
        "baseline_batches": base_batches,
        "read_rows_samples_per_s": rate(train.size, load_s),
        "warmup_epoch_s": warm_s,
        "warmup_steps": warm["steps"],
        "training": train_fig,
        "training_ratio_h5_vs_ram": ratio,
        "training_verdict": verdict,
        "training_ratio_h5_prefetch_vs_ram": train_fig["h5_prefetch"]["samples_per_s"] / ref,
    }


if __name__ == "__main__":
    raise SystemExit(main())
