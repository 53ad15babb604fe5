"""Workflow scale: `snakemake --dry-run` on a generated corpus of 20,000 utterances, 10 folds.

What a user waits for before a cluster run starts: the DAG of the whole workflow (meta
checkpoint, one extraction job per shard, the database, one training and one evaluation job per
fold, the summary, the final model). The corpus is generated: every utterance is a tiny but valid
wav file (16 samples), 10 speakers (leave-one-speaker-out: 10 folds), 4 emotions. The meta
checkpoint (`prepare_meta`, which checks every audio header) is run for real first, as it is
after the first invocation on a real corpus; its time is printed too. Then the dry run of the
whole workflow is timed (best and median of ``--repeats``) and its job count read from
Snakemake's job table. Nothing is extracted yet then, so no shard's manifest is compared with
its audio files; the re-run dry runs that follow have every shard extracted (empty files stand in
for the log-mel shards), so every manifest is compared (one ``stat`` per audio file). The
baseline, measured in the same run the same way, is a corpus of the demo's size (320
utterances, 8 speakers, 4 shards): the ratio shows how the dry run scales.

Targets: both dry runs under 10 s, and no job per utterance: fewer jobs than 2 per shard (one per
feature set: the log-mel and the classic baseline's functionals) + 100. Exit status 0 whatever
the result (read the PASS/MISS line).

    .venv/bin/python benchmarks/bench_dryrun.py [--utterances 20000] [--shards 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from _harness import Verdict

from deepser.corpus.demo import EMOTIONS

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def make_corpus(root: Path, n_utterances: int, n_speakers: int) -> Path:
    """Tiny valid wav files and their meta file (speakers and emotions round robin)."""
    root.mkdir(parents=True)
    template = root / "template.wav"
    sf.write(template, np.zeros(16, np.float32), 16000, subtype="PCM_16")
    data = template.read_bytes()
    lines = ["path\temotion\tspeaker"]
    for s in range(n_speakers):
        (root / f"wav/spk{s:02d}").mkdir(parents=True)
    for i in range(n_utterances):
        speaker = f"spk{i % n_speakers:02d}"
        rel = f"wav/{speaker}/u{i:06d}.wav"
        (root / rel).write_bytes(data)
        lines.append(f"{rel}\t{EMOTIONS[(i // n_speakers) % len(EMOTIONS)]}\t{speaker}")
    meta = root / "meta.tsv"
    meta.write_text("\n".join(lines) + "\n")
    return meta


def config(meta: Path, n_shards: int) -> dict:
    return {
        "corpora": {
            "big": {
                "meta": str(meta),
                "n_shards": n_shards,
                "columns": {"emotion": "emotion", "speaker": "speaker"},
            }
        },
        "feature_sets": {"logmel": {"type": "logmel", "sample_rate": 16000}},
        "databases": {
            "big_logmel": {
                "corpora": ["big"],
                "feature_set": "logmel",
                "c_len": 10,
                "max_steps": 300,
                "tasks": ["emotion"],
                "fold_by": "speaker",  # leave-one-speaker-out
            }
        },
        "experiments": {"big": {"database": "big_logmel", "tasks": {"emotion": 1.0}}},
    }


def snakemake(work: Path, *args: str) -> tuple[float, str]:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work)]
    cmd += ["--configfile", str(work / "config.yaml"), "--cores", "2", *args]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{out[-4000:]}")
    return seconds, out


def job_table(out: str) -> dict[str, int]:
    jobs = {}
    for line in out.split("Job stats:", 1)[1].splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        jobs[match.group(1)] = int(match.group(2))
    return jobs


def measure(root: Path, n_utterances: int, n_speakers: int, n_shards: int, repeats: int):
    root.mkdir(parents=True)
    started = time.perf_counter()
    meta = make_corpus(root / "corpus", n_utterances, n_speakers)
    generate = time.perf_counter() - started
    (root / "config.yaml").write_text(yaml.safe_dump(config(meta, n_shards), sort_keys=False))
    first, _ = snakemake(root, "--dry-run")  # before the checkpoint: plans only up to it
    checkpoint, _ = snakemake(root, "results/corpora/big/meta.tsv")
    times, out = [], ""
    for _ in range(repeats):
        seconds, out = snakemake(root, "--dry-run")
        times.append(seconds)
    jobs = job_table(out)
    rerun = rerun_dry_runs(root, n_shards, repeats)
    return {
        "utterances": n_utterances,
        "folds": jobs.get("train_fold", 0),
        "shards": jobs.get("extract_features", 0),
        "jobs": jobs["total"],
        "generate_s": generate,
        "first_dry_run_s": first,
        "prepare_meta_s": checkpoint,
        "dry_run_best_s": min(times),
        "dry_run_median_s": statistics.median(times),
        "rerun_best_s": min(rerun),
        "rerun_median_s": statistics.median(rerun),
        "table": jobs,
    }


def rerun_dry_runs(root: Path, n_shards: int, repeats: int) -> list[float]:
    """Dry runs as on a re-run, every shard already extracted: each shard's manifest is then
    compared with its audio files (one stat per file, the shards without outputs are not).
    Empty files stand in for the log-mel shards (the tiny wav files cannot be extracted); they
    are removed afterwards."""
    folder = root / "results/corpora/big/features/logmel"
    folder.mkdir(parents=True)
    for k in range(n_shards):
        (folder / f"shard-{k}.h5").touch()
    try:
        return [snakemake(root, "--dry-run")[0] for _ in range(repeats)]
    finally:
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--utterances", type=int, default=20000)
    parser.add_argument("--speakers", type=int, default=10, help="= folds (leave-one-out)")
    parser.add_argument("--shards", type=int, default=64, help="feature shards (jobs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-seconds", type=float, default=10.0)
    parser.add_argument("--max-jobs", type=int, help="default: 2 per shard + 100")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="deepser-bench-dryrun-"))
    try:
        small = measure(base / "demo-size", 320, 8, 4, args.repeats)
        big = measure(base / "large", args.utterances, args.speakers, args.shards, args.repeats)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)

    print("snakemake --dry-run of the whole workflow (after the meta checkpoint has run)")
    print(
        f"{'corpus':<9} {'utterances':>10} {'folds':>5} {'shards':>6} {'jobs':>5} "
        f"{'dry run best':>12} {'median':>7} {'re-run median':>13} "
        f"{'prepare_meta':>12} {'1st dry run':>11}"
    )
    for name, r in (("baseline", small), ("large", big)):
        print(
            f"{name:<9} {r['utterances']:>10} {r['folds']:>5} {r['shards']:>6} {r['jobs']:>5} "
            f"{r['dry_run_best_s']:>11.2f}s {r['dry_run_median_s']:>6.2f}s "
            f"{r['rerun_median_s']:>12.2f}s "
            f"{r['prepare_meta_s']:>11.2f}s {r['first_dry_run_s']:>10.2f}s"
        )
    print(
        "dry run: nothing extracted yet; re-run: every shard extracted (its manifest compared "
        "with its files); 1st dry run: before the meta checkpoint"
    )
    print(f"jobs of the large run: {big['table']}")
    ratio = big["dry_run_median_s"] / small["dry_run_median_s"]
    print(
        f"ratio large/baseline (median dry run): {ratio:.2f}x for "
        f"{big['utterances'] / small['utterances']:.0f}x the utterances"
    )
    max_jobs = args.max_jobs or 2 * args.shards + 100
    slowest = max(big["dry_run_median_s"], big["rerun_median_s"])
    ok = slowest < args.target_seconds and big["jobs"] < max_jobs
    judged = Verdict(
        f"snakemake --dry-run of {big['utterances']} utterances, {big['folds']} folds",
        f"{big['dry_run_median_s']:.2f} s, re-run {big['rerun_median_s']:.2f} s, "
        f"{big['jobs']} jobs",
        f"< {args.target_seconds:g} s each, < {max_jobs} jobs",
        ok,
    )
    print(judged.line())


if __name__ == "__main__":
    main()
