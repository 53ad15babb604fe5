"""The light recogniser (an exported bundle on LiteRT / ONNX Runtime) against the Keras bundle.

In one run, the Keras bundle (``--bundle``, copied into a temporary folder) is exported to
``litert`` and to ``onnx`` by :func:`deepser.deploy.export.export_bundle` in a child process,
so this process never imports TensorFlow or Keras. Then each of the three paths (keras, litert,
onnx) is measured the same way:

1. **Start-up to first label**: ``deepser-recognize --model M --wav two_seconds.wav -q`` in a
   subprocess, wall time from the spawn to the first CSV data line on its stdout (the first
   label); median of ``--runs`` runs (5; ``--quick`` 2) after one untimed run that warms the
   page cache. The file is a demo utterance trimmed (or padded) to exactly 2.0 s. Target for
   the light paths: <= 1.0 s.
2. **Peak RSS** of the same command: the child's ``ru_maxrss`` (``os.wait4``), the largest of
   the runs. Target for the light paths: <= 200 MB.
3. **Same timeline**: ``deepser-recognize --jsonl`` on a file of 10 demo utterances of 8
   speakers separated by 0.6-1.4 s of -60 dBFS noise; each light timeline against the Keras
   one row by row: number of segments, start/end, labels, and the largest absolute difference
   of the probabilities. Target: same segments, labels equal, max difference <= 1e-4.
4. **Real-time factor**: a child process per path loads the bundle (untimed) with
   ``Engine.from_bundle`` and feeds a stream of at least ``--stream-s`` seconds (60; the
   timeline file repeated) to ``Recognizer`` in 20 ms chunks, timing only the feeding (best of
   5 passes, over ``--rounds`` children per path run in alternating order); RTF = processing
   seconds / audio seconds, split into the model's ``Engine.predict`` and the rest (VAD,
   features). Target: light RTF <= Keras RTF (light/keras <= 1.0; speed-up keras/light >= 1x).

Printed as well: each exported model file's size, the export's own check against Keras, and
for every figure the ratio light/keras. A summary table of the verdicts and the
``N PASS, M MISS`` line close the output; the exit status is 0 whatever the results:

    .venv/bin/python benchmarks/bench_light_recognizer.py
        [--bundle results/experiments/demo/final] [--runs 5] [--stream-s 60] [--rounds 2]
        [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Verdict, load_average, say, summary, table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO_META = REPO / "data/demo/meta.tsv"
PATHS = ("keras", "litert", "onnx")
LIGHT = ("litert", "onnx")
STARTUP_TARGET_S = 1.0
RSS_TARGET_MB = 200.0
PROB_TARGET = 1e-4
TIMELINE_UTTERANCES = 10
RTF_PASSES = 5

# Run in a child (cwd = the repository, so the bundle's relative database path resolves):
# export the bundle to each format, one JSON line per export on stdout.
EXPORT_CHILD = r"""
import json, sys, time
from deepser.deploy.export import export_bundle
bundle, out = sys.argv[1], sys.argv[2]
for fmt in sys.argv[3:]:
    t0 = time.perf_counter()
    r = export_bundle(bundle, fmt, f"{out}/{fmt}")
    print(json.dumps({"format": fmt, "dir": str(r.out_dir), "model_file": r.model_file,
                      "size_bytes": r.size_bytes, "max_abs_diff": r.max_abs_diff,
                      "rows_from": r.rows_from, "seconds": time.perf_counter() - t0}),
          flush=True)
"""

# Run in a child per path: load (untimed), then feed the stream in 20 ms chunks, timed.
RTF_CHILD = r"""
import json, sys, time
import numpy as np
import soundfile as sf
from deepser.recognizer.engine import Engine
from deepser.recognizer.pipeline import Recognizer
from deepser.recognizer.vad import VadSettings
model, wav, passes = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
engine = Engine.from_bundle(model)
load_s = time.perf_counter() - t0
x, sr = sf.read(wav, dtype="float32")
assert sr == engine.sample_rate, (sr, engine.sample_rate)
chunk = int(0.02 * sr)
predict, in_predict = engine.predict, [0.0]

def timed_predict(*args, **kwargs):  # the model's share of the feeding time
    t = time.perf_counter()
    try:
        return predict(*args, **kwargs)
    finally:
        in_predict[0] += time.perf_counter() - t

