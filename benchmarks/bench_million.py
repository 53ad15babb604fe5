"""A million utterances: the database build and the training input pipeline stay linear and flat.

The workflow's own overhead at scale, without audio extraction (extracting a million files would
take an hour): ``--utterances`` synthetic utterances (default 1,000,000) are written straight into
feature shards with ``write_feature_shard`` (log-mel-like float32 features of ``--dims`` dims,
60-150 frames each, seeded), ``--shards`` shards (default 512 per million utterances, with the
workflow's CRC-32 ``shard_of``), plus the normalised meta TSV (utt_id, audio, shard, line,
emotion, speaker; 10 speakers, 4 emotions, the meta grouped by speaker), vocab JSON and empty
rejected TSV that ``prepare_meta`` writes. The generation is timed but not judged.

0. **Workflow planning** (skip with ``--skip-workflow``), on 2 cores as a user runs it: a corpus
   of ``--utterances`` tiny valid wav files (16 samples) and its meta file (10 speakers,
   leave-one-speaker-out), the meta checkpoint ``prepare_meta`` run for real (every audio
   header checked, the shard manifests written), then ``snakemake --dry-run`` of the whole
   workflow, timed twice (``benchmarks/bench_dryrun.py``'s measurement; the median is judged,
   the first run also caches the meta's distinct rows; the baseline is a corpus of the demo's
   size, 320 utterances), then twice more with every shard extracted (empty stand-ins for the
   log-mel shards), as on a re-run, when every shard's manifest is compared with its audio files.
   Targets: ``prepare_meta`` < 60 s and both dry runs < 10 s.
1. **Database build**: ``build_database`` (c_len 10, ``--max-steps`` 200, layout 2d, tasks
   [emotion], leave-one-speaker-out), each size in its own subprocess for its own peak RSS. The
   baseline is the same corpus at 1/16 of the size, with 1/16 of the shards (the same
   utterances per shard). Printed per size: rows/s, CPU seconds, the set-up time before the
   first row (the meta partitioned by shard, the shards scanned into sorted runs, the folds),
   RSS before the build, the growth at the first row (set-up) and the peak growth (VmHWM after
   resetting it, else VmRSS sampled every ms), the database size.
   Targets: flat memory, peak growth(N) <= 1.2 x growth(N/16) + 16 MB; linear time, rows per
   CPU second (user + system) at N >= 0.8 x at N/16. The wall-clock rows/s is printed too, not
   judged: once the database outgrows what the page cache holds dirty (vm.dirty_ratio, about
   20 % of free memory) the build waits for the disk, which the small database never does.
2. **Training input pipeline**: ``ChunkedBatches`` as ``deepser.training.train.prepare`` builds it
   for fold 0's training rows (validation fraction, batch size 32, seed and class weights from
   the training defaults; shuffling is always on), streamed from the H5 file (``arrays=None``:
   at the full size the training rows exceed ``max_ram_mb``), iterated with no model for
   ``--loader-seconds``, in a subprocess per run, the sizes taking turns ``--loader-repeats``
   times (the best rate is kept, and the largest peak). Printed: samples/s, RSS before
   (``read_info`` and the training labels), the peak growth while iterating. Targets:
   samples/s(N) >= 0.8 x samples/s(N/16) and peak growth(N) <= 1.2 x growth(N/16) + 16 MB.

Everything runs pinned to one core (the generation excepted: it uses every allowed CPU), with
thread counts set to 1, in a temporary folder removed at the end (``--keep DIR`` keeps the
inputs and databases there). With the defaults the folder needs about 11 GB (shards and meta
3.9 GB, removed once the database is built unless kept; database 6.6 GB: rows of (20, 1, 10, 8)
float32), and the run takes about 5 minutes on 2 cores, most of it the generation. Exit status
0 whatever the result (read the PASS/MISS lines).

    .venv/bin/python benchmarks/bench_million.py                # 1,000,000 utterances, 512 shards
    .venv/bin/python benchmarks/bench_million.py --quick        # 20,000 utterances, a smoke run
    .venv/bin/python benchmarks/bench_million.py --utterances 250000 --keep /tmp/m250k --profile
"""

from __future__ import annotations

from _harness import single_thread_env

