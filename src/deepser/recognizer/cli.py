"""``deepser-recognize``: emotion recognition on files or a microphone with a model bundle."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

PROG = "deepser-recognize"

DESCRIPTION = """\
Recognise emotions in speech with a deepser model bundle (a folder with model.keras and
bundle.json, e.g. results/experiments/<exp>/final). The bundle says everything else: feature
type and parameters, sample rate, gain normalisation, context windows and tasks.

Audio is cut into speech segments by WebRTC VAD; each segment that passes the speech gates gets
one output row, written as soon as the segment ends: start_s, end_s, speech_ratio, then per task
the predicted class (column <task>) and, with --output proba, one probability column per class
(<task>_p_<class>). Rows go to stdout unless --log / --jsonl / --out-dir say otherwise."""

EPILOG = """\
examples:
  deepser-recognize --model results/experiments/demo/final --wav talk.wav
  deepser-recognize --model BUNDLE --wav a.flac b.mp3 --log timeline.csv --jsonl timeline.jsonl
  deepser-recognize --model BUNDLE --meta corpus/meta.tsv --out-dir timelines/
  deepser-recognize --list-devices
  deepser-recognize --model BUNDLE --mic --log live.csv          (Ctrl-C stops; the log is kept)
  deepser-recognize --model BUNDLE --mic 2 --gain auto --output label

original LIVE_SER options: -vd -> --min-speech-ms, -s_ratio -> --speech-ratio,
-vm -> --vad-aggressiveness, -fd -> --vad-frame-ms, -p_mode 1/2 -> --output label/proba,
-g_min/-g_max -> --gain MIN,MAX (no flag: --gain auto).