engine.predict = timed_predict
walls, predict_s, n_preds = [], [], 0
for _ in range(passes):
    rec = Recognizer(engine, VadSettings())
    rec.start()
    in_predict[0] = 0.0
    t = time.perf_counter()
    preds = []
    for i in range(0, x.size, chunk):
        preds += rec.feed(x[i : i + chunk])
    preds += rec.flush()
    walls.append(time.perf_counter() - t)
    predict_s.append(in_predict[0])
    n_preds = len(preds)
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(json.dumps({"load_s": load_s, "walls": walls, "predict_s": predict_s,
                  "audio_s": x.size / sr, "segments": n_preds, "imported": heavy}), flush=True)
"""


# ----------------------------------------------------------------------------- inputs


def demo_utterances() -> list[dict[str, str]]:
    with DEMO_META.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def pick_timeline(rows: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    """``n`` utterances, round-robin over speakers and emotions (several of each)."""
    speakers = sorted({r["speaker"] for r in rows})
    emotions = sorted({r["emotion"] for r in rows})
    chosen = []
    for k in range(n):
        spk = speakers[k % len(speakers)]
        emo = emotions[(k + k // len(speakers)) % len(emotions)]
        pool = [r for r in rows if r["speaker"] == spk and r["emotion"] == emo and r not in chosen]
        chosen.append(pool[0])
    return chosen


def write_inputs(tmp: Path, sr: int, stream_s: float) -> dict[str, dict]:
    """The three input files: 2.0 s, the timeline, and a stream of at least ``stream_s``."""
    import soundfile as sf

    from deepser.corpus.audio import load_audio

    rows = demo_utterances()
    rng = np.random.default_rng(7)

    def noise(seconds: float) -> np.ndarray:
        return (1e-3 * rng.standard_normal(int(seconds * sr))).astype(np.float32)

    # 1. exactly 2.0 s: the first utterance of at least 2 s, trimmed (else the longest, padded)
    longest = max(rows, key=lambda r: float(r["duration_s"]))
    first = next((r for r in rows if float(r["duration_s"]) >= 2.0), longest)
    y = load_audio(DEMO_META.parent / first["path"], sr)[: 2 * sr]
    y = np.concatenate([y, noise((2 * sr - y.size) / sr)]) if y.size < 2 * sr else y
    files = {"two": {"path": tmp / "two_seconds.wav", "source": first["path"]}}
    sf.write(files["two"]["path"], y, sr, subtype="PCM_16")

    # 3. the timeline: utterances of several speakers with pauses; 4. the same, repeated
    chosen = pick_timeline(rows, TIMELINE_UTTERANCES)
    parts = [noise(0.5)]
    for r in chosen:
        parts += [load_audio(DEMO_META.parent / r["path"], sr), noise(rng.uniform(0.6, 1.4))]
    timeline = np.concatenate(parts)
    files["timeline"] = {
        "path": tmp / "timeline.wav",
        "utterances": len(chosen),
        "speakers": len({r["speaker"] for r in chosen}),
    }
    sf.write(files["timeline"]["path"], timeline, sr, subtype="PCM_16")
    repeats = int(np.ceil(stream_s * sr / timeline.size))
    files["stream"] = {"path": tmp / "stream.wav", "repeats": repeats}
    sf.write(files["stream"]["path"], np.tile(timeline, repeats), sr, subtype="PCM_16")
    for f in files.values():
        info = sf.info(str(f["path"]))
        f["seconds"] = info.frames / info.samplerate
    return files


# ----------------------------------------------------------------------------- children


def recognize_cmd() -> list[str]:
    script = Path(sys.executable).parent / "deepser-recognize"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from deepser.cli.recognize import main; "
            "sys.exit(main())"]  # fmt: skip


def first_label(model: Path, wav: Path, errlog: Path) -> tuple[float, float]:
    """Spawn the recogniser on ``wav``; (seconds from the spawn to the first data line on
    stdout, the child's peak RSS in MB)."""
    cmd = recognize_cmd() + ["--model", str(model), "--wav", str(wav), "-q"]
    with errlog.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        assert proc.stdout is not None
        seen, t_first = 0, float("nan")
        for _ in proc.stdout:
            seen += 1
            if seen == 2:  # the header, then the first label
                t_first = time.perf_counter() - t0
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or seen < 2:
        tail = errlog.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(
            f"{' '.join(cmd)}: exit {proc.returncode}, {seen} stdout lines; {' / '.join(tail)}"
        )
    return t_first, usage.ru_maxrss / 1024


def run_timeline(model: Path, wav: Path, out: Path, errlog: Path) -> list[dict]:
    cmd = recognize_cmd() + ["--model", str(model), "--wav", str(wav), "-q", "--jsonl", str(out)]
    with errlog.open("wb") as err:
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}; {errlog.read_text()[-300:]}")
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def compare(keras: list[dict], light: list[dict], task: str, classes: list[str]) -> dict:
    """Row-by-row comparison of two timelines."""
    n = min(len(keras), len(light))
    cols = [f"{task}_p_{c}" for c in classes]
    labels = sum(keras[i][task] == light[i][task] for i in range(n))
    times = max((abs(keras[i][k] - light[i][k]) for i in range(n) for k in ("start_s", "end_s")),
                default=0.0)  # fmt: skip
    probs = max((abs(keras[i][c] - light[i][c]) for i in range(n) for c in cols), default=0.0)
    same = len(keras) == len(light) and times == 0.0
    return {"n": len(light), "labels": labels, "times": times, "probs": probs, "same": same,
            "ok": same and labels == len(keras) and probs <= PROB_TARGET}  # fmt: skip


