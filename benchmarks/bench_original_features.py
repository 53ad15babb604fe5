"""How much faster than the original toolkit do we extract ITS feature types? (one core)

The original toolkit's feature types with its settings (mel n_fft 512 / hop 512 / 80 bands /
fmax 8000, log-spec n_fft 512 / hop 128, raw waveform) at 22 050 Hz, measured in the same run
two ways, so the ratio does not depend on the machine:

- BASELINE = the original's way: ``librosa.load`` at 22 050 Hz, fixed-bound min-max gain to
  [0, 1], librosa feature, one ``numpy.savetxt`` ``;``-separated text file per utterance;
- OURS = ``load_audio`` (soundfile + soxr HQ) + ``apply_gain`` + ``extract`` + one H5 feature
  shard per corpus.

Targets for ours/baseline: mel >= 2x, log-spec >= 14x, raw >= 50x. ``check:`` lines confirm
that both ways give the same utterances and frames, and our values equal librosa's with the
same padding. Each timing is the best of ``--repeats`` runs; "x real time" = seconds of audio
per wall-clock second. Exit status 0 whatever the results (read the PASS/MISS column).

    .venv/bin/python benchmarks/bench_original_features.py [--quick] [--corpus emodb|demo|all]
        [--repeats 2]
"""

from __future__ import annotations

from _harness import single_thread_env

single_thread_env()  # one core: before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import (  # noqa: E402
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
from deepser.features.registry import resolve_spec  # noqa: E402

ORIGINAL_SR = 22050  # librosa.load's default rate, which the original toolkit relied on

# Fixed min-max bounds of the gain normalisation (the original's global min-max to [0, 1]).
GAIN_MIN, GAIN_MAX, GAIN_LO, GAIN_HI = -1.0, 1.0, 0.0, 1.0
MINMAX_GAIN = {
    "method": "minmax",
    "source": "fixed",
    "min": GAIN_MIN,
    "max": GAIN_MAX,
    "range": [GAIN_LO, GAIN_HI],
}

# Our specs equivalent to the original's settings (reflect padding as librosa < 0.10 had;
# the log-spec's per-utterance 80 dB floor as the original's amplitude_to_db had).
ORIGINAL_SPECS = {
    "mel": {"type": "mel", "win": 512, "hop": 512, "n_mels": 80, "fmax": 8000.0},
    "logspec": {"type": "logspec", "win": 512, "hop": 128, "top_db": 80.0},
    "raw": {"type": "raw"},
}
ORIGINAL_TARGETS = {"mel": 2.0, "logspec": 14.0, "raw": 50.0}  # ours / baseline
FEATURE_LABELS = {
    "mel": "mel (512/512, 80 bands)",
    "logspec": "log-spec (512/128)",
    "raw": "raw waveform",
}


def baseline_extract(files: Sequence[Path], kind: str, out_dir: Path) -> None:
    """The original DEEPSER extractor: librosa.load at 22 050 Hz, min-max gain, feature,
    one ``;``-separated ``%.8e`` text file per utterance, all in this one process."""
    import librosa

    scale = (GAIN_HI - GAIN_LO) / (GAIN_MAX - GAIN_MIN)
    for i, path in enumerate(files):
        y, sr = librosa.load(path)
        y = (y - GAIN_MIN) * scale + GAIN_LO
        if kind == "mel":
            feat = librosa.feature.melspectrogram(
                y=y, sr=sr, n_fft=512, hop_length=512, n_mels=80, fmax=8000
            ).T
        elif kind == "logspec":
            feat = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=512)) ** 2).T
        else:
            feat = y[:, None]
        np.savetxt(out_dir / f"{i:05d}_{path.stem}.csv", feat, fmt="%.8e", delimiter=";")


def original_spec(kind: str) -> dict[str, Any]:
    return resolve_spec({**ORIGINAL_SPECS[kind], "sample_rate": ORIGINAL_SR, "pad_mode": "reflect"})


