"""Does ``build_database``'s peak memory stay flat when the corpus grows 4 times? (one core)

The inputs are the first corpus (EmoDB when present, else the demo corpus) and the same corpus
repeated 4 times with distinct utt_ids: feature shards made with the workflow's
``extract_shard`` (log-mel 16 kHz, 4 shards), a normalised meta TSV and a vocab JSON. Each size
is built (c_len 10, max_steps 200, layout 2d, leave-one-speaker-out) in its own subprocess, so
each peak is its own. Growth = peak RSS during the build - RSS right before it; the target is
flat: growth(4x) <= 1.2 x growth(1x) + 4 MB. ``--quick`` does not shrink the corpus: with fewer
rows than the database writer's block (256), 1x and 4x would not be comparable. Exit status 0
whatever the result (read the PASS/MISS line).

    .venv/bin/python benchmarks/bench_database_memory.py [--corpus emodb|demo|all]
"""

from __future__ import annotations

from _harness import single_thread_env

single_thread_env()  # one core: before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import csv  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _harness import (  # noqa: E402
    LOGMEL_CFG,
    NO_GAIN,
    Corpus,
    PeakSampler,
    Verdict,
    add_corpus_args,
    reset_peak,
    run_on_corpora,
    say,
    status_kb,
    table,
)

# The database settings of EmoDB.
DB_CFG = {
    "feature_set": "logmel",
    "c_len": 10,
    "max_steps": 200,
    "layout": "2d",
    "tasks": ["emotion"],
    "fold_by": "speaker",
    "n_folds": None,
}
MEMORY_SIZES = (1, 4)
MEMORY_SLACK_MB = 4.0  # allowed growth of the build's peak from 1x to 4x, besides 20 %


def memory_child(config_path: str) -> None:
    """Child process: build one database and print its peak RSS growth as JSON."""
    cfg = json.loads(Path(config_path).read_text())
    from deepser.database.build import CorpusInput, build_database

    corpus = CorpusInput(
        cfg["name"],
        meta=Path(cfg["meta"]),
        vocab=Path(cfg["vocab"]),
        shards=tuple(Path(p) for p in cfg["shards"]),
        rejected=None,
    )
    gc.collect()
    rss_before = status_kb("VmRSS")
    method = "VmHWM reset"
    t0 = time.perf_counter()
    if reset_peak():
        attrs = build_database([corpus], cfg["db"], Path(cfg["out"]))
        peak = status_kb("VmHWM")
    else:
        method = "VmRSS sampled every 1 ms"
        with PeakSampler() as sampler:
            attrs = build_database([corpus], cfg["db"], Path(cfg["out"]))
        peak = sampler.peak
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rss_before_kb": rss_before,
                "peak_kb": peak,
                "seconds": wall,
                "n_utterances": attrs["n_utterances"],
                "db_bytes": Path(cfg["out"]).stat().st_size,
                "method": method,
            }
        )
    )


def prepare_inputs(corpus: Corpus, copies: int, folder: Path) -> dict[str, Any]:
    """Feature shards (the workflow's extract_shard, 4 shards), normalised meta and vocab for
    ``copies`` repetitions of the corpus with distinct utt_ids."""
    from deepser.corpus.meta import shard_of
    from deepser.features.extraction import extract_shard
    from deepser.features.registry import resolve_spec

    folder.mkdir(parents=True)
    spec = resolve_spec(LOGMEL_CFG)
    n_shards = 4
    records = []
    for k in range(copies):
        for utt, path, emo, spk in zip(
            corpus.utt_ids, corpus.files, corpus.emotion, corpus.speaker, strict=True
        ):
            utt_id = f"copy{k}/{utt}"
            records.append((utt_id, str(path), shard_of(utt_id, n_shards), emo, spk))
    shards = []
    for s in range(n_shards):
        rows = [(u, a) for u, a, sh, _, _ in records if sh == s]
        if rows:
            out = folder / f"shard{s}.h5"
            extract_shard(rows, spec, NO_GAIN, out)
            shards.append(str(out))
    meta = folder / "meta.tsv"
    with meta.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["utt_id", "audio", "shard", "line", "emotion", "speaker"])
        for line, (u, a, sh, emo, spk) in enumerate(records, start=2):
            writer.writerow([u, a, sh, line, emo, spk])
    vocab = folder / "vocab.json"
    vocab.write_text(
        json.dumps(
            {
                "emotion": {"type": "categorical", "classes": sorted(set(corpus.emotion))},
                "speaker": {"type": "categorical", "classes": sorted(set(corpus.speaker))},
            }
        )
    )
    return {
        "name": corpus.name,
        "meta": str(meta),
        "vocab": str(vocab),
        "shards": shards,
        "db": {**DB_CFG, "corpora": [corpus.name]},
        "out": str(folder / "db.h5"),
    }