exit status: 0 done (also after Ctrl-C on a microphone), 1 error (one line on stderr),
2 bad command line, 130 a file run interrupted by Ctrl-C (rows so far are written)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="BUNDLE", help="model bundle folder (required to recognise)")
    src = p.add_argument_group("input (one of)")
    src.add_argument(
        "--wav",
        nargs="+",
        metavar="FILE",
        help="audio file(s) in any soundfile format, rate or channel count (resampled and mixed "
        "down to the bundle's rate); each file gets its own timeline starting at 0 s",
    )
    src.add_argument(
        "--meta",
        metavar="META.tsv",
        help="a meta file (TSV with a header); audio paths (column --meta-column) are relative to "
        "the meta file's folder",
    )
    src.add_argument("--meta-column", default="path", help="audio path column of --meta [path]")
    src.add_argument(
        "--mic",
        nargs="?",
        const="default",
        metavar="DEVICE",
        help="live input from a microphone: the default input, or a device index or name part "
        "(see --list-devices); needs PyAudio",
    )
    src.add_argument("--list-devices", action="store_true", help="list audio input devices, exit")

    out = p.add_argument_group("output")
    out.add_argument("--log", metavar="FILE", help="write the timeline as CSV with a header")
    out.add_argument("--jsonl", metavar="FILE", help="write the timeline as JSON lines")
    out.add_argument(
        "--out-dir",
        metavar="DIR",
        help="one timeline file per input file (<name>.csv or .jsonl, see --format)",
    )
    out.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        default="csv",
        help="format for stdout and --out-dir [csv]",
    )
    out.add_argument(
        "--output",
        choices=("proba", "label"),
        default="proba",
        help="proba: class name and one probability column per class; label: class names only "
        "(the original's -p_mode 2 / 1) [proba]",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar or status lines")

    seg = p.add_argument_group("segmentation (WebRTC VAD)")
    seg.add_argument(
        "--min-speech-ms",
        type=int,
        default=300,
        help="reject segments whose speech (first to last speech frame) is shorter (the "
        "original's -vd) [300]",
    )
    seg.add_argument(
        "--speech-ratio",
        type=float,
        default=0.3,
        help="reject segments with a smaller fraction of speech frames between their first and "
        "last speech frame (the original's -s_ratio) [0.3]",
    )
    seg.add_argument(
        "--vad-aggressiveness",
        type=int,
        choices=range(4),
        default=1,
        help="WebRTC VAD mode: 0 keeps the most as speech, 3 filters noise hardest [1]",
    )
    seg.add_argument(
        "--vad-frame-ms", type=int, choices=(10, 20, 30), default=20, help="VAD frame [20]"
    )
    seg.add_argument(
        "--max-segment-s",
        type=float,
        default=10.0,
        help="split longer speech into several segments (at a pause near the limit if there "
        "is one) [10]",
    )
    seg.add_argument(
        "--hangover-ms",
        type=int,
        default=300,
        help="silence that ends a segment; shorter pauses stay inside [300]",
    )
    seg.add_argument(
        "--start-pad-ms", type=int, default=200, help="audio kept before speech onset [200]"
    )
    seg.add_argument(
        "--end-pad-ms",
        type=int,
        default=200,
        help="audio kept after the last speech frame (at most --hangover-ms) [200]",
    )
    seg.add_argument(
        "--whole-file",
        action="store_true",
        help="no segmentation: each input file is one segment (for utterance files)",
    )

    gain = p.add_argument_group("gain")
    gain.add_argument(
        "--gain",
        default="bundle",
        metavar="bundle|auto|MIN,MAX",
        help="bundle: the normalisation the model was trained with (default); MIN,MAX: fixed "
        "min-max bounds of the waveform (the original's -g_min/-g_max); auto: the original's "
        "running calibration: speak --practice utterances softly and loudly first, the running "
        "min/max of accepted segments set the bounds and only ever widen (also across files)",
    )
    gain.add_argument(
        "--practice", type=int, default=3, help="practice segments for --gain auto [3]"
    )

    speaker = p.add_argument_group("speaker-normalised models")
    speaker.add_argument(
        "--enrol",
        nargs="+",
        metavar="WAV",
        help="recordings of the user (one utterance each, as a training corpus's files): their "
        "features start the running speaker statistics, so the first segments are normalised "
        "with evidence (without it, each segment adds to them as it is recognised)",
    )

    live = p.add_argument_group("live")
    live.add_argument(
        "--max-seconds",
        type=float,
        help="stop after this much audio: captured from --mic, or from the start of each file",
    )
    live.add_argument(
        "--realtime",
        action="store_true",
        help="feed files at real-time speed, as if live (demos, latency checks)",
    )
    return p


def _status(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _error(message: str) -> int:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return 1


def join_negative_gain(argv: Sequence[str]) -> list[str]:
    """``--gain -1,1`` -> ``--gain=-1,1`` (argparse would take ``-1,1`` for an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--gain" and re.match(r"^-[0-9.]", arg):
            out[-1] = f"--gain={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors: one line on stderr)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    parser = build_parser()
    args = parser.parse_args(join_negative_gain(sys.argv[1:] if argv is None else argv))
    from deepser.audio import AudioError
    from deepser.bundle import BundleError
    from deepser.recognizer.errors import RecognizerError

    try:
        return _run(parser, args)
    except (RecognizerError, BundleError, AudioError) as exc:
        return _error(str(exc))
    except OSError as exc:  # e.g. an output file that cannot be written
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _error(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:  # before recognition started (loading the model)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _inputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(display name, path) of every input file, from --wav and --meta."""
    import csv

    from deepser.recognizer.errors import RecognizerError

    items = [(w, Path(w)) for w in args.wav or []]
    if args.meta:
        meta = Path(args.meta)
        try:
            with meta.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh, delimiter="\t")
                if args.meta_column not in (reader.fieldnames or []):
                    raise RecognizerError(
                        f"{meta}: no column {args.meta_column!r} (columns: "
                        f"{', '.join(reader.fieldnames or [])}; choose one with --meta-column)"
                    )
                for line, rec in enumerate(reader, start=2):
                    value = (rec.get(args.meta_column) or "").strip()
                    if not value:
                        raise RecognizerError(f"{meta}, line {line}: empty {args.meta_column!r}")
                    items.append((value, meta.parent / value))
        except FileNotFoundError:
            raise RecognizerError(f"{meta}: meta file not found") from None
        except UnicodeDecodeError as exc:
            raise RecognizerError(f"{meta}: not a UTF-8 text file ({exc.reason})") from None
    return items


def _settings(args: argparse.Namespace):
    from deepser.recognizer.errors import RecognizerError
    from deepser.recognizer.vad import VadSettings

    try:
        return VadSettings(
            frame_ms=args.vad_frame_ms,
            aggressiveness=args.vad_aggressiveness,
            start_pad_ms=args.start_pad_ms,
            end_pad_ms=args.end_pad_ms,
            hangover_ms=args.hangover_ms,
            min_speech_ms=args.min_speech_ms,
            speech_ratio=args.speech_ratio,
            max_segment_s=args.max_segment_s,
        )
    except ValueError as exc:
        raise RecognizerError(str(exc)) from None


def _list_devices() -> int:
    from deepser.recognizer.sources import list_devices

    devices = list_devices()
    if not devices:
        print("no audio input devices found", file=sys.stderr)
        return 1
    print("index  channels  default_rate  name")
    for d in devices:
        mark = "  (default)" if d.is_default else ""
        print(f"{d.index:5d}  {d.channels:8d}  {d.default_rate:12.0f}  {d.name}{mark}")
    return 0


def _out_name(name: str, used: set[str], ext: str) -> str:
    """A per-input output file name (relative), unique among ``used``."""
    stem = Path(name).with_suffix("").as_posix().lstrip("/").replace("../", "")
    candidate, n = f"{stem}.{ext}", 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}.{ext}"
    used.add(candidate)
    return candidate


