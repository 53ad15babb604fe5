"""Feature-extraction throughput and database-build memory on ONE core (run by ``make bench``).

Every figure is measured in the same run as its baseline, so ratios do not depend on the machine:

1. The original toolkit's feature types with its settings (mel n_fft 512 / hop 512 / 80 bands /
   fmax 8000, log-spec n_fft 512 / hop 128, raw waveform) at 22 050 Hz. BASELINE = the original's
   way (``librosa.load`` at 22 050 Hz, fixed-bound min-max gain to [0, 1], librosa feature, one
   ``numpy.savetxt`` ``;``-separated text file per utterance); OURS = ``load_audio`` (soundfile +
   soxr HQ) + ``apply_gain`` + ``extract`` + one H5 feature shard per corpus.
2. Our default log-mel (16 kHz, 25 ms / 10 ms, 40 mels) end to end, then a second pass that times
   loading/resampling, features and the H5 write separately.
3. Peak RSS growth of ``build_database`` for a corpus and for the same corpus repeated 4 times
   (one subprocess per size, so each peak is its own).

Figures are "x real time" = seconds of audio processed per wall-clock second (higher is better).
Each timing is the best of ``--repeats`` runs. Exit status is 0 whatever the results.

    .venv/bin/python benchmarks/bench_features.py [--quick] [--corpus emodb|demo|all]
"""

from __future__ import annotations

import os
import sys

# One core: the thread-count variables must be set before numpy (and its BLAS) is imported.
# OPENBLAS_CORETYPE is deliberately left as it is (it selects kernels, not threads).
_SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",  # no progress bars from the library's loops in the tables
}
os.environ.update(_SINGLE_THREAD_ENV)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import csv  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from deepser.audio import load_audio  # noqa: E402
from deepser.features import extract, resolve_spec  # noqa: E402
from deepser.gain import apply_gain  # noqa: E402
from deepser.h5db import write_feature_shard  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "corpora" / "emodb"
QUICK_FILES = 100
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
NO_GAIN = {"method": "none"}

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

# The workflow's default feature set (config/config.yaml) and the database settings of EmoDB.
LOGMEL_CFG = {
    "type": "logmel",
    "sample_rate": 16000,
    "win": "25ms",
    "hop": "10ms",
    "n_mels": 40,
    "fmin": 0.0,
    "fmax": 8000.0,
}
LOGMEL_TARGET = 800.0  # x real time
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


# ----------------------------------------------------------------------------- corpora


@dataclass
class Corpus:
    name: str
    files: list[Path]
    utt_ids: list[str]
    emotion: list[str]
    speaker: list[str]
    sample_rate: int = 0
    audio_s: float = 0.0
    note: str = ""

    def head(self, n: int) -> Corpus:
        return Corpus(
            self.name,
            self.files[:n],
            self.utt_ids[:n],
            self.emotion[:n],
            self.speaker[:n],
            note=self.note,
        )

    def measure_audio(self) -> None:
        rates, total = set(), 0.0
        for path in self.files:
            info = sf.info(str(path))
            rates.add(int(info.samplerate))
            total += info.frames / info.samplerate
        self.sample_rate = rates.pop() if len(rates) == 1 else 0
        self.audio_s = total


def read_corpus(name: str, meta: Path, note: str = "") -> Corpus:
    """Files and labels of a named-column meta TSV (``path`` relative to the meta's folder)."""
    with meta.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    files = [(meta.parent / r["path"]).resolve() for r in rows]
    ids = [str(Path(r["path"]).with_suffix("")).replace("\\", "/") for r in rows]
    return Corpus(
        name,
        files,
        ids,
        [r["emotion"] for r in rows],
        [r["speaker"] for r in rows],
        note=note,
    )


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    wall: float
    cpu: float
    walls: list[float] = field(default_factory=list)

    def xrt(self, audio_s: float) -> float:
        return audio_s / self.wall if self.wall > 0 else float("inf")


def best_of(fn: Callable[[], Any], repeats: int, before: Callable[[], Any] | None = None) -> Timing:
    """Best wall time (with its CPU time) of ``repeats`` calls of ``fn``; ``before`` is untimed."""
    best: Timing | None = None
    walls = []
    for _ in range(repeats):
        if before is not None:
            before()
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        walls.append(wall)
        if best is None or wall < best.wall:
            best = Timing(wall, cpu)
    assert best is not None
    best.walls = walls
    return best


