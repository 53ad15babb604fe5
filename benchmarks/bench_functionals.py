"""Cost of the ``functionals`` feature type on ONE core, against log-mel measured in the same run.

For each file (EmoDB from ../shared when present, else a generated demo corpus):
load + resample once, then time ``extract`` for the default log-mel and for the default
functionals, and the pYIN F0 tracking inside functionals on its own. Prints seconds of audio per
wall-clock second ("x real time") for each, the cost ratio functionals / log-mel and pYIN's
share, plus the per-segment time of a 2 s utterance (what the recogniser adds per segment).

    .venv/bin/python benchmarks/bench_functionals.py [--files 80] [--repeats 3]
"""

from __future__ import annotations

from _harness import single_thread_env

single_thread_env()  # one core: before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _harness import best_of, demo_corpus, emodb_corpus  # noqa: E402

from deepser.corpus.audio import load_audio  # noqa: E402
from deepser.features.functionals import log_f0  # noqa: E402
from deepser.features.registry import extract, resolve_spec  # noqa: E402
from deepser.features.spectral import power_spectrogram  # noqa: E402

SR = 16000


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
    with tempfile.TemporaryDirectory(prefix="bench-functionals-") as tmp:
        name, files = corpus_files(args.files, Path(tmp))
        audio = [load_audio(f, SR) for f in files]
    seconds = sum(len(y) for y in audio) / SR
    logmel = resolve_spec({"type": "logmel", "sample_rate": SR})
    func = resolve_spec({"type": "functionals", "sample_rate": SR})

    frames = [power_spectrogram(y, func).shape[0] for y in audio]  # outside the timings

    t_logmel = best_of(lambda: [extract(y, logmel) for y in audio], args.repeats).wall
    t_func = best_of(lambda: [extract(y, func) for y in audio], args.repeats).wall
    t_pitch = best_of(
        lambda: [log_f0(y, n, func) for y, n in zip(audio, frames, strict=True)], args.repeats
    ).wall
    two_s = np.resize(audio[0], 2 * SR)
    t_segment = best_of(lambda: extract(two_s, func), max(args.repeats, 5)).wall
    print(f"{name}: {len(files)} files, {seconds:.1f} s of audio, 1 core, best of {args.repeats}")
    print(f"  log-mel (default)        {seconds / t_logmel:9.0f}x real time")
    print(f"  functionals (default)    {seconds / t_func:9.1f}x real time")
    print(f"  cost ratio functionals / log-mel: {t_func / t_logmel:.0f}x")
    print(f"  pYIN share of functionals: {t_pitch / t_func:.0%}")
    print(f"  one 2 s segment: {t_segment * 1000:.0f} ms of functionals")


if __name__ == "__main__":
    main()