def child_json(cmd: list[str], what: str) -> list[dict]:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " / ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {tail}")
    return [json.loads(ln) for ln in lines]


# ----------------------------------------------------------------------------- report


def machine_line() -> str:
    model = ""
    with open("/proc/cpuinfo") as fh:  # noqa: PTH123
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()}"
        + (f", {model}" if model else "")
        + f"), load average {load_average()}"
    )


def versions() -> str:
    out = []
    for names in (("numpy",), ("tensorflow", "tensorflow-cpu"), ("keras",), ("ai-edge-litert",),
                  ("onnxruntime",), ("tf2onnx",)):  # fmt: skip
        for dist in names:
            try:
                out.append(f"{dist} {metadata.version(dist)}")
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            out.append(f"{names[0]} (missing)")
    return ", ".join(out)


def ratio(light: float, keras: float) -> str:
    return f"{light / keras:.3f}" if keras > 0 else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(REPO / "results/experiments/demo/final"))
    parser.add_argument("--runs", type=int, default=5, help="start-up runs per path [5]")
    parser.add_argument("--stream-s", type=float, default=60.0, help="RTF stream length [60]")
    parser.add_argument(
        "--rounds", type=int, default=2, help=f"RTF children per path, {RTF_PASSES} passes each [2]"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 start-up runs, 30 s stream, 1 RTF round"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.stream_s, args.rounds = 2, 30.0, 1
    args.runs, args.rounds = max(1, args.runs), max(1, args.rounds)
    bundle = Path(args.bundle)
    if not (bundle / "bundle.json").is_file():
        say(f"no model bundle at {bundle}: run `make demo` first or pass --bundle")
        return 0
    if not DEMO_META.is_file():
        say(f"no demo corpus at {DEMO_META}: run `make demo` first")
        return 0
    info = json.loads((bundle / "bundle.json").read_text())
    if info.get("runtime") is not None:
        say(f"{bundle} is already an exported bundle: pass the Keras bundle it came from")
        return 0
    sr = int(info["feature_spec"]["sample_rate"])
    task = info["tasks"][0]

    started = time.perf_counter()
    say("light recogniser (exported litert / onnx) vs the Keras bundle")
    say(f"  {machine_line()}")
    say(f"  {versions()}")
    say(f"  DEEPSER_RUNTIME_THREADS={os.environ.get('DEEPSER_RUNTIME_THREADS', '(unset: 1)')}; "
        "Keras/TensorFlow with their default thread pools; not pinned")  # fmt: skip
    verdicts: list[Verdict] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-light-recognizer-"))
    try:
        models = {"keras": tmp / "keras"}
        shutil.copytree(bundle, models["keras"])  # a copy: the workflow may rewrite results/
        t0 = time.perf_counter()
        exports = child_json(
            [sys.executable, "-c", EXPORT_CHILD, str(models["keras"]), str(tmp), *LIGHT],
            "the export",
        )
        export_s = time.perf_counter() - t0
        exports = {e["format"]: e for e in exports}
        for fmt in LIGHT:
            models[fmt] = Path(exports[fmt]["dir"])
        keras_size = (models["keras"] / "model.keras").stat().st_size
        say(f"\nbundle {bundle} ({info.get('experiment')}): {info['feature_spec']['type']} "
            f"{sr} Hz, task {task['name']} {task.get('classes')}")  # fmt: skip
        say(f"exported in a child process in {export_s:.1f} s (both formats)")
        say(table(
            ["model", "file", "MB", "size/keras", "export check vs Keras (max |diff|)"],
            [["keras", "model.keras", f"{keras_size / 1e6:.3f}", "1.000", "-"]]
            + [[fmt, exports[fmt]["model_file"], f"{exports[fmt]['size_bytes'] / 1e6:.3f}",
                ratio(exports[fmt]["size_bytes"], keras_size),
                f"{exports[fmt]['max_abs_diff']:.2g} on {exports[fmt]['rows_from']}"]
               for fmt in LIGHT],
        ))  # fmt: skip

        files = write_inputs(tmp, sr, args.stream_s)
        say(f"\ninputs: two_seconds.wav {files['two']['seconds']:.3f} s (from "
            f"{files['two']['source']}); timeline.wav {files['timeline']['seconds']:.1f} s "
            f"({files['timeline']['utterances']} utterances, {files['timeline']['speakers']} "
            f"speakers, 0.6-1.4 s pauses); stream.wav {files['stream']['seconds']:.1f} s "
            f"(timeline x{files['stream']['repeats']})")  # fmt: skip

        # 1 + 2: start-up to first label and peak RSS (runs interleaved across the paths)
        errlog = tmp / "stderr.txt"
        for p in PATHS:  # untimed: page cache
            first_label(models[p], files["two"]["path"], errlog)
        startup: dict[str, list[float]] = {p: [] for p in PATHS}
        peak: dict[str, list[float]] = {p: [] for p in PATHS}
        for _ in range(args.runs):
            for p in PATHS:
                t, mb = first_label(models[p], files["two"]["path"], errlog)
                startup[p].append(t)
                peak[p].append(mb)
        start_med = {p: statistics.median(startup[p]) for p in PATHS}
        peak_max = {p: max(peak[p]) for p in PATHS}

        # 3: the same timeline
        timelines = {
            p: run_timeline(models[p], files["timeline"]["path"], tmp / f"{p}.jsonl", errlog)
            for p in PATHS
        }
        cmp = {f: compare(timelines["keras"], timelines[f], task["name"], task["classes"])
               for f in LIGHT}  # fmt: skip

        # 4: real-time factor (a child per path and round, feeding timed; the rounds go in
        # opposite orders, so a change of the machine's load hits every path alike)
        rtf_out: dict[str, dict] = {}
        for k in range(args.rounds):
            for p in PATHS if k % 2 == 0 else PATHS[::-1]:
                cmd = [sys.executable, "-c", RTF_CHILD, str(models[p])]
                cmd += [str(files["stream"]["path"]), str(RTF_PASSES)]
                got = child_json(cmd, f"the RTF child for {p}")[0]
                if p not in rtf_out:
                    rtf_out[p] = got
                else:
                    for key in ("walls", "predict_s"):
                        rtf_out[p][key] += got[key]
        best = {p: int(np.argmin(rtf_out[p]["walls"])) for p in PATHS}
        rtf = {p: rtf_out[p]["walls"][best[p]] / rtf_out[p]["audio_s"] for p in PATHS}
        rtf_model = {p: rtf_out[p]["predict_s"][best[p]] / rtf_out[p]["audio_s"] for p in PATHS}
        per_seg = {p: 1000 * rtf_out[p]["predict_s"][best[p]] / max(rtf_out[p]["segments"], 1)
                   for p in PATHS}  # fmt: skip

        # the table
        say(f"\nfigures (start-up: median of {args.runs} runs after 1 untimed; peak RSS: the "
            f"largest of those runs; RTF: best of {args.rounds} x {RTF_PASSES} passes over "
            f"{rtf_out['keras']['audio_s']:.1f} s, model load excluded)")  # fmt: skip
        rows = []

        def figure(name, values, fmt, target, oks=None):
            row = [name] + [fmt(values[p]) for p in PATHS]
            row += [ratio(values[f], values["keras"]) for f in LIGHT] + [target]
            row += [("PASS" if oks[f] else "MISS") if oks else "" for f in LIGHT]
            rows.append(row)

        def s3(v):
            return f"{v:.3f}"

        figure("start-up to first label (s)", start_med, s3, f"<= {STARTUP_TARGET_S:g} s",
               {f: start_med[f] <= STARTUP_TARGET_S for f in LIGHT})  # fmt: skip
        figure("  fastest run (s)", {p: min(startup[p]) for p in PATHS}, s3, "")
        figure("peak RSS (MB)", peak_max, lambda v: f"{v:.1f}", f"<= {RSS_TARGET_MB:g} MB",
               {f: peak_max[f] <= RSS_TARGET_MB for f in LIGHT})  # fmt: skip
        figure("model load + warm-up in RTF child (s)", {p: rtf_out[p]["load_s"] for p in PATHS},
               s3, "")  # fmt: skip
        figure("real-time factor", rtf, lambda v: f"{v:.5f}", "light/keras <= 1",
               {f: rtf[f] <= rtf["keras"] for f in LIGHT})  # fmt: skip
        figure("  of which model predict", rtf_model, lambda v: f"{v:.5f}", "")
        figure("  of which VAD, features, rest", {p: rtf[p] - rtf_model[p] for p in PATHS},
               lambda v: f"{v:.5f}", "")  # fmt: skip
        figure("model predict per segment (ms)", per_seg, lambda v: f"{v:.2f}", "")
        figure("model file (MB)", {"keras": keras_size / 1e6,
               **{f: exports[f]["size_bytes"] / 1e6 for f in LIGHT}}, s3, "")  # fmt: skip
        say(table(["figure", *PATHS, "litert/keras", "onnx/keras", "target", "litert", "onnx"],
                  rows))  # fmt: skip

        n_keras = len(timelines["keras"])
        say(f"\nsame timeline on timeline.wav (light vs keras, row by row; {n_keras} keras rows)")
        say(table(
            ["path", "segments", "same start/end", "max |time diff| s", "labels equal",
             "max |p diff|", "target", "result"],
            [[f, cmp[f]["n"], "yes" if cmp[f]["same"] else "no", f"{cmp[f]['times']:.3f}",
              f"{cmp[f]['labels']}/{n_keras}", f"{cmp[f]['probs']:.2e}",
              f"labels equal, <= {PROB_TARGET:g}", "PASS" if cmp[f]["ok"] else "MISS"]
             for f in LIGHT],
        ))  # fmt: skip
        counts = ", ".join(f"{p} {rtf_out[p]['segments']}" for p in PATHS)
        say(f"  segments in the RTF stream: {counts}")

        for f in LIGHT:
            keras_s, keras_mb = start_med["keras"], peak_max["keras"]
            labels, probs = f"{cmp[f]['labels']}/{n_keras} labels", f"{cmp[f]['probs']:.1e}"
            speed = f"{rtf[f] / rtf['keras']:.3f} ({rtf['keras'] / rtf[f]:.1f}x faster)"
            verdicts += [
                Verdict(
                    f"{f}: start-up to first label (s)",
                    f"{start_med[f]:.3f} (keras {keras_s:.3f})",
                    f"<= {STARTUP_TARGET_S:g}",
                    start_med[f] <= STARTUP_TARGET_S,
                ),
                Verdict(
                    f"{f}: peak RSS (MB)",
                    f"{peak_max[f]:.1f} (keras {keras_mb:.1f})",
                    f"<= {RSS_TARGET_MB:g}",
                    peak_max[f] <= RSS_TARGET_MB,
                ),
                Verdict(
                    f"{f}: same timeline, max |p diff|",
                    f"{labels}, {probs}",
                    f"equal, <= {PROB_TARGET:g}",
                    cmp[f]["ok"],
                ),
                Verdict(f"{f}: RTF light/keras", speed, "<= 1.0", rtf[f] <= rtf["keras"]),
            ]

        def imported(modules: list[str]) -> str:
            return ", ".join(modules) or "neither TensorFlow nor Keras"

        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        say(f"\ncheck: this process imported {imported(heavy)}")
        for f in LIGHT:
            say(f"check: the {f} RTF child imported {imported(rtf_out[f]['imported'])}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary(verdicts, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