def _open(path: str | Path) -> IO[str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8", newline="")


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from deepser.recognizer.errors import RecognizerError

    if args.list_devices:
        return _list_devices()
    sources = [bool(args.wav or args.meta), args.mic is not None]
    if not args.model:
        parser.error("--model BUNDLE is required (or --list-devices)")
    if sum(sources) != 1:
        parser.error("give one input: --wav FILE... / --meta META.tsv, or --mic [DEVICE]")
    if args.mic is not None and (args.out_dir or args.whole_file or args.realtime):
        parser.error("--out-dir, --whole-file and --realtime are for file inputs, not --mic")
    if args.practice < 1:
        parser.error("--practice must be at least 1")
    if args.enrol and args.gain == "auto":
        parser.error("--enrol needs the bundle's or fixed gain bounds, not --gain auto")

    from deepser.bundle import read_bundle_info
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.gain import make_gain
    from deepser.recognizer.pipeline import Recognizer
    from deepser.recognizer.sources import FileSource

    info = read_bundle_info(args.model)  # fails fast, before Keras is imported
    settings = _settings(args)
    sample_rate = int(info["feature_spec"]["sample_rate"])
    files = []
    if args.mic is None:
        items = _inputs(args)
        if not items:
            raise RecognizerError(f"{args.meta}: no audio files listed")
        files = [
            (
                name,
                FileSource(path, sample_rate, realtime=args.realtime, max_seconds=args.max_seconds),
            )
            for name, path in items
        ]
    gain, warnings = make_gain(args.gain, info, args.practice)
    mic = None
    if args.mic is not None:  # open (not start) the device first: no device fails fast
        from deepser.recognizer.sources import MicrophoneSource

        mic = MicrophoneSource(sample_rate, args.mic, max_seconds=args.max_seconds)
    try:
        for warning in warnings:
            _status(args, f"warning: {warning}")
        engine = Engine.from_bundle(args.model, gain)
        if args.enrol:
            from deepser.audio import load_audio
            from deepser.features import FeatureError
            from deepser.recognizer.errors import RecognizerError

            for path in args.enrol:
                try:
                    engine.enrol(load_audio(path, sample_rate))
                except FeatureError as exc:
                    raise RecognizerError(f"{path}: {exc}") from None
            _status(args, f"speaker statistics from {len(args.enrol)} enrolment file(s)")
        recognizer = Recognizer(engine, settings)
        if engine.max_duration_s < settings.max_segment_s:
            _status(
                args,
                f"note: the model sees the first {engine.max_duration_s:g} s of each segment "
                f"(window_spec.max_steps), as in training",
            )
        if mic is not None:
            return _run_live(args, recognizer, mic)
        return _run_files(args, recognizer, files)
    finally:
        if mic is not None:
            mic.close()


class _GainStatus:
    """Prints the auto-gain status line when calibrating or when the extremes widen."""

    def __init__(self, args: argparse.Namespace, gain) -> None:
        self.args, self.gain, self.last = args, gain, None

    def update(self) -> None:
        if getattr(self.gain, "name", "") != "auto":
            return
        state = (
            self.gain.n_seen if self.gain.calibrating else -1,
            self.gain.gain["min"],
            self.gain.gain["max"],
        )
        if state != self.last:
            self.last = state
            _status(self.args, self.gain.status())


def _outputs(args: argparse.Namespace, tasks, with_file: bool):
    from deepser.recognizer.output import Outputs, columns

    cols = columns(tasks, args.output, with_file)
    outputs = Outputs()
    try:
        if args.log:
            outputs.add("csv", _open(args.log), cols)
        if args.jsonl:
            outputs.add("jsonl", _open(args.jsonl), cols)
        if not (args.log or args.jsonl or args.out_dir):
            outputs.add(args.format, sys.stdout, cols, owned=False)
    except BaseException:
        outputs.close()
        raise
    return outputs


def _run_files(args: argparse.Namespace, recognizer, files) -> int:
    from tqdm import tqdm

    from deepser.recognizer.output import Outputs, columns, row

    tasks = recognizer.engine.tasks
    with_file = len(files) > 1 or bool(args.meta)
    outputs = _outputs(args, tasks, with_file)
    gain_status = _GainStatus(args, recognizer.engine.gain)
    gain_status.update()
    used: set[str] = set()
    n_segments = n_rejected = 0
    interrupted = False
    bar = tqdm(
        files,
        desc="recognising",
        unit="file",
        file=sys.stderr,
        disable=args.quiet or len(files) < 2,
    )
    started = time.perf_counter()
    try:
        for name, source in bar:
            per_file = Outputs()
            if args.out_dir:
                target = Path(args.out_dir) / _out_name(name, used, args.format)
                per_file.add(args.format, _open(target), columns(tasks, args.output, False))
            try:
                if args.whole_file:
                    preds = [recognizer.whole(source.audio)]
                    preds = [p for p in preds if p is not None]
                else:
                    recognizer.start()
                    preds = _iterate(recognizer, source)
                for pred in preds:
                    gain_status.update()
                    outputs.write(row(pred, tasks, args.output, name if with_file else None))
                    per_file.write(row(pred, tasks, args.output))
                    n_segments += 1
            except KeyboardInterrupt:
                interrupted = True
                for pred in recognizer.flush():
                    outputs.write(row(pred, tasks, args.output, name if with_file else None))
                    per_file.write(row(pred, tasks, args.output))
                    n_segments += 1
                break
            finally:
                per_file.close()
                source.close()
                if recognizer.segmenter is not None and not args.whole_file:
                    n_rejected += recognizer.segmenter.n_rejected
            bar.set_postfix(segments=n_segments, refresh=False)
    finally:
        bar.close()
        outputs.close()
    elapsed = time.perf_counter() - started
    _status(
        args,
        f"{'interrupted (Ctrl-C): ' if interrupted else ''}{len(files)} file(s), "
        f"{n_segments} segment(s) recognised, {n_rejected} rejected by the speech gates "
        f"({elapsed:.1f} s)",
    )
    return 130 if interrupted else 0


def _iterate(recognizer, source):
    """Predictions of one file source, segment by segment (flush at the end)."""
    for chunk in source:
        yield from recognizer.feed(chunk)
    yield from recognizer.flush()


def _run_live(args: argparse.Namespace, recognizer, source) -> int:
    from deepser.recognizer.output import row

    engine = recognizer.engine
    outputs = _outputs(args, engine.tasks, False)
    gain_status = _GainStatus(args, engine.gain)
    resampled = (
        f" (resampled to {engine.sample_rate} Hz)" if source.rate != engine.sample_rate else ""
    )
    _status(
        args, f"listening on {source.device_name!r} at {source.rate} Hz{resampled}; Ctrl-C stops"
    )
    gain_status.update()
    from deepser.recognizer.sources import Gap

    reported, reported_at = 0, 0.0
    interrupted = False
    n_segments = 0
    recognizer.start()
    try:
        try:
            for chunk in source:
                preds = (
                    recognizer.skip(chunk.samples)
                    if isinstance(chunk, Gap)
                    else (recognizer.feed(chunk))
                )
                for pred in preds:
                    gain_status.update()
                    outputs.write(row(pred, engine.tasks, args.output))
                    n_segments += 1
                lost = source.overflows + source.dropped
                if lost > reported and time.monotonic() - reported_at > 1.0:
                    reported, reported_at = lost, time.monotonic()
                    _status(
                        args,
                        f"warning: capture overflow: {source.overflows} input overflow(s), "
                        f"{source.dropped} chunk(s) dropped so far (the recogniser lags)",
                    )
        except KeyboardInterrupt:
            interrupted = True
        source.close()
        for pred in recognizer.flush():
            outputs.write(row(pred, engine.tasks, args.output))
            n_segments += 1
    finally:
        source.close()
        outputs.close()
    seg = recognizer.segmenter
    _status(
        args,
        f"{'stopped (Ctrl-C): ' if interrupted else ''}captured {source.seconds:.1f} s, "
        f"{n_segments} segment(s) recognised, {seg.n_rejected if seg else 0} rejected, "
        f"{source.overflows} input overflow(s), {source.dropped} chunk(s) dropped",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