def measure(corpora: list[Corpus], tmp: Path, repeats: int, verdicts: list[Verdict]) -> None:
    say("\nThe original's feature types and settings at 22 050 Hz: baseline vs ours")
    say("   baseline: librosa.load + min-max gain + librosa feature + numpy.savetxt per utterance")
    say("   ours:     load_audio (soxr HQ) + apply_gain + extract + one H5 shard per corpus")
    rows, checks = [], []
    for corpus in corpora:
        ids = corpus.utt_ids
        for kind in ("mel", "logspec", "raw"):
            spec = original_spec(kind)
            base_dir = tmp / f"base_{corpus.name}_{kind}"
            ours_h5 = tmp / f"ours_{corpus.name}_{kind}.h5"
            warm = tmp / "warm"
            fresh(warm)()
            baseline_extract(corpus.files[:3], kind, warm)  # imports, caches, first calls
            ours_extract(corpus.files[:3], ids[:3], spec, MINMAX_GAIN, warm / "w.h5")
            base = best_of(
                lambda c=corpus, k=kind, d=base_dir: baseline_extract(c.files, k, d),
                repeats,
                fresh(base_dir),
            )
            ours = best_of(
                lambda c=corpus, s=spec, o=ours_h5: ours_extract(
                    c.files, c.utt_ids, s, MINMAX_GAIN, o
                ),
                repeats,
                fresh(ours_h5),
            )
            base_bytes = sum(p.stat().st_size for p in base_dir.iterdir())
            ours_bytes = ours_h5.stat().st_size
            ratio = base.wall / ours.wall
            target = ORIGINAL_TARGETS[kind]
            rows.append(
                [
                    corpus.name,
                    FEATURE_LABELS[kind],
                    f"{base.wall:.2f}",
                    fmt_x(base.xrt(corpus.audio_s)),
                    f"{ours.wall:.3f}",
                    fmt_x(ours.xrt(corpus.audio_s)),
                    f"{ratio:.1f}x",
                    f">= {target:g}x",
                    "PASS" if ratio >= target else "MISS",
                    f"{base.cpu / base.wall:.2f}/{ours.cpu / ours.wall:.2f}",
                    f"{base_bytes / 1e6:.1f}/{ours_bytes / 1e6:.1f}",
                ]
            )
            verdicts.append(
                Verdict(
                    f"{corpus.name} {kind}: ours/baseline",
                    f"{ratio:.1f}x ({fmt_x(ours.xrt(corpus.audio_s))} vs "
                    f"{fmt_x(base.xrt(corpus.audio_s))} RT)",
                    f">= {target:g}x",
                    ratio >= target,
                )
            )
            checks.append(check(corpus, kind, base_dir, ours_h5))
            shutil.rmtree(base_dir)
    say(
        table(
            [
                "corpus",
                "feature",
                "base s",
                "base RT",
                "ours s",
                "ours RT",
                "ours/base",
                "target",
                "",
                "cpu/wall b/o",
                "MB b/o",
            ],
            rows,
        )
    )
    say("   s: best wall seconds of the whole corpus; RT: x real time; cpu/wall ~1.00 = one core;")
    say("   MB b/o: size of the baseline's text files / of our H5 shard.")
    for line in checks:
        say("   check: " + line)


def check(corpus: Corpus, kind: str, base_dir: Path, ours_h5: Path) -> str:
    """Same frame counts as the baseline; values equal to librosa's with the same padding."""
    import h5py
    import librosa

    first = sorted(base_dir.iterdir())[0]
    base = np.loadtxt(first, delimiter=";", ndmin=2)
    with h5py.File(ours_h5, "r") as h5:
        n_utts = len(h5["utt_id"])
        offsets = h5["offsets"][:2]
        ours = h5["feat"][offsets[0] : offsets[1]]
    problems = []
    if n_utts != len(corpus.files):
        problems.append(f"{n_utts} utterances in the H5, {len(corpus.files)} files")
    if base.shape[1] != ours.shape[1] or abs(base.shape[0] - ours.shape[0]) > 1:
        problems.append(f"shape {ours.shape} vs baseline {base.shape}")
    # soxr's and librosa's resampled lengths may differ by one sample (hence one frame)
    shapes = f"first utt {ours.shape} vs baseline {base.shape}"
    n = min(base.shape[0], ours.shape[0])
    base, ours = base[:n], ours[:n]
    y = apply_gain(load_audio(corpus.files[0], ORIGINAL_SR), MINMAX_GAIN)
    if kind == "mel":
        ref = librosa.feature.melspectrogram(
            y=y, sr=ORIGINAL_SR, n_fft=512, hop_length=512, n_mels=80, fmax=8000, pad_mode="reflect"
        ).T[:n]
        err = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
        detail = f"max |ours - librosa(reflect)| / max = {err:.1e}"
        if err > 1e-4:
            problems.append(detail)
    elif kind == "logspec":
        power = np.abs(librosa.stft(y, n_fft=512, hop_length=128, pad_mode="reflect")) ** 2
        ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0).T[:n]
        err = float(np.max(np.abs(ours - ref)))
        detail = f"max |ours - librosa power_to_db(reflect, top_db 80)| = {err:.1e} dB"
        if err > 1e-2:
            problems.append(detail)
    else:
        err = float(np.max(np.abs(ours - base)))
        detail = f"max |ours - baseline| = {err:.1e}"
        if err > 1e-6:
            problems.append(detail)
    status = "ok" if not problems else "PROBLEM: " + "; ".join(problems)
    return f"{corpus.name} {kind}: {n_utts} utts in the H5; {shapes}; {detail}; {status}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_args(parser)
    args = parser.parse_args(argv)
    return run_on_corpora(
        args,
        "deepser benchmark: the original toolkit's feature types, baseline vs ours",
        ["numpy", "librosa", "soxr", "h5py", "soundfile"],
        runs_line(args.repeats, args.quick),
        lambda corpora, tmp, verdicts: measure(corpora, tmp, args.repeats, verdicts),
    )


if __name__ == "__main__":
    sys.exit(main())
