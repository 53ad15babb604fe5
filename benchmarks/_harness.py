"""What the benchmark scripts share (not a benchmark itself).

- one-core set-up: :func:`single_thread_env` (thread-count variables; call it first, before
  numpy and its BLAS are imported), :func:`pin_one_core`, :func:`header` (versions, pinning,
  load average);
- timing: :class:`Timing`, :func:`best_of`, :func:`fresh`;
- output: :func:`say`, :func:`fmt_x`, :func:`table`, :class:`Verdict` and :func:`summary`;
- memory: :func:`status_kb`, :func:`rss_mb`, :func:`reset_peak`, :class:`PeakSampler`;
- corpora: :class:`Corpus` (EmoDB from ``../shared`` or the synthesised demo corpus),
  :func:`add_corpus_args`, :func:`load_corpora`, :func:`show_corpora`, and
  :func:`run_on_corpora`, the frame of a script that measures corpora (header, temporary folder,
  corpora table, summary);
- the workflow's extraction path: :func:`ours_extract`, :data:`LOGMEL_CFG`, :data:`NO_GAIN`.

Only the standard library is imported here at module level (numpy, soundfile and deepser are
imported inside the functions that need them), so a script can import this module before it
sets the thread environment::

    from _harness import single_thread_env

    single_thread_env()

    import numpy as np  # noqa: E402

The scripts run as ``python benchmarks/<script>.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "corpora" / "emodb"
QUICK_FILES = 100

# ----------------------------------------------------------------------------- one core

# OPENBLAS_CORETYPE is deliberately left as it is (it selects kernels, not threads).
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",  # no progress bars from the library's loops in the tables
}


def single_thread_env() -> None:
    """One thread per library: must run before numpy (and its BLAS) is imported."""
    os.environ.update(SINGLE_THREAD_ENV)


def pin_one_core() -> int:
    """Pin this process (and the subprocesses it starts) to the first CPU it may use."""
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


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def header(title: str, modules: Sequence[str], runs: str) -> float:
    """Pin to one core and print the run's conditions; returns the start time (perf_counter)."""
    allowed = sorted(os.sched_getaffinity(0))
    cpu = pin_one_core()
    started = time.perf_counter()
    versions = [f"python {platform.python_version()}"]
    versions += [f"{name} {import_module(name).__version__}" for name in modules]
    say(f"{title}, one core")
    say("  " + ", ".join(versions))
    say(
        f"  pinned to CPU {cpu} (allowed: {','.join(map(str, allowed))}); "
        + ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in list(SINGLE_THREAD_ENV)[:3])
        + f"; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )
    say(f"  BLAS thread pools: {blas_threads()}")
    say(
        f"  load average at start: {load_average()} on {len(allowed)} allowed CPUs "
        f"(other work on CPU {cpu} makes figures noisier)"
    )
    say(f"  {runs}")
    return started


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    wall: float
    cpu: float
    walls: list[float] = field(default_factory=list)

    def xrt(self, audio_s: float) -> float:
        """Seconds of audio per wall-clock second ("x real time")."""
        return audio_s / self.wall if self.wall > 0 else float("inf")


def best_of(fn: Callable[[], Any], repeats: int, before: Callable[[], Any] | None = None) -> Timing:
    """Best wall time (with its CPU time) of ``repeats`` calls of ``fn``; ``before`` is untimed."""
    best: Timing | None = None
    walls = []
    for _ in range(max(1, repeats)):
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


# ----------------------------------------------------------------------------- output


def say(text: str = "") -> None:
    print(text, flush=True)


def fmt_x(value: float) -> str:
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"


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


@dataclass
class Verdict:
    """One figure against its target: PASS, MISS, or info (``ok`` None: not judged)."""

    figure: str
    value: str
    target: str
    ok: bool | None

    def __post_init__(self) -> None:
        if self.ok is not None:
            self.ok = bool(self.ok)  # a numpy bool counts too

    @property
    def result(self) -> str:
        return "info" if self.ok is None else "PASS" if self.ok else "MISS"

    def line(self) -> str:
        return f"{self.result}: {self.figure} = {self.value} (target {self.target})"


def summary(verdicts: Iterable[Verdict], started: float) -> None:
    """The closing table of all verdicts and the PASS/MISS count (the exit status is 0)."""
    verdicts = list(verdicts)
    say("\nSummary")
    say(
        table(
            ["figure", "value", "target", "result"],
            [[v.figure, v.value, v.target, v.result] for v in verdicts],
        )
    )
    say(f"  load average at end: {load_average()}")
    n_miss = sum(v.ok is False for v in verdicts)
    n_pass = sum(v.ok is True for v in verdicts)
    say(
        f"\n{n_pass} PASS, {n_miss} MISS; "
        f"total {time.perf_counter() - started:.0f} s (exit status 0 either way)"
    )


# ----------------------------------------------------------------------------- memory


