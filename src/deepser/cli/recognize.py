"""``deepser recognize`` (alias ``deepser-recognize``): emotion recognition on files or a
microphone with a model bundle. Parses the options; the session itself is
:mod:`deepser.recognizer.session`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from deepser.cli.common import error_exit, join_negative_gain
from deepser.errors import DeepserError, RecognizerError, UsageError

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
2 bad command line (an unknown option or a bad value), 130 a file run interrupted by Ctrl-C
(rows so far are written)."""


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The recogniser's options (for ``deepser-recognize`` and ``deepser recognize``)."""
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


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog=prog,
            description=DESCRIPTION,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the command line; returns the exit status (errors: one line on stderr)."""
    parser = build_parser(prog)
    args = parser.parse_args(join_negative_gain(sys.argv[1:] if argv is None else argv))
    return run(parser, args)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Recognise as ``args`` say (``parser`` reports bad combinations, exit status 2)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    try:
        return _run(parser, args)
    except UsageError as exc:
        parser.error(str(exc))
    except DeepserError as exc:
        return error_exit(parser.prog, exc)
    except OSError as exc:  # e.g. an output file that cannot be written
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return error_exit(parser.prog, f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:  # before recognition started (loading the model)
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def _status(args: argparse.Namespace):
    def status(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    return status


def _settings(args: argparse.Namespace):
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
        raise UsageError(str(exc)) from None


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


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
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

    # imported here, not at the top: --help and a bad command line answer without loading them
    from deepser.bundle import read_primary_bundle
    from deepser.corpus.audio import load_audio
    from deepser.corpus.meta import list_audio
    from deepser.errors import FeatureError
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.gain import make_gain
    from deepser.recognizer.pipeline import Recognizer
    from deepser.recognizer.session import SessionOptions, recognise_files, recognise_live
    from deepser.recognizer.sources import FileSource, MicrophoneSource

    status = _status(args)
    bundle = read_primary_bundle(args.model)  # fails fast, before Keras is imported
    settings = _settings(args)
    sample_rate = bundle.sample_rate
    options = SessionOptions(
        log=args.log,
        jsonl=args.jsonl,
        out_dir=args.out_dir,
        format=args.format,
        output=args.output,
        whole_file=args.whole_file,
        quiet=args.quiet,
        with_file=bool(args.meta) or len(args.wav or []) > 1,
    )
    gain, warnings = make_gain(args.gain, bundle, args.practice)  # option values first
    files = []
    if args.mic is None:
        items = [(w, w) for w in args.wav or []]
        if args.meta:
            items += list_audio(args.meta, args.meta_column)
        if not items:
            raise RecognizerError(f"{args.meta}: no audio files listed")
        files = [
            (
                name,
                FileSource(path, sample_rate, realtime=args.realtime, max_seconds=args.max_seconds),
            )
            for name, path in items
        ]
    mic = None
    if args.mic is not None:  # open (not start) the device first: no device fails fast
        mic = MicrophoneSource(sample_rate, args.mic, max_seconds=args.max_seconds)
    try:
        for warning in warnings:
            status(f"warning: {warning}")
        engine = Engine.from_bundle(args.model, gain)
        if args.enrol:
            for path in args.enrol:
                try:
                    engine.enrol(load_audio(path, sample_rate))
                except FeatureError as exc:
                    raise RecognizerError(f"{path}: {exc}") from None
            status(f"speaker statistics from {len(args.enrol)} enrolment file(s)")
        recognizer = Recognizer(engine, settings)
        if engine.max_duration_s < settings.max_segment_s:
            status(
                f"note: the model sees the first {engine.max_duration_s:g} s of each segment "
                f"(window_spec.max_steps), as in training"
            )
        if mic is not None:
            return recognise_live(recognizer, mic, options, status)
        return recognise_files(recognizer, files, options, status)
    finally:
        if mic is not None:
            mic.close()


if __name__ == "__main__":
    sys.exit(main())