def fresh(path: Path) -> Callable[[], None]:
    """An untimed step that removes ``path`` (a file or a folder), recreates its folder and
    flushes dirty pages, so no run pays for the previous run's writes."""

    def run() -> None:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        (path if not path.suffix else path.parent).mkdir(parents=True, exist_ok=True)
        os.sync()

    return run


# ----------------------------------------------------------------------------- the two ways


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


def ours_extract(
    files: Sequence[Path],
    ids: Sequence[str],
    spec: dict[str, Any],
    gain: dict[str, Any],
    out: Path,
) -> None:
    """The workflow's way: load_audio + apply_gain + extract, streamed into one H5 shard."""

    def items():
        for utt_id, path in zip(ids, files, strict=True):
            y = load_audio(path, spec["sample_rate"])
            yield utt_id, extract(apply_gain(y, gain), spec)

    write_feature_shard(out, items(), {"feature_spec": spec, "gain": gain})


def original_spec(kind: str) -> dict[str, Any]:
    return resolve_spec({**ORIGINAL_SPECS[kind], "sample_rate": ORIGINAL_SR, "pad_mode": "reflect"})


# ----------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """A plain-text table; text columns left-aligned, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def is_num(text: str) -> bool:
        t = text.rstrip("x%").replace(",", "").replace("+", "").replace("-", "", 1)
        return t.replace(".", "", 1).isdigit()

    lines = []
    for k, row in enumerate(cells):
        parts = [
            c.rjust(w) if k and is_num(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)
        ]
        lines.append(indent + "  ".join(parts).rstrip())
        if k == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def say(text: str = "") -> None:
    print(text, flush=True)


def fmt_x(value: float) -> str:
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"


@dataclass
class Verdict:
    figure: str
    value: str
    target: str
    ok: bool | None  # None: informational


# ----------------------------------------------------------------------------- part 1


def part_original(corpora: list[Corpus], tmp: Path, repeats: int, verdicts: list[Verdict]) -> None:
    say("\n1. The original's feature types and settings at 22 050 Hz: baseline vs ours")
    say("   baseline: librosa.load + min-max gain + librosa feature + numpy.savetxt per utterance")
    say("   ours:     load_audio (soxr HQ) + apply_gain + extract + one H5 shard per corpus")
    rows = []
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
            sanity_original(corpus, kind, spec, base_dir, ours_h5)
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
    for line in SANITY:
        say("   check: " + line)
    SANITY.clear()


SANITY: list[str] = []


def sanity_original(corpus: Corpus, kind: str, spec: dict, base_dir: Path, ours_h5: Path) -> None:
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
    SANITY.append(f"{corpus.name} {kind}: {n_utts} utts in the H5; {shapes}; {detail}; {status}")


# ----------------------------------------------------------------------------- part 2