single_thread_env()  # one core: before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import csv  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import (  # noqa: E402
    LOGMEL_CFG,
    NO_GAIN,
    PeakSampler,
    Verdict,
    header,
    load_average,
    reset_peak,
    say,
    status_kb,
    summary,
    table,
)

from deepser.corpus.demo import EMOTIONS  # noqa: E402
from deepser.corpus.meta import shard_of  # noqa: E402

DEFAULT_UTTERANCES = 1_000_000
SHARDS_PER_MILLION = 512
QUICK_UTTERANCES = 20_000
BASELINE_DIVISOR = 16
N_SPEAKERS = 10
MIN_FRAMES, MAX_FRAMES = 60, 150
MEMORY_SLACK_MB = 16.0  # allowed peak growth from the baseline to N, besides 20 %
MIN_SPEED_RATIO = 0.8  # rows/s and samples/s at N against the baseline


# --------------------------------------------------------------------------- synthetic inputs


def corpus_rows(n: int, n_shards: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Ids, speaker, emotion and shard of ``n`` utterances: the meta is grouped by speaker (as a
    corpus's folders usually are), emotions cycle, shards are the workflow's ``shard_of``."""
    speaker = (np.arange(n) * N_SPEAKERS) // n
    emotion = np.arange(n) % len(EMOTIONS)
    ids = [f"wav/spk{s:02d}/u{i:07d}" for i, s in enumerate(speaker.tolist())]
    shard = np.fromiter((shard_of(u, n_shards) for u in ids), dtype=np.int64, count=n)
    return ids, speaker, emotion, shard


def write_shard(job: tuple[str, int, list[str], np.ndarray, int, int, dict]) -> tuple[int, int]:
    """One feature shard of synthetic log-mel-like features (a worker process)."""
    from deepser.features.shards import write_feature_shard

    path, s, ids, emotion, dims, seed, spec = job
    rng = np.random.default_rng([seed, s])
    lengths = rng.integers(MIN_FRAMES, MAX_FRAMES + 1, size=len(ids))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    feat = rng.standard_normal((int(offsets[-1]), dims), dtype=np.float32)
    feat *= 2.0
    feat += np.repeat(emotion.astype(np.float32) - 8.0, lengths)[:, None]  # log-mel-like level
    items = ((u, feat[offsets[k] : offsets[k + 1]]) for k, u in enumerate(ids))
    return s, write_feature_shard(path, items, {"feature_spec": spec, "gain": NO_GAIN})


def _worker_init(cpus: list[int]) -> None:
    os.sched_setaffinity(0, set(cpus))


def generate(
    folder: Path, name: str, n: int, n_shards: int, dims: int, seed: int, cpus: list[int]
) -> tuple[dict[str, Any], float]:
    """Feature shards, normalised meta, vocab and rejected list of a synthetic corpus, as
    ``extract_features`` and ``prepare_meta`` write them; returns (corpus files, seconds)."""
    from deepser.features.registry import resolve_spec
    from deepser.files import write_json, write_tsv

    t0 = time.perf_counter()
    folder.mkdir(parents=True)
    ids, speaker, emotion, shard = corpus_rows(n, n_shards)
    spec = resolve_spec({**LOGMEL_CFG, "n_mels": dims})
    order = np.argsort(shard, kind="stable")  # meta order inside each shard, as extraction
    bounds = np.searchsorted(shard[order], np.arange(n_shards + 1))
    jobs = []
    for s in range(n_shards):
        idx = order[bounds[s] : bounds[s + 1]]
        path = str(folder / f"features/shard{s}.h5")
        jobs.append((path, s, [ids[i] for i in idx], emotion[idx], dims, seed, spec))
    (folder / "features").mkdir()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(cpus), ctx, _worker_init, (cpus,)) as pool:
        written = sum(c for _, c in pool.map(write_shard, jobs, chunksize=4))
    if written != n:
        raise RuntimeError(f"wrote {written} utterances, expected {n}")
    meta = folder / "meta.tsv"
    with meta.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["utt_id", "audio", "shard", "line", "emotion", "speaker"])
        for i, (u, spk, emo, sh) in enumerate(
            zip(ids, speaker.tolist(), emotion.tolist(), shard.tolist(), strict=True)
        ):
            writer.writerow([u, f"data/{name}/{u}.wav", sh, i + 2, EMOTIONS[emo], f"spk{spk:02d}"])
    vocab = folder / "vocab.json"
    write_json(
        vocab,
        {
            "emotion": {"type": "categorical", "classes": list(EMOTIONS)},
            "speaker": {
                "type": "categorical",
                "classes": [f"spk{s:02d}" for s in range(N_SPEAKERS)],
            },
        },
        sort_keys=False,
    )
    rejected = folder / "rejected.tsv"
    import pandas as pd

    write_tsv(rejected, pd.DataFrame(columns=["utt_id", "audio", "line", "stage", "reason"]))
    files = {
        "name": name,
        "meta": str(meta),
        "vocab": str(vocab),
        "rejected": str(rejected),
        "shards": [j[0] for j in jobs],
    }
    return files, time.perf_counter() - t0


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- children


def build_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build one database; its seconds, set-up seconds, RSS and peaks."""
    import cProfile
    import io
    import pstats

    from deepser.database.build import CorpusInput, build_database
    from deepser.database.store import DatabaseWriter

    corpus = CorpusInput(
        cfg["name"],
        meta=Path(cfg["meta"]),
        vocab=Path(cfg["vocab"]),
        shards=tuple(Path(p) for p in cfg["shards"]),
        rejected=Path(cfg["rejected"]),
    )
    marks: dict[str, float] = {}

    def marked(method):
        def first_row_ends_the_set_up(self, *args, **kwargs):
            if not marks:
                marks["first_row"] = time.perf_counter()
                marks["rss_first_kb"] = status_kb("VmRSS")
                marks["hwm_first_kb"] = status_kb("VmHWM")
            return method(self, *args, **kwargs)

        return first_row_ends_the_set_up

    for name in ("append", "write_columns", "write_features"):  # whichever the build calls first
        setattr(DatabaseWriter, name, marked(getattr(DatabaseWriter, name)))
    profile = cProfile.Profile() if cfg.get("profile") else None
    out, rejected_out = Path(cfg["out"]), Path(cfg["out"]).with_suffix(".rejected.tsv")

    def build() -> dict[str, Any]:
        if profile is None:
            return build_database([corpus], cfg["db"], out, rejected_out)
        return profile.runcall(build_database, [corpus], cfg["db"], out, rejected_out)

    gc.collect()
    rss_before = status_kb("VmRSS")
    method = "VmHWM reset"
    cpu0 = os.times()
    t0 = time.perf_counter()
    if reset_peak():
        attrs = build()
        peak = status_kb("VmHWM")
    else:
        method = "VmRSS sampled every 1 ms"
        with PeakSampler() as sampler:
            attrs = build()
        peak = sampler.peak
        marks["hwm_first_kb"] = marks["rss_first_kb"]
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    result = {
        "cpu_seconds": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "system_seconds": cpu1.system - cpu0.system,
        "rss_before_kb": rss_before,
        "peak_kb": peak,
        "rss_first_kb": marks["rss_first_kb"],
        "hwm_first_kb": marks["hwm_first_kb"],
        "seconds": wall,
        "setup_seconds": marks["first_row"] - t0,
        "n_utterances": attrs["n_utterances"],
        "db_bytes": out.stat().st_size,
        "method": method,
    }
    if profile is not None:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(18)
        result["profile"] = text.getvalue()
    return result


def loader_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Iterate ``ChunkedBatches`` over fold 0's training rows, as ``train.prepare`` builds it,
    for ``seconds``; samples/s and peak RSS growth."""
    from deepser.database.store import read_info, read_labels
    from deepser.tasks import is_categorical
    from deepser.training.batches import ChunkedBatches, class_weights
    from deepser.training.settings import experiment_tasks, training_settings
    from deepser.training.split import split_fold

    db = Path(cfg["db"])
    training = training_settings({})
    seed, batch_size = int(training["seed"]), int(training["batch_size"])
    gc.collect()
    rss_start = status_kb("VmRSS")
    t0 = time.perf_counter()
    info = read_info(db)
    tasks = experiment_tasks(info, None)
    split = split_fold(info, 0, float(training["validation_fraction"]), seed)
    cols = info.label_columns([t["name"] for t in tasks])
    labels = read_labels(db, split.train, cols)
    weights = {
        t["name"]: class_weights(labels[:, j], len(t["classes"]))
        for j, t in enumerate(tasks)
        if is_categorical(t)
    }
    row_bytes = 4 * int(np.prod(info.row_shape))
    in_ram = split.train.size * row_bytes <= training["max_ram_mb"] * 2**20
    batches = ChunkedBatches(
        db, split.train, cols, tasks, batch_size, seed, weights=weights, arrays=None
    )
    setup = time.perf_counter() - t0
    del labels
    gc.collect()
    rss_before = status_kb("VmRSS")

    def iterate() -> tuple[int, int, int, float]:
        n_samples = n_batches = epochs = 0
        start = time.perf_counter()
        while True:
            epochs += 1
            gen = batches.epoch()
            try:
                for inputs, _targets, _weights in gen:
                    n_samples += len(inputs["n_valid"])
                    n_batches += 1
                    if n_batches % 64 == 0 and time.perf_counter() - start >= cfg["seconds"]:
                        return n_samples, n_batches, epochs, time.perf_counter() - start
            finally:
                gen.close()

    method = "VmHWM reset"
    if reset_peak():
        n_samples, n_batches, epochs, wall = iterate()
        peak = status_kb("VmHWM")
    else:
        method = "VmRSS sampled every 1 ms"
        with PeakSampler() as sampler:
            n_samples, n_batches, epochs, wall = iterate()
        peak = sampler.peak
    return {
        "n_rows": info.n_rows,
        "n_train": int(split.train.size),
        "train_runs": len({(b[0], b[-1]) for b in batches.blocks}),
        "in_ram_by_train": bool(in_ram),
        "batch_size": batch_size,
        "setup_seconds": setup,
        "rss_start_kb": rss_start,
        "rss_before_kb": rss_before,
        "peak_kb": peak,
        "samples": n_samples,
        "batches": n_batches,
        "epochs": epochs,
        "seconds": wall,
        "method": method,
    }


def run_child(kind: str, cfg: dict[str, Any], tmp: Path) -> dict[str, Any] | None:
    cfg_path = tmp / f"{kind}-{cfg['label']}.json"
    cfg_path.write_text(json.dumps(cfg))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), f"--{kind}-child", str(cfg_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        say(f"   {kind} ({cfg['label']}) failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def mb(kb: float) -> str:
    return f"{kb / 1024:,.1f}"


def growth_mb(r: dict[str, Any]) -> float:
    return (r["peak_kb"] - r["rss_before_kb"]) / 1024


def flat_verdict(figure: str, base: float, full: float) -> Verdict:
    return Verdict(
        figure,
        f"{base:.1f} -> {full:.1f} MB",
        f"<= 1.2 x baseline + {MEMORY_SLACK_MB:g} MB = {1.2 * base + MEMORY_SLACK_MB:.1f} MB",
        full <= 1.2 * base + MEMORY_SLACK_MB,
    )


def speed_verdict(figure: str, base: float, full: float, unit: str) -> Verdict:
    ratio = full / base if base > 0 else float("inf")
    return Verdict(
        figure,
        f"{base:,.0f} -> {full:,.0f} {unit} ({ratio:.2f}x)",
        f">= {MIN_SPEED_RATIO:g}x baseline",
        ratio >= MIN_SPEED_RATIO,
    )


def plan_workflow(args: argparse.Namespace, tmp: Path, cpus: list[int]) -> list[Verdict]:
    """Part 0: the meta checkpoint and the dry run of the whole workflow, on every allowed CPU
    (Snakemake runs with --cores 2), with bench_dryrun's measurement."""
    import bench_dryrun

    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        say(f"\nWorkflow planning: {args.utterances:,} wav files (16 samples), 10 speakers")
        small = bench_dryrun.measure(tmp / "plan-demo-size", 320, 8, 4, 2)
        big = bench_dryrun.measure(tmp / "plan-large", args.utterances, N_SPEAKERS, args.shards, 2)
    finally:
        os.sched_setaffinity(0, pinned)
        for folder in ("plan-demo-size", "plan-large"):
            if args.keep is None:
                shutil.rmtree(tmp / folder, ignore_errors=True)
    rows = [
        [
            name,
            f"{r['utterances']:,}",
            r["shards"],
            r["jobs"],
            f"{r['generate_s']:.1f}",
            f"{r['prepare_meta_s']:.1f}",
            f"{r['dry_run_best_s']:.2f}",
            f"{r['dry_run_median_s']:.2f}",
            f"{r['rerun_median_s']:.2f}",
        ]
        for name, r in (("baseline", small), ("N", big))
    ]
    say(
        table(
            [
                "size",
                "utts",
                "shard jobs",
                "jobs",
                "gen s",
                "prepare_meta s",
                "dry run best s",
                "median s",
                "re-run median s",
            ],
            rows,
        )
    )
    say("   prepare_meta: the meta checkpoint (every header checked, manifests written);")
    say(
        "   dry run: snakemake --dry-run of the whole workflow after it (--cores 2), twice; "
        "the first also caches the meta's distinct rows"
    )
    say(
        "   re-run: the same with every shard extracted (empty stand-ins for the log-mel "
        "shards): every manifest compared with its files, one stat per file"
    )
    return [
        Verdict(
            f"prepare_meta of {big['utterances']:,} utterances",
            f"{big['prepare_meta_s']:.1f} s",
            "< 60 s",
            big["prepare_meta_s"] < 60,
        ),
        Verdict(
            f"snakemake --dry-run, {big['utterances']:,} utterances, {big['jobs']} jobs",
            f"{big['dry_run_median_s']:.2f} s (baseline {small['dry_run_median_s']:.2f} s)",
            "< 10 s (median of 2)",
            big["dry_run_median_s"] < 10,
        ),
        Verdict(
            f"snakemake --dry-run, re-run, {big['utterances']:,} utterances",
            f"{big['rerun_median_s']:.2f} s (baseline {small['rerun_median_s']:.2f} s)",
            "< 10 s (median of 2)",
            big["rerun_median_s"] < 10,
        ),
    ]


def measure(args: argparse.Namespace, tmp: Path, cpus: list[int]) -> list[Verdict]:
    n, n_shards = args.utterances, args.shards
    sizes = {
        "baseline": (n // BASELINE_DIVISOR, max(1, round(n_shards / BASELINE_DIVISOR))),
        "N": (n, n_shards),
    }
    db_cfg = {
        "feature_set": "logmel",
        "c_len": args.c_len,
        "max_steps": args.max_steps,
        "layout": "2d",
        "tasks": ["emotion"],
        "fold_by": "speaker",
        "n_folds": None,
    }
    t_max = args.max_steps // args.c_len
    say(
        f"\nInputs: synthetic utterances of {MIN_FRAMES}-{MAX_FRAMES} frames x {args.dims} dims "
        f"(float32), {N_SPEAKERS} speakers, {len(EMOTIONS)} emotions; baseline = 1/"
        f"{BASELINE_DIVISOR} of the utterances and of the shards"
    )
    say(
        f"Database: c_len {args.c_len}, max_steps {args.max_steps}, layout 2d, tasks [emotion], "
        f"leave-one-speaker-out; rows of ({t_max}, 1, {args.c_len}, {args.dims}) float32 = "
        f"{4 * t_max * args.c_len * args.dims / 1024:.2f} KB"
    )
    gen, builds, loaders = {}, {}, {}
    dbs = {}
    for label, (size, shards) in sizes.items():
        folder = tmp / f"{label}-{size}"
        say(f"\n[{label}] {size:,} utterances, {shards} shards")
        files, gen_s = generate(folder, f"synth{size}", size, shards, args.dims, args.seed, cpus)
        gen[label] = (gen_s, folder_bytes(folder), shards)
        say(
            f"   generated in {gen_s:.1f} s ({size / gen_s:,.0f} utt/s on {len(cpus)} CPUs), "
            f"{gen[label][1] / 1e9:.2f} GB"
        )
        os.sync()
        cfg = {
            **files,
            "label": label,
            "db": {**db_cfg, "corpora": [files["name"]]},
            "out": str(folder / "db.h5"),
            "profile": args.profile,
        }
        say(f"   load average before the build: {load_average()}")
        r = run_child("build", cfg, tmp)
        if r is None:
            return [Verdict("database build", "failed", "builds", False)]
        builds[label] = r
        dbs[label] = cfg["out"]
        say(
            f"   database built in {r['seconds']:.1f} s ({r['n_utterances'] / r['seconds']:,.0f} "
            f"rows/s), peak growth {growth_mb(r):.1f} MB, {r['db_bytes'] / 1e9:.2f} GB"
        )
        if "profile" in r:
            say("   cProfile of the build (own time):")
            say("\n".join("     " + line for line in r["profile"].strip().splitlines()[:40]))
        if args.keep is None:
            shutil.rmtree(folder / "features")
        os.sync()
    for rep in range(args.loader_repeats):
        for label in sizes:
            say(f"\n[{label}] loader run {rep + 1} (load average {load_average()})")
            cfg = {"label": label, "db": dbs[label], "seconds": args.loader_seconds}
            r = run_child("loader", cfg, tmp)
            if r is None:
                return [Verdict("training loader", "failed", "iterates", False)]
            r["max_growth_mb"] = max(growth_mb(r), loaders.get(label, {}).get("max_growth_mb", 0))
            rate = r["samples"] / r["seconds"]
            say(
                f"   {rate:,.0f} samples/s over {r['seconds']:.1f} s, "
                f"peak growth {growth_mb(r):.1f} MB"
            )
            best = loaders.get(label)
            if best is None or rate > best["samples"] / best["seconds"]:
                loaders[label] = r
            else:
                best["max_growth_mb"] = r["max_growth_mb"]
    return report(gen, builds, loaders, sizes)


def report(gen, builds, loaders, sizes) -> list[Verdict]:
    say("\nDatabase build (one subprocess per size, one core)")
    rows = []
    for label, r in builds.items():
        n = r["n_utterances"]
        rows.append(
            [
                label,
                f"{n:,}",
                gen[label][2],
                f"{gen[label][0]:.1f}",
                f"{gen[label][1] / 1e9:.2f}",
                f"{r['seconds']:.1f}",
                f"{n / r['seconds']:,.0f}",
                f"{r['cpu_seconds']:.1f} ({r['system_seconds']:.1f})",
                f"{n / r['cpu_seconds']:,.0f}",
                f"{r['setup_seconds']:.1f}",
                mb(r["rss_before_kb"]),
                f"{(r['hwm_first_kb'] - r['rss_before_kb']) / 1024:.1f}",
                f"{growth_mb(r):.1f}",
                f"{(growth_mb(r) * 2**20) / n:,.0f}",
                f"{r['db_bytes'] / 1e9:.2f}",
            ]
        )
    say(
        table(
            [
                "size",
                "utts",
                "shards",
                "gen s",
                "inputs GB",
                "build s",
                "rows/s",
                "CPU s (system)",
                "rows/CPU s",
                "set-up s",
                "RSS before MB",
                "set-up growth MB",
                "peak growth MB",
                "B/utt",
                "DB GB",
            ],
            rows,
        )
    )
    say(
        "   set-up = from the call to the first row written (meta by shard, shard scan, folds); "
        "set-up growth = peak RSS by then - RSS before"
    )
    say(f"   peak measured by {builds['N']['method']}")

    say("\nTraining input pipeline (ChunkedBatches, fold 0's training rows, streamed, no model)")
    rows = []
    for label, r in loaders.items():
        rows.append(
            [
                label,
                f"{r['n_rows']:,}",
                f"{r['n_train']:,}",
                "yes" if r["in_ram_by_train"] else "no",
                r["batch_size"],
                f"{r['setup_seconds']:.1f}",
                f"{r['batches']:,}",
                r["epochs"],
                f"{r['seconds']:.1f}",
                f"{r['samples'] / r['seconds']:,.0f}",
                mb(r["rss_before_kb"]),
                f"{(r['rss_before_kb'] - r['rss_start_kb']) / 1024:.1f}",
                f"{r['max_growth_mb']:.1f}",
            ]
        )
    say(
        table(
            [
                "size",
                "DB rows",
                "train rows",
                "train.py in RAM",
                "batch",
                "set-up s",
                "batches",
                "epochs",
                "s",
                "samples/s",
                "RSS before MB",
                "set-up MB",
                "peak growth MB",
            ],
            rows,
        )
    )
    say(
        "   set-up = read_info, split, training labels, class weights, ChunkedBatches; "
        "set-up MB = RSS after it - RSS at the child's start; train.py in RAM = whether "
        "train.prepare would hold the training rows in RAM (max_ram_mb) instead of streaming"
    )
    say(
        "   samples/s: the best of the runs per size; peak growth: the largest, while iterating "
        "(buffers of block_rows x buffer_blocks = 8,192 rows, prefetched batches, malloc arenas)"
    )
    if loaders["baseline"]["n_train"] < 8192:
        say(
            "   (the baseline's training rows are fewer than one 8,192-row buffer: its memory and "
            "speed are not comparable; use a larger --utterances)"
        )

    b, f = builds["baseline"], builds["N"]
    lb, lf = loaders["baseline"], loaders["N"]
    base_n, full_n = sizes["baseline"][0], sizes["N"][0]
    return [
        flat_verdict(f"DB build peak growth {base_n:,} -> {full_n:,}", growth_mb(b), growth_mb(f)),
        speed_verdict(
            "DB build rows per CPU second",
            b["n_utterances"] / b["cpu_seconds"],
            f["n_utterances"] / f["cpu_seconds"],
            "rows/CPU s",
        ),
        Verdict(
            "DB build rows/s (wall clock)",
            f"{b['n_utterances'] / b['seconds']:,.0f} -> {f['n_utterances'] / f['seconds']:,.0f} "
            f"rows/s ({b['seconds'] / b['n_utterances'] * f['n_utterances'] / f['seconds']:.2f}x)",
            "-",
            None,
        ),
        speed_verdict(
            "loader samples/s",
            lb["samples"] / lb["seconds"],
            lf["samples"] / lf["seconds"],
            "samples/s",
        ),
        flat_verdict(
            f"loader peak growth {base_n:,} -> {full_n:,}", lb["max_growth_mb"], lf["max_growth_mb"]
        ),
        Verdict(f"DB size at {full_n:,}", f"{f['db_bytes'] / 1e9:.2f} GB", "-", None),
    ]


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=None, help="default 1,000,000")
    parser.add_argument(
        "--shards", type=int, default=None, help=f"default {SHARDS_PER_MILLION} per million"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_UTTERANCES:,} utterances (a smoke run)"
    )
    parser.add_argument("--dims", type=int, default=8, help="feature dims (default 8)")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--c-len", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loader-seconds", type=float, default=None, help="default 15 (quick 5)")
    parser.add_argument(
        "--loader-repeats",
        type=int,
        default=2,
        help="loader runs per size, alternating (best kept)",
    )
    parser.add_argument("--keep", type=Path, help="keep inputs and databases in this new folder")
    parser.add_argument("--tmpdir", type=Path, help="where the temporary folder goes")
    parser.add_argument("--profile", action="store_true", help="cProfile each database build")
    parser.add_argument(
        "--skip-workflow", action="store_true", help="skip part 0 (prepare_meta, dry run)"
    )
    parser.add_argument("--build-child", help=argparse.SUPPRESS)
    parser.add_argument("--loader-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for kind, child in (("build", build_child), ("loader", loader_child)):
        path = getattr(args, f"{kind}_child")
        if path:
            print(json.dumps(child(json.loads(Path(path).read_text()))), flush=True)
            return 0
    if args.utterances is None:
        args.utterances = QUICK_UTTERANCES if args.quick else DEFAULT_UTTERANCES
    if args.shards is None:
        args.shards = max(1, round(args.utterances * SHARDS_PER_MILLION / 1_000_000))
    if args.loader_seconds is None:
        args.loader_seconds = 5.0 if args.quick else 15.0
    if args.utterances // BASELINE_DIVISOR < 256:
        parser.error(
            f"--utterances: at least {256 * BASELINE_DIVISOR} (the baseline's writer block)"
        )
    cpus = sorted(os.sched_getaffinity(0))
    started = header(
        f"deepser benchmark: {args.utterances:,} utterances, database build and training loader",
        ["numpy", "h5py", "pandas"],
        f"{args.utterances:,} utterances in {args.shards} shards; baseline 1/{BASELINE_DIVISOR}; "
        f"loader {args.loader_seconds:g} s per size",
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        tmp_ctx: Any = None
        tmp = args.keep
    else:
        tmp_ctx = tempfile.TemporaryDirectory(prefix="deepser-million-", dir=args.tmpdir)
        tmp = Path(tmp_ctx.name)
    free = shutil.disk_usage(tmp).free
    say(f"  working folder {tmp} ({free / 1e9:.0f} GB free)")
    try:
        verdicts = [] if args.skip_workflow else plan_workflow(args, tmp, cpus)
        verdicts += measure(args, tmp, cpus)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    summary(verdicts, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