def measure(corpus: Corpus, tmp: Path, verdicts: list[Verdict], quick: bool) -> None:
    say(
        f"\nPeak memory of build_database ({corpus.name}, log-mel 16 kHz, c_len "
        f"{DB_CFG['c_len']}, max_steps {DB_CFG['max_steps']}, layout {DB_CFG['layout']}, "
        "leave-one-speaker-out)"
    )
    say("   one subprocess per size; growth = peak RSS during the build - RSS right before it")
    if corpus.name != "emodb":
        say("   (EmoDB is not measured in this run: this figure uses the demo corpus)")
    if quick:
        say(f"   (--quick does not apply here: all {len(corpus.files)} files of the corpus)")
    results = {}
    for copies in MEMORY_SIZES:
        cfg = prepare_inputs(corpus, copies, tmp / f"mem{copies}x")
        cfg_path = tmp / f"mem{copies}x.json"
        cfg_path.write_text(json.dumps(cfg))
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(cfg_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            say(f"   {copies}x: the build failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            verdicts.append(Verdict(f"{corpus.name} DB build memory", "failed", "flat", False))
            return
        results[copies] = json.loads(proc.stdout.strip().splitlines()[-1])
        shutil.rmtree(tmp / f"mem{copies}x")
    rows = []
    for copies, r in results.items():
        growth = (r["peak_kb"] - r["rss_before_kb"]) / 1024
        rows.append(
            [
                f"{copies}x",
                r["n_utterances"],
                f"{r['rss_before_kb'] / 1024:.1f}",
                f"{r['peak_kb'] / 1024:.1f}",
                f"{growth:.1f}",
                f"{r['db_bytes'] / 1e6:.1f}",
                f"{r['seconds']:.2f}",
            ]
        )
    say(
        table(
            ["size", "utts", "RSS before MB", "peak MB", "growth MB", "DB size MB", "build s"],
            rows,
        )
    )
    g1, g4 = ((results[c]["peak_kb"] - results[c]["rss_before_kb"]) / 1024 for c in MEMORY_SIZES)
    extra_db = (results[4]["db_bytes"] - results[1]["db_bytes"]) / 1e6
    ok = g4 <= 1.2 * g1 + MEMORY_SLACK_MB
    ratio = g4 / g1 if g1 > 0 else float("inf")
    say(
        f"   growth 4x / 1x = {ratio:.2f} ({g4 - g1:+.1f} MB for {extra_db:.1f} MB more DB); "
        f"flat means growth(4x) <= 1.2 x growth(1x) + {MEMORY_SLACK_MB:g} MB: "
        + ("PASS" if ok else "MISS")
    )
    say(f"   peak measured by {results[1]['method']}")
    verdicts.append(
        Verdict(
            f"{corpus.name} DB build peak growth 1x -> 4x",
            f"{g1:.1f} -> {g4:.1f} MB ({ratio:.2f}x; DB {results[1]['db_bytes'] / 1e6:.0f} -> "
            f"{results[4]['db_bytes'] / 1e6:.0f} MB)",
            f"flat (<= 1.2x + {MEMORY_SLACK_MB:g} MB)",
            ok,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_args(parser, repeats=False)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    # Always the whole first corpus: with fewer rows than the database writer's block (256),
    # 1x and 4x would not be comparable.
    return run_on_corpora(
        args,
        "deepser benchmark: peak memory of build_database, 1x vs 4x corpus",
        ["numpy", "h5py", "soundfile"],
        "each size built once, in its own subprocess (which inherits the pinning)",
        lambda corpora, tmp, verdicts: measure(corpora[0], tmp, verdicts, args.quick),
        first_only=True,
    )


if __name__ == "__main__":
    sys.exit(main())
