"""How fast is our default log-mel end to end, and where does its time go? (one core)

The workflow's default feature set (``config/config.yaml``: 16 kHz, 25 ms / 10 ms, 40 mels,
gain none) timed end to end: load + resample + feature + H5 write, one shard per corpus
(target >= 800x real time). A second pass times loading/resampling, features and the H5 write
separately and gives each one's share; ``--profile`` adds a cProfile of the pass. Each timing is
the best of ``--repeats`` runs; "x real time" = seconds of audio per wall-clock second. Exit
status 0 whatever the result (read the PASS/MISS column).

    .venv/bin/python benchmarks/bench_logmel.py [--quick] [--corpus emodb|demo|all]
        [--repeats 2] [--profile]
"""

from __future__ import annotations

from _harness import single_thread_env

single_thread_env()  # one core: before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _harness import (  # noqa: E402
    LOGMEL_CFG,
    NO_GAIN,
    Corpus,
    Verdict,
    add_corpus_args,
    best_of,
    fmt_x,
    fresh,
    ours_extract,
    run_on_corpora,
    runs_line,
    say,
    table,
)

from deepser.corpus.audio import load_audio  # noqa: E402
from deepser.corpus.gain import apply_gain  # noqa: E402
from deepser.features.registry import extract, resolve_spec  # noqa: E402
from deepser.features.shards import write_feature_shard  # noqa: E402

LOGMEL_TARGET = 800.0  # x real time


def measure(
    corpora: list[Corpus], tmp: Path, repeats: int, verdicts: list[Verdict], profile: bool
) -> None:
    spec = resolve_spec(LOGMEL_CFG)
    say(
        "\nOur default log-mel: 16 kHz, 25 ms / 10 ms, 40 mels, gain none "
        f"(n_fft {spec['n_fft']}, win {spec['win_length']}, hop {spec['hop_length']})"
    )
    say("   end to end = load + resample + feature + H5 write, one shard per corpus")
    rows, parts = [], []
    for corpus in corpora:
        out = tmp / f"logmel_{corpus.name}.h5"
        ours_extract(corpus.files[:3], corpus.utt_ids[:3], spec, NO_GAIN, tmp / "warm.h5")
        t = best_of(
            lambda c=corpus, o=out: ours_extract(c.files, c.utt_ids, spec, NO_GAIN, o),
            repeats,
            fresh(out),
        )
        xrt = t.xrt(corpus.audio_s)
        resampled = "yes" if corpus.sample_rate != spec["sample_rate"] else "no"
        rows.append(
            [
                corpus.name,
                f"{corpus.sample_rate} Hz",
                resampled,
                f"{t.wall:.3f}",
                fmt_x(xrt),
                f">= {LOGMEL_TARGET:g}x",
                "PASS" if xrt >= LOGMEL_TARGET else "MISS",
                f"{t.cpu / t.wall:.2f}",
                f"{1e3 * t.wall / len(corpus.files):.2f}",
            ]
        )
        verdicts.append(
            Verdict(
                f"{corpus.name} log-mel 16 kHz end to end",
                fmt_x(xrt) + " RT",
                f">= {LOGMEL_TARGET:g}x RT",
                xrt >= LOGMEL_TARGET,
            )
        )

        # Second pass: the three stages timed separately (all audio in memory in between).
        box: dict[str, Any] = {}

        def load(c: Corpus = corpus, box: dict = box) -> None:
            box["y"] = [load_audio(p, spec["sample_rate"]) for p in c.files]

        def feat(c: Corpus = corpus, box: dict = box) -> None:
            box["f"] = [
                (u, extract(apply_gain(y, NO_GAIN), spec))
                for u, y in zip(c.utt_ids, box["y"], strict=True)
            ]

        def write(o: Path = out, box: dict = box) -> None:
            write_feature_shard(o, box["f"], {"feature_spec": spec, "gain": NO_GAIN})

        t_load = best_of(load, repeats)
        t_feat = best_of(feat, repeats)
        t_write = best_of(write, repeats, fresh(out))
        total = t_load.wall + t_feat.wall + t_write.wall
        n_frames = sum(f.shape[0] for _, f in box["f"])
        box.clear()
        for stage, st in (
            ("load + resample", t_load),
            ("feature", t_feat),
            ("H5 write", t_write),
        ):
            parts.append(
                [
                    corpus.name,
                    stage,
                    f"{st.wall:.3f}",
                    f"{100 * st.wall / total:.0f}%",
                    fmt_x(st.xrt(corpus.audio_s)),
                ]
            )
        parts.append(
            [
                corpus.name,
                "sum of stages",
                f"{total:.3f}",
                "100%",
                fmt_x(corpus.audio_s / total),
            ]
        )
        parts.append(
            [corpus.name, f"(end to end, {n_frames} frames)", f"{t.wall:.3f}", "", fmt_x(xrt)]
        )
    say(
        table(
            ["corpus", "audio", "resampled", "s", "x RT", "target", "", "cpu/wall", "ms/utt"],
            rows,
        )
    )
    say("\n   where the time goes (second pass, each stage timed alone, best of repeats):")
    say(table(["corpus", "stage", "s", "share", "x RT"], parts))
    if profile:
        corpus = corpora[0]
        prof = cProfile.Profile()
        prof.enable()
        ours_extract(corpus.files, corpus.utt_ids, spec, NO_GAIN, tmp / "profile.h5")
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
        say(f"\n   cProfile of the {corpus.name} log-mel pass (sorted by own time):")
        say("\n".join("   " + line for line in buf.getvalue().strip().splitlines()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_args(parser)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the log-mel pass of the first corpus"
    )
    args = parser.parse_args(argv)
    return run_on_corpora(
        args,
        "deepser benchmark: our default log-mel end to end",
        ["numpy", "soxr", "h5py", "soundfile"],
        runs_line(args.repeats, args.quick),
        lambda corpora, tmp, verdicts: measure(corpora, tmp, args.repeats, verdicts, args.profile),
    )


if __name__ == "__main__":
    sys.exit(main())
