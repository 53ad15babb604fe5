"""Cost of the ``functionals`` feature type on ONE core, against log-mel measured in the same run.

For each file (EmoDB from ../shared when present, else a generated demo corpus):
load + resample once, then time ``extract`` for the default log-mel and for the default
functionals with each F0 tracker (``f0_method``: ``yin``, the default, ``pyin``, and ``none``),
and each tracker on its own. Prints seconds of audio per wall-clock second ("x real time") for
each, the cost ratio functionals / log-mel and the tracker's share, plus the per-segment time of a
2 s utterance (what the recogniser adds per segment), and whether functionals reach the target of
100x real time on one core with the default tracker.

    .venv/bin/python benchmarks/bench_functionals.py [--files 80] [--repeats 3]
"""

from __future__ import annotations

from _harness import single_thread_env

single_thread_env()  # one core: before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _harness import (  # noqa: E402
    Verdict,
    best_of,
    demo_corpus,
    emodb_corpus,
    fmt_x,
    header,
    say,
    summary,
    table,
)

from deepser.corpus.audio import load_audio  # noqa: E402
from deepser.features.functionals import F0_METHODS, log_f0  # noqa: E402
from deepser.features.registry import extract, resolve_spec  # noqa: E402
from deepser.features.spectral import power_spectrogram  # noqa: E402

SR = 16000
TARGET_XRT = 100.0  # functionals with the default F0 tracker, seconds of audio per second


def corpus_files(n: int, tmp: Path) -> tuple[str, list[Path]]:
    """The first ``n`` files of EmoDB, else of a demo corpus (2 speakers) synthesised in ``tmp``."""
    corpus = emodb_corpus()
    if corpus is not None:
        return "EmoDB", corpus.files[:n]
    return "demo corpus", demo_corpus(tmp / "demo", n_speakers=2).files[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    started = header(
        "functionals extraction",
        ["numpy", "scipy", "librosa"],
        f"best of {args.repeats} runs over the files",
    )
    with tempfile.TemporaryDirectory(prefix="bench-functionals-") as tmp:
        name, files = corpus_files(args.files, Path(tmp))
        audio = [load_audio(f, SR) for f in files]
    seconds = sum(len(y) for y in audio) / SR
    say(f"  {name}: {len(files)} files, {seconds:.1f} s of audio")
    logmel = resolve_spec({"type": "logmel", "sample_rate": SR})
    default = resolve_spec({"type": "functionals", "sample_rate": SR})
    specs = {
        m: resolve_spec({"type": "functionals", "sample_rate": SR, "f0_method": m})
        for m in F0_METHODS
    }
    frames = [power_spectrogram(y, default).shape[0] for y in audio]  # outside the timings

    t_logmel = best_of(lambda: [extract(y, logmel) for y in audio], args.repeats).wall
    rows, xrt = [["log-mel (default)", fmt_x(seconds / t_logmel), "1x", "", ""]], {}
    two_s = np.resize(audio[0], 2 * SR)
    for method, spec in specs.items():
        t_func = best_of(lambda spec=spec: [extract(y, spec) for y in audio], args.repeats).wall
        t_f0 = best_of(
            lambda spec=spec: [log_f0(y, n, spec) for y, n in zip(audio, frames, strict=True)],
            args.repeats,
        ).wall
        t_segment = best_of(lambda spec=spec: extract(two_s, spec), max(args.repeats, 5)).wall
        xrt[method] = seconds / t_func
        label = f"functionals, f0_method {method}" + (
            " (default)" if method == default["f0_method"] else ""
        )
        rows.append(
            [
                label,
                fmt_x(seconds / t_func),
                f"{t_func / t_logmel:.1f}x",
                f"{t_f0 / t_func:.0%}",
                f"{t_segment * 1000:.1f}",
            ]
        )
    say(
        table(
            ["feature", "x real time", "cost / log-mel", "F0 share", "ms per 2 s segment"],
            rows,
        )
    )
    method = default["f0_method"]
    verdicts = [
        Verdict(
            f"functionals (f0_method {method}, default) x real time, 1 core",
            fmt_x(xrt[method]),
            f">= {TARGET_XRT:.0f}x",
            xrt[method] >= TARGET_XRT,
        )
    ]
    verdicts += [
        Verdict(f"functionals (f0_method {m}) x real time, 1 core", fmt_x(v), "", None)
        for m, v in xrt.items()
        if m != method
    ]
    verdicts.append(
        Verdict(
            f"speed-up of f0_method {method} over pyin",
            f"{xrt[method] / xrt['pyin']:.1f}x",
            "",
            None,
        )
    )
    summary(verdicts, started)


if __name__ == "__main__":
    main()