def status_kb(key: str) -> int:
    """A ``/proc/self/status`` figure in kB (VmRSS, VmHWM, ...)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mb() -> float:
    """Resident set size of this process (MB)."""
    return status_kb("VmRSS") / 1024


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return status_kb("VmHWM") <= status_kb("VmRSS") + 1024


class PeakSampler:
    """Fallback when VmHWM cannot be reset: poll VmRSS every millisecond in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kb("VmRSS"))
            time.sleep(0.001)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kb("VmRSS"))


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
        import soundfile as sf

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


def emodb_corpus() -> Corpus | None:
    """EmoDB from ``../shared/corpora/emodb`` (None: not there)."""
    meta = EMODB / "meta.tsv"
    return read_corpus("emodb", meta, str(EMODB)) if meta.is_file() else None


def demo_corpus(folder: Path, **kwargs: Any) -> Corpus:
    """The demo corpus synthesised into ``folder`` (``synthesize_corpus``'s keyword args)."""
    from deepser.corpus.demo import synthesize_corpus

    t0 = time.perf_counter()
    meta = synthesize_corpus(folder, **kwargs)
    note = f"synthesised into a temp folder in {time.perf_counter() - t0:.1f} s"
    return read_corpus("demo", Path(meta), note)


def add_corpus_args(parser: argparse.ArgumentParser, repeats: bool = True) -> None:
    """``--quick``, ``--corpus`` and (``repeats``) ``--repeats``, as every feature script has."""
    parser.add_argument(
        "--quick", action="store_true", help=f"only the first {QUICK_FILES} files of each corpus"
    )
    parser.add_argument("--corpus", choices=("emodb", "demo", "all"), default="all")
    if repeats:
        parser.add_argument(
            "--repeats", type=int, default=2, help="timed runs per figure (best kept)"
        )


def load_corpora(which: str, tmp: Path, first_only: bool = False) -> list[Corpus]:
    """EmoDB (when ``which`` is emodb or all, and present) and the demo corpus (demo or all;
    ``seed=7, n_speakers=8, utterances_per_emotion=10``, synthesised under ``tmp``).
    ``first_only``: stop after the first corpus found (no demo synthesis if EmoDB is there)."""
    corpora: list[Corpus] = []
    if which in ("emodb", "all"):
        emodb = emodb_corpus()
        if emodb is not None:
            corpora.append(emodb)
        else:
            say(f"\n  SKIPPED emodb: {EMODB / 'meta.tsv'} not found (shared corpora absent)")
    if which in ("demo", "all") and not (first_only and corpora):
        corpora.append(demo_corpus(tmp / "demo", seed=7, n_speakers=8, utterances_per_emotion=10))
    return corpora


def show_corpora(corpora: Sequence[Corpus]) -> None:
    """Measure each corpus's audio and print the corpora table."""
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


def runs_line(repeats: int, quick: bool) -> str:
    """The header's line on how each figure is measured."""
    return f"best of {repeats} runs per figure; " + (
        f"--quick: first {QUICK_FILES} files per corpus" if quick else "all files"
    )


def run_on_corpora(
    args: argparse.Namespace,
    title: str,
    modules: Sequence[str],
    runs: str,
    measure: Callable[[list[Corpus], Path, list[Verdict]], None],
    first_only: bool = False,
) -> int:
    """Header (one core), the corpora of ``args.corpus`` in a temporary folder (the first
    :data:`QUICK_FILES` files of each with ``args.quick``, unless ``first_only``: then the whole
    first corpus), their table, ``measure(corpora, tmp, verdicts)`` and the summary."""
    started = header(title, modules, runs)
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="deepser-bench-") as tmp_name:
        tmp = Path(tmp_name)
        corpora = load_corpora(args.corpus, tmp, first_only)
        if not corpora:
            say("\nNo corpus to measure.")
            return 0
        if args.quick and not first_only:
            corpora = [c.head(QUICK_FILES) for c in corpora]
        show_corpora(corpora)
        measure(corpora, tmp, verdicts)
    summary(verdicts, started)
    return 0


# ----------------------------------------------------------------------------- our extraction

# The workflow's default feature set (config/config.yaml).
LOGMEL_CFG = {
    "type": "logmel",
    "sample_rate": 16000,
    "win": "25ms",
    "hop": "10ms",
    "n_mels": 40,
    "fmin": 0.0,
    "fmax": 8000.0,
}
NO_GAIN = {"method": "none"}


def ours_extract(
    files: Sequence[Path],
    ids: Sequence[str],
    spec: dict[str, Any],
    gain: dict[str, Any],
    out: Path,
) -> None:
    """The workflow's way: load_audio + apply_gain + extract, streamed into one H5 shard."""
    from deepser.corpus.audio import load_audio
    from deepser.corpus.gain import apply_gain
    from deepser.features.registry import extract
    from deepser.features.shards import write_feature_shard

    def items():
        for utt_id, path in zip(ids, files, strict=True):
            y = load_audio(path, spec["sample_rate"])
            yield utt_id, extract(apply_gain(y, gain), spec)

    write_feature_shard(out, items(), {"feature_spec": spec, "gain": gain})
