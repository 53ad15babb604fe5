"""The recogniser on a long stream: speed, latency, VAD cost, memory and accuracy parity.

The stream: demo utterances of speakers the bundle has not heard (``synthesize_corpus`` with a
different seed from the workflow's) separated by 0.6-1.4 s of -60 dBFS noise, ``--minutes``
long, fed to :class:`deepser.recognizer.Recognizer` in 20 ms chunks as a microphone would
deliver them (but as fast as possible). Figures:

1. **Real-time factor** = processing seconds / audio seconds over the whole stream (target
   <= 0.01), with its split into segmentation (VAD), features and prediction.
2. **Latency**: from the start of the ``feed()`` call whose chunk completes a segment to the
   emitted prediction, p50 / p95 (target p95 <= 25 ms; 30 ms for a fused bundle). Not included:
   the segmenter's *algorithmic* delay (``--hangover-ms`` of silence + WebRTC VAD's own
   overhang), which is a setting, printed alongside.
3. **VAD cost per frame**: ``webrtcvad.Vad.is_speech`` alone, and the whole segmenter per frame.
4. **Memory**: resident set size after warm-up and at every 10 minutes of a ``--hours`` long
   stream (the same stream repeated, one continuous timeline); target growth <= 10 MB per hour.
5. **Accuracy parity**: UA of the recogniser's labels on the stream (each utterance labelled by
   the segment overlapping it most; an utterance without a segment counts as wrong) against the
   offline evaluation of the same bundle on the same utterance files (the workflow's features
   of each whole file, ``model.predict`` as ``deepser.evaluation``); target relative UA loss
   <= 5 %.

Exit status 0 whatever the results (read the PASS/MISS column):

    .venv/bin/python benchmarks/bench_recognizer.py [--bundle results/experiments/demo/final]
        [--minutes 10] [--hours 1] [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _harness import Verdict, rss_mb, summary  # noqa: E402

from deepser.metrics import unweighted_average_recall  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHUNK_S = 0.02


def whole_file(y: np.ndarray, sr: int):
    """One segment holding a whole file (the offline evaluation's input)."""
    from deepser.recognizer.vad import Segment

    return Segment(0, y.size, sr, y, 1.0, "whole")


def make_stream(folder: Path, minutes: float, sr: int, seed: int = 101):
    """Unseen demo utterances separated by noise -> (signal, utterance table with times)."""
    from deepser.corpus.audio import load_audio
    from deepser.corpus.demo import synthesize_corpus

    per_speaker = 4 * 5  # 4 emotions x 5 utterances, about 40 s of speech per speaker
    n_speakers = max(2, int(np.ceil(minutes * 60 / (per_speaker * 3.0))))
    meta = synthesize_corpus(folder, seed=seed, n_speakers=n_speakers, utterances_per_emotion=5)
    table = pd.read_csv(meta, sep="\t", dtype=str).sample(frac=1.0, random_state=seed)
    rng = np.random.default_rng(seed)
    parts, rows, pos, limit = [], [], 0, int(minutes * 60 * sr)
    for rec in table.itertuples():
        y = load_audio(folder / rec.path, sr)
        gap = (1e-3 * rng.standard_normal(int(rng.uniform(0.6, 1.4) * sr))).astype(np.float32)
        if pos + gap.size + y.size > limit:
            break
        parts += [gap, y]
        rows.append({"path": str(folder / rec.path), "emotion": rec.emotion,
                     "start": pos + gap.size, "end": pos + gap.size + y.size})  # fmt: skip
        pos += gap.size + y.size
    parts.append((1e-3 * rng.standard_normal(max(0, limit - pos))).astype(np.float32))
    return np.concatenate(parts), pd.DataFrame(rows)


def run_stream(recognizer, x: np.ndarray, sr: int, on_progress=None):
    """Feed ``x`` in 20 ms chunks; returns (predictions, per-prediction latency s, wall s)."""
    chunk = int(CHUNK_S * sr)
    preds, latency = [], []
    recognizer.start()
    t0 = time.perf_counter()
    for i in range(0, x.size, chunk):
        t_feed = time.perf_counter()
        for p in recognizer.feed(x[i : i + chunk]):
            preds.append(p)
            latency.append(p.emitted_at - t_feed)
        if on_progress is not None:
            on_progress(i + chunk)
    preds += recognizer.flush()
    return preds, np.array(latency), time.perf_counter() - t0


def ua(y_true: list[str], y_pred: list[str | None], classes: list[str]) -> float:
    """UA (deepser.metrics); a missing label (None) counts as an extra class that no utterance
    has, so it is wrong and does not enter the mean."""
    index = {c: i for i, c in enumerate(classes)}
    none = len(classes)
    t = np.array([index[c] for c in y_true])
    p = np.array([none if c is None else index[c] for c in y_pred])
    return unweighted_average_recall(t, p, len(classes) + 1)


def label_per_utterance(preds, utts: pd.DataFrame, task: dict) -> list[str | None]:
    """The label of the segment overlapping each utterance most (None: no segment)."""
    out = []
    seg = np.array([(p.segment.start, p.segment.end) for p in preds]).reshape(-1, 2)
    for u in utts.itertuples():
        overlap = np.minimum(seg[:, 1], u.end) - np.maximum(seg[:, 0], u.start)
        j = int(np.argmax(overlap)) if overlap.size else -1
        if j < 0 or overlap[j] <= 0:
            out.append(None)
            continue
        out.append(task["classes"][int(np.argmax(preds[j].outputs[task["name"]]))])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(REPO / "results/experiments/demo/final"))
    parser.add_argument("--minutes", type=float, default=10.0, help="stream length [10]")
    parser.add_argument("--hours", type=float, default=1.0, help="memory-test length [1]")
    parser.add_argument("--quick", action="store_true", help="2-minute stream, 0.25 h memory test")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.hours = 2.0, 0.25
    bundle = Path(args.bundle)
    if not (bundle / "bundle.json").is_file():
        print(f"no model bundle at {bundle}: run `make demo` first or pass --bundle", flush=True)
        return 0

    import webrtcvad

    from deepser.corpus.audio import load_audio
    from deepser.models import as_inputs
    from deepser.recognizer import Engine, Recognizer, StreamingSegmenter, VadSettings
    from deepser.recognizer.vad import to_pcm16

    started = time.perf_counter()
    verdicts: list[Verdict] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-recognizer-"))
    try:
        local = tmp / "bundle"  # a copy: the workflow may rewrite results/ meanwhile
        shutil.copytree(bundle, local)
        t = time.perf_counter()
        engine = Engine.from_bundle(local)
        load_s = time.perf_counter() - t
        sr, task = engine.sample_rate, engine.tasks[0]
        settings = VadSettings()
        names = [t["name"] for t in engine.tasks]
        print(f"bundle {bundle} ({engine.bundle.experiment}): {engine.spec['type']} "
              f"{sr} Hz, windows {engine.window}, tasks {names}")  # fmt: skip
        print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load + warm-up "
              f"{load_s:.1f} s, RSS {rss_mb():.0f} MB")  # fmt: skip
        x, utts = make_stream(tmp / "corpus", args.minutes, sr)
        duration = x.size / sr
        print(f"stream: {duration / 60:.1f} min, {len(utts)} unseen utterances "
              f"({utts['emotion'].value_counts().to_dict()}), 20 ms chunks\n")  # fmt: skip

        # 1 + 2: the whole pipeline
        recognizer = Recognizer(engine, settings)
        preds, latency, wall = run_stream(recognizer, x, sr)
        # split of the time: segmentation alone, then features and prediction per segment
        seg = StreamingSegmenter(sr, settings)
        chunk = int(CHUNK_S * sr)
        t = time.perf_counter()
        segments = [s for i in range(0, x.size, chunk) for s in seg.feed(x[i : i + chunk])]
        segments += list(seg.flush())
        seg_s = time.perf_counter() - t
        fused = hasattr(engine, "members")  # a fused bundle: members' features + combiner
        t = time.perf_counter()
        if fused:
            for s in segments:
                engine.recognize(s)
            feat_s, pred_s = time.perf_counter() - t, 0.0
        else:
            feats = [engine.features(s.audio) for s in segments]
            feat_s = time.perf_counter() - t
            t = time.perf_counter()
            for row, n in feats:
                engine.predict(row[None], np.array([n]))
            pred_s = time.perf_counter() - t
        rtf = wall / duration
        p50, p95 = (np.percentile(latency, q) * 1000 for q in (50, 95))
        print(f"{'figure':44s} {'value':>14s}  {'target':>10s}  verdict")
        v = Verdict("real-time factor (whole pipeline)", f"{rtf:.5f}", "<= 0.01", rtf <= 0.01)
        verdicts.append(v)
        print(f"{v.figure:44s} {rtf:14.5f}  {v.target:>10s}  {v.result}")
        split = " / ".join(f"{v / duration:.5f}" for v in (seg_s, feat_s, pred_s))
        what = "features and every member" if fused else "features / predict"
        print(f"{'  segmentation (VAD) / ' + what:44s} {split}")
        print(f"{'segments emitted / rejected':44s} {len(preds):8d} / {seg.n_rejected:<3d}")
        print(f"{'latency end-detected -> prediction p50 (ms)':44s} {p50:14.2f}")
        limit = 30 if fused else 25  # a fused bundle runs every member
        v = Verdict(
            "latency end-detected -> prediction p95 (ms)", f"{p95:.2f}", f"<= {limit}", p95 <= limit
        )
        verdicts.append(v)
        print(f"{v.figure:44s} {p95:14.2f}  {v.target:>10s}  {v.result}")
        print(f"{'  + algorithmic: hangover (+ VAD overhang)':44s} "
              f"{settings.hangover_ms:11d} ms (+0.10-0.16 s)")  # fmt: skip

        # 3: VAD cost
        vad = webrtcvad.Vad(settings.aggressiveness)
        frame = sr * settings.frame_ms // 1000
        pcm = to_pcm16(x[: min(x.size, 120 * sr)])
        frames = [pcm[i : i + frame].tobytes() for i in range(0, pcm.size - frame + 1, frame)]
        t = time.perf_counter()
        for f in frames:
            vad.is_speech(f, sr)
        vad_us = (time.perf_counter() - t) / len(frames) * 1e6
        seg_us = seg_s / max(seg.n_frames, 1) * 1e6
        print(f"{'VAD is_speech per 20 ms frame (us)':44s} {vad_us:14.1f}")
        print(f"{'segmenter per frame, VAD included (us)':44s} {seg_us:14.1f}")

        # 5: accuracy parity
        classes = task["classes"]
        rec_labels = label_per_utterance(preds, utts, task)
        if fused:
            off = np.stack(
                [
                    engine.recognize(whole_file(load_audio(p, sr), sr)).outputs[task["name"]]
                    for p in utts["path"]
                ]
            )
        else:
            rows = [engine.features(load_audio(p, sr)) for p in utts["path"]]
            out = engine.model.predict(
                as_inputs(np.stack([r for r, _ in rows]), np.array([n for _, n in rows], np.int32)),
                batch_size=64,
                verbose=0,
            )
            off = np.asarray(out[task["name"]] if isinstance(out, dict) else out)
        off_labels = [classes[int(i)] for i in off.argmax(-1)]
        truth = list(utts["emotion"])
        ua_off, ua_rec = ua(truth, off_labels, classes), ua(truth, rec_labels, classes)
        loss = (ua_off - ua_rec) / ua_off if ua_off else float("nan")
        agree = np.mean([a == b for a, b in zip(off_labels, rec_labels, strict=True)])
        missed = sum(r is None for r in rec_labels)
        print(f"{'UA offline evaluation (whole utterance files)':44s} {ua_off:14.4f}")
        print(f"{'UA recogniser on the stream':44s} {ua_rec:14.4f}")
        v = Verdict("relative UA loss", f"{100 * loss:.2f}%", "<= 5%", loss <= 0.05)
        verdicts.append(v)
        print(f"{v.figure:44s} {100 * loss:13.2f}%  {v.target:>10s}  {v.result}")
        print(f"{'label agreement recogniser vs offline':44s} {100 * agree:13.1f}%  "
              f"(utterances without a segment: {missed})")  # fmt: skip

        # 4: memory over a long stream
        recognizer = Recognizer(engine, settings)
        recognizer.start()
        rss = [(0.0, rss_mb())]
        total = int(args.hours * 3600 * sr)
        step = int(600 * sr)
        fed, n_preds, t = 0, 0, time.perf_counter()
        while fed < total:
            for i in range(0, x.size, chunk):
                if fed >= total:
                    break
                n_preds += len(recognizer.feed(x[i : i + chunk]))
                fed += chunk
                if fed % step < chunk:
                    rss.append((fed / sr / 60, rss_mb()))
        mem_wall = time.perf_counter() - t
        if rss[-1][0] < fed / sr / 60:
            rss.append((fed / sr / 60, rss_mb()))
        growth = rss[-1][1] - rss[0][1]
        per_hour = growth / max(args.hours, 1e-9)
        print(f"\nmemory over {args.hours:g} h of audio ({n_preds} segments, "
              f"{mem_wall:.0f} s wall, RTF {mem_wall / (fed / sr):.4f}):")  # fmt: skip
        print("  " + ", ".join(f"{m:.0f} min {v:.1f} MB" for m, v in rss))
        v = Verdict("RSS growth start -> end (MB)", f"{growth:.1f}", "<= 10/h", per_hour <= 10)
        verdicts.append(v)
        print(f"{v.figure:44s} {growth:14.1f}  {v.target:>10s}  {v.result}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary(verdicts, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