def part_logmel(
    corpora: list[Corpus], tmp: Path, repeats: int, verdicts: list[Verdict], profile: bool
) -> None:
    spec = resolve_spec(LOGMEL_CFG)
    say(
        "\n2. Our default log-mel: 16 kHz, 25 ms / 10 ms, 40 mels, gain none "
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


# ----------------------------------------------------------------------------- part 3


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") <= _status_kb("VmRSS") + 1024


class PeakSampler:
    """Fallback when VmHWM cannot be reset: poll VmRSS every millisecond in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kb("VmRSS"))
            time.sleep(0.001)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kb("VmRSS"))


def memory_child(config_path: str) -> None:
    """Child process: build one database and print its peak RSS growth as JSON."""
    cfg = json.loads(Path(config_path).read_text())
    from deepser.database import CorpusInput, build_database

    corpus = CorpusInput(
        cfg["name"],
        meta=Path(cfg["meta"]),
        vocab=Path(cfg["vocab"]),
        shards=tuple(Path(p) for p in cfg["shards"]),
        rejected=None,
    )
    gc.collect()
    rss_before = _status_kb("VmRSS")
    method = "VmHWM reset"
    t0 = time.perf_counter()
    if _reset_peak():
        attrs = build_database([corpus], cfg["db"], Path(cfg["out"]))
        peak = _status_kb("VmHWM")
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


def prepare_memory_inputs(corpus: Corpus, copies: int, folder: Path) -> dict[str, Any]:
    """Feature shards (the workflow's extract_shard, 4 shards), normalised meta and vocab for
    ``copies`` repetitions of the corpus with distinct utt_ids."""
    from deepser.extraction import extract_shard
    from deepser.meta import shard_of

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


def part_memory(corpus: Corpus, tmp: Path, verdicts: list[Verdict], quick: bool) -> None:
    say(
        f"\n3. Peak memory of build_database ({corpus.name}, log-mel 16 kHz, c_len "
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
        cfg = prepare_memory_inputs(corpus, copies, tmp / f"mem{copies}x")
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


# ----------------------------------------------------------------------------- main


def pin_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl missing)"
    info = threadpool_info()
    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in info) or "none loaded"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"only the first {QUICK_FILES} files of each corpus"
    )
    parser.add_argument("--corpus", choices=("emodb", "demo", "all"), default="all")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per figure (best kept)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the log-mel pass of the first corpus"
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0

    allowed = sorted(os.sched_getaffinity(0))
    cpu = pin_one_core()
    start = time.perf_counter()
    import h5py
    import librosa
    import soxr

    say("deepser feature-extraction benchmark, one core")
    say(
        f"  python {platform.python_version()}, numpy {np.__version__}, librosa "
        f"{librosa.__version__}, soxr {soxr.__version__}, h5py {h5py.__version__}, "
        f"soundfile {sf.__version__}"
    )
    say(
        f"  pinned to CPU {cpu} (allowed: {','.join(map(str, allowed))}); "
        + ", ".join(f"{k}={os.environ[k]}" for k in list(_SINGLE_THREAD_ENV)[:3])
        + f"; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )
    say(f"  BLAS thread pools: {blas_threads()}")
    say(
        "  load average at start: "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
        + f" on {len(allowed)} allowed CPUs (other work on CPU {cpu} makes figures noisier)"
    )
    say(
        f"  best of {args.repeats} runs per figure; "
        + (f"--quick: first {QUICK_FILES} files per corpus" if args.quick else "all files")
    )

    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="deepser-bench-") as tmp_name:
        tmp = Path(tmp_name)
        corpora: list[Corpus] = []
        if args.corpus in ("emodb", "all"):
            if (EMODB / "meta.tsv").is_file():
                corpora.append(read_corpus("emodb", EMODB / "meta.tsv", str(EMODB)))
            else:
                say(f"\n  SKIPPED emodb: {EMODB / 'meta.tsv'} not found (shared corpora absent)")
        if args.corpus in ("demo", "all"):
            from deepser.demo_corpus import synthesize_corpus

            t0 = time.perf_counter()
            meta = synthesize_corpus(tmp / "demo", seed=7, n_speakers=8, utterances_per_emotion=10)
            note = f"synthesised into a temp folder in {time.perf_counter() - t0:.1f} s"
            corpora.append(read_corpus("demo", Path(meta), note))
        if not corpora:
            say("\nNo corpus to measure.")
            return 0
        # The memory figure always uses the whole first corpus: with fewer rows than the
        # database writer's block (256), 1x and 4x would not be comparable.
        mem_corpus = corpora[0]
        if args.quick:
            corpora = [c.head(QUICK_FILES) for c in corpora]
        say("\nCorpora")
        rows = []
        for c in corpora:
            c.measure_audio()
            rows.append(
                [
                    c.name,
                    len(c.files),
                    f"{c.audio_s:.1f}",
                    f"{c.sample_rate} Hz" if c.sample_rate else "mixed",
                    c.note,
                ]
            )
        say(table(["corpus", "files", "audio s", "rate", "source"], rows))

        part_original(corpora, tmp, args.repeats, verdicts)
        part_logmel(corpora, tmp, args.repeats, verdicts, args.profile)
        part_memory(mem_corpus, tmp, verdicts, quick=args.quick)

    say("\nSummary")
    say(
        table(
            ["figure", "value", "target", "result"],
            [
                [
                    v.figure,
                    v.value,
                    v.target,
                    "info" if v.ok is None else "PASS" if v.ok else "MISS",
                ]
                for v in verdicts
            ],
        )
    )
    say("  load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    n_miss = sum(v.ok is False for v in verdicts)
    say(
        f"\n{len(verdicts) - n_miss} PASS, {n_miss} MISS; "
        f"total {time.perf_counter() - start:.0f} s (exit status 0 either way)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
