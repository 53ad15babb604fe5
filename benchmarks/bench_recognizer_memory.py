"""Does the recogniser's peak memory stay flat from a 1-minute file to a 10-hour file?

Two 16 kHz 16-bit mono WAV files are written into a temporary folder block by block (the long
one is never held in memory): 1 minute, and ``--hours`` (default 10 h, 1.15 GB). Both hold
-60 dBFS noise with a vowel-like burst of 0.6-2.0 s every 2-8 s, so the VAD cuts segments all
along. Each file goes through the real command line (``deepser-recognize`` as
``python scripts/recognize.py --model BUNDLE --wav FILE -q --log timeline.csv``) in its own
subprocess; its peak resident set size is the child's ``ru_maxrss`` (``os.wait4``). Figures:
both peaks, the difference and the ratio, wall time and real-time factor, and the segments
written. Target: the long file's peak within 50 MB of the 1-minute file's. Exit status 0
whatever the result (read the PASS/MISS line):

    .venv/bin/python benchmarks/bench_recognizer_memory.py
        [--bundle results/experiments/demo/final] [--hours 10] [--keep DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Verdict, load_average, say, summary, table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 16000
BLOCK_S = 60  # seconds generated and written at a time
TARGET_MB = 50.0


def burst(n: int, rng: np.random.Generator) -> np.ndarray:
    """A vowel-like burst of ``n`` samples: harmonics of a gliding f0 with 10 ms fades."""
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum((0.3 / k) * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 10))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return (rng.uniform(0.3, 1.0) * y * ramp).astype(np.float32)


def write_stream(path: Path, seconds: float, seed: int = 0) -> int:
    """Write ``seconds`` of noise with bursts as 16-bit PCM, one block at a time; returns the
    number of bursts."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total, written, n_bursts = int(round(seconds * SR)), 0, 0
    next_burst = int(rng.uniform(1.0, 3.0) * SR)  # absolute sample where the next burst starts
    carry = np.zeros(0, np.float32)  # the part of a burst that runs into the next block
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16", format="WAV") as f:
        while written < total:
            n = min(BLOCK_S * SR, total - written)
            y = (1e-3 * rng.standard_normal(n)).astype(np.float32)
            k = min(carry.size, n)
            y[:k] += carry[:k]
            carry = carry[k:]
            while next_burst < written + n:
                b = burst(int(rng.uniform(0.6, 2.0) * SR), rng)
                at = next_burst - written
                k = min(b.size, n - at)
                y[at : at + k] += b[:k]
                carry = np.concatenate([carry, b[k:]]) if b.size > k else carry
                n_bursts += 1
                next_burst += b.size + int(rng.uniform(2.0, 8.0) * SR)
            f.write(np.clip(y, -1.0, 1.0))
            written += n
    return n_bursts


def run_cli(bundle: Path, wav: Path, log: Path) -> dict:
    """The recogniser's command line on ``wav`` in a subprocess: peak RSS (MB), wall s, rows."""
    cmd = [sys.executable, str(REPO / "scripts/recognize.py"), "--model", str(bundle)]
    cmd += ["--wav", str(wav), "-q", "--log", str(log)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"the recogniser failed on {wav} ({proc.returncode}): {err.strip()}")
    with log.open() as fh:
        rows = sum(1 for _ in fh) - 1  # the header
    return {"peak_mb": usage.ru_maxrss / 1024, "wall": wall, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(REPO / "results/experiments/demo/final"))
    parser.add_argument("--hours", type=float, default=10.0, help="long file's length [10]")
    parser.add_argument(
        "--keep", metavar="DIR", help="write the files into DIR and keep them (default: a temp)"
    )
    args = parser.parse_args()
    bundle = Path(args.bundle)
    if not (bundle / "bundle.json").is_file():
        say(f"no model bundle at {bundle}: run `make demo` first or pass --bundle")
        return 0
    started = time.perf_counter()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-rec-memory-"))
    tmp.mkdir(parents=True, exist_ok=True)
    need = args.hours * 3600 * SR * 2 + 2**30
    free = shutil.disk_usage(tmp).free
    say(f"peak memory of the recogniser's command line: 1 min vs {args.hours:g} h file")
    say(f"  python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{load_average()}; files in {tmp} ({free / 2**30:.0f} GB free)")  # fmt: skip
    if free < need:
        say(f"  not enough disk space for {args.hours:g} h ({need / 2**30:.1f} GB needed): "
            "pass a smaller --hours or --keep DIR on a larger disk")  # fmt: skip
        return 0
    verdicts: list[Verdict] = []
    try:
        local = tmp / "bundle"  # a copy: the workflow may rewrite results/ meanwhile
        if local.exists():
            shutil.rmtree(local)
        shutil.copytree(bundle, local)
        say(f"  bundle {bundle}")
        results = []
        for name, seconds in (("1 min", 60.0), (f"{args.hours:g} h", args.hours * 3600)):
            wav = tmp / f"stream-{seconds:.0f}s.wav"
            t0 = time.perf_counter()
            n_bursts = write_stream(wav, seconds)
            made = time.perf_counter() - t0
            res = run_cli(local, wav, tmp / f"timeline-{seconds:.0f}s.csv")
            res.update(name=name, seconds=seconds, bursts=n_bursts, bytes=wav.stat().st_size)
            say(f"  {name}: {wav.stat().st_size / 1e6:,.0f} MB written in {made:.0f} s, "
                f"{n_bursts} bursts; recognised in {res['wall']:.0f} s, {res['rows']} rows, "
                f"peak RSS {res['peak_mb']:.0f} MB")  # fmt: skip
            if not args.keep:
                wav.unlink()
            results.append(res)
        short, long_ = results
        rows = [
            [
                r["name"],
                f"{r['bytes'] / 1e6:,.1f}",
                r["bursts"],
                r["rows"],
                f"{r['wall']:.1f}",
                f"{r['wall'] / r['seconds']:.4f}",
                f"{r['peak_mb']:.1f}",
            ]
            for r in results
        ]
        say("\n" + table(["file", "MB", "bursts", "rows", "wall s", "RTF", "peak RSS MB"], rows))
        diff = long_["peak_mb"] - short["peak_mb"]
        ratio = long_["peak_mb"] / short["peak_mb"]
        say(f"\n  peak RSS {long_['name']} - 1 min: {diff:+.1f} MB; ratio {ratio:.3f}")
        verdicts.append(
            Verdict(
                f"peak RSS {long_['name']} - 1 min (MB)",
                f"{diff:+.1f}",
                f"<= {TARGET_MB:g}",
                diff <= TARGET_MB,
            )
        )
        verdicts.append(
            Verdict(f"peak RSS ratio {long_['name']} / 1 min", f"{ratio:.3f}", "", None)
        )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    summary(verdicts, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
