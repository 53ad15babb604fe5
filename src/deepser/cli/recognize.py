"""``deepser recognize`` (alias ``deepser-recognize``): emotion recognition on files or a
microphone with a model bundle. Parses the options; the session itself is
:mod:`deepser.recognizer.session`."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from deepser.cli.common import error_exit, join_negative_gain
from deepser.errors import DeepserError, RecognizerError, UsageError
from deepser.tasks import is_categorical

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
  deepser-recognize --model BUNDLE --mic --serve 8765  (live timeline at http://127.0.0.1:8765/)

original LIVE_SER options: -vd -> --min-speech-ms, -s_ratio -> --speech-ratio,
-vm -> --vad-aggressiveness, -fd -> --vad-frame-ms, -p_mode 1/2 -> --output label/proba,
-g_min/-g_max -> --gain MIN,MAX (no flag: --gain auto).

exit status: 0 done (also after Ctrl-C on a microphone, or after the input ended with
--serve), 1 error (one line on stderr: a missing, unreadable or invalid input file, e.g. one
with NaN or Inf samples; an unusable bundle; a --serve port that is taken), 2 bad command
line (an unknown option or a bad value), 130 a file run interrupted by Ctrl-C (rows so far are
written), 141 the reader of stdout went away (e.g. | head -1)."""


def _number(
    kind: type,
    low: float | None = None,
    high: float | None = None,
    above: bool = False,
    rule: str | None = None,
):
    """An argparse type: an int or a finite float, at least ``low`` (more than ``low`` with
    ``above``) and at most ``high``; a bad value is a command-line error (exit status 2) that
    says ``rule`` (default: the bounds) and the value given."""
    if rule is None:
        bounds = []
        if low is not None:
            bounds.append(f"more than {low:g}" if above else f"at least {low:g}")
        if high is not None:
            bounds.append(f"at most {high:g}")
        rule = "must be " + " and ".join(bounds) if bounds else "must be finite"

    def parse(text: str):
        value = kind(text)  # ValueError: argparse says "invalid int/float value: 'x'"
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text!r} (not a finite number)")
        if (low is not None and (value <= low if above else value < low)) or (
            high is not None and value > high
        ):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


MS = _number(int, 0)  # a duration in ms, 0 or more


def _serve_address(text: str) -> str:
    """An argparse type: ``[HOST:]PORT`` for --serve (checked; kept as given)."""
    from deepser.recognizer.live_view import parse_address

    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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
    src.add_argument(
        "--repair-nonfinite",
        action="store_true",
        help="replace NaN and Inf samples of float files with 0 and go on (a warning on stderr, "
        "also with -q, names the file and the count); without it such a file is an error and "
        "nothing is recognised in it",
    )

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
    out.add_argument(
        "--min-confidence",
        type=_number(float, 0.0, 1.0),
        default=0.0,
        metavar="P",
        help="label a segment 'uncertain' for a task when its top probability (calibrated when "
        "the bundle has a temperature; fused bundles have none) is below P; the experiment "
        "report's abstention table gives, per P, the share of utterances kept and their "
        "accuracy [0: always a class]",
    )
    out.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the input file's emotion timeline: segments as coloured bands, class "
        "probabilities over time, the file's level beneath; FILE.png, or FILE.html (the "
        "picture and the table of segments, self-contained); one input file",
    )
    out.add_argument(
        "--serve",
        type=_serve_address,
        metavar="[HOST:]PORT",
        help="show the live timeline in a browser: serve a local page (segments along a time "
        "axis per task, the table of segments, the current emotion and its probabilities), "
        "updated as each segment ends; its URL is printed on stderr (also with -q). HOST "
        "defaults to 127.0.0.1 (another address is reachable from other machines: a warning); "
        "PORT 0 picks a free port. When the input ends the page stays until Ctrl-C (exit "
        "status 0)",
    )
    out.add_argument(
        "--no-calibration",
        action="store_true",
        help="write the model's raw probabilities instead of those after the bundle's "
        "temperature scaling (fitted on validation speakers during training)",
    )
    out.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or status lines (warnings about repaired audio still print)",
    )

    seg = p.add_argument_group("segmentation (WebRTC VAD)")
    seg.add_argument(
        "--min-speech-ms",
        type=MS,
        default=300,
        help="reject segments whose speech (first to last speech frame) is shorter (the "
        "original's -vd) [300]",
    )
    seg.add_argument(
        "--speech-ratio",
        type=_number(float, 0.0, 1.0, rule="speech ratio must be in [0, 1]"),
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
        type=_number(float, 0.0, above=True),
        default=10.0,
        help="split longer speech into several segments (at a pause near the limit if there "
        "is one) [10]",
    )
    seg.add_argument(
        "--hangover-ms",
        type=MS,
        default=300,
        help="silence that ends a segment; shorter pauses stay inside [300]",
    )
    seg.add_argument(
        "--start-pad-ms", type=MS, default=200, help="audio kept before speech onset [200]"
    )
    seg.add_argument(
        "--end-pad-ms",
        type=MS,
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
        "--practice",
        type=_number(int, 1),
        default=3,
        help="practice segments for --gain auto [3]",
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
        type=_number(float, 0.0, above=True),
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
    except BrokenPipeError:  # stdout's reader went away (| head): stop quietly, as cat does
        _silence_stdout()
        return 141
    except OSError as exc:  # e.g. an output file that cannot be written
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return error_exit(parser.prog, f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:  # before recognition started (loading the model)
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what the closed pipe
    did not take raises nothing ("Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is no file (e.g. captured in tests)
        pass


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


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before the model loads if an output cannot be written: a --log / --jsonl / --plot
    that is a folder, or an output under a file (missing folders are created)."""
    targets = [(args.log, "--log", False), (args.jsonl, "--jsonl", False)]
    targets.append((args.plot, "--plot", False))
    targets.append((args.out_dir, "--out-dir", True))
    for value, option, is_dir in targets:
        if not value:
            continue
        path = Path(value)
        if path.is_dir() and not is_dir:
            raise RecognizerError(f"{path}: is a folder ({option} needs a file name)")
        if path.exists() and not path.is_dir() and is_dir:
            raise RecognizerError(f"{path}: is a file ({option} needs a folder)")
        folder = path if is_dir else path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise RecognizerError(f"{path}: cannot be created, {folder} is a file, not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RecognizerError(f"{path}: cannot be written (no permission in {folder})")


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
    if args.plot is not None:
        if Path(args.plot).suffix.lower() not in (".png", ".html"):
            parser.error(f"--plot {args.plot}: give a .png or .html file name")
        if args.mic is not None or args.meta or len(args.wav or []) != 1:
            parser.error("--plot draws one file's timeline: give exactly one --wav FILE")
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise RecognizerError("--plot needs matplotlib: pip install matplotlib")
    if args.enrol and args.gain == "auto":
        parser.error("--enrol needs the bundle's or fixed gain bounds, not --gain auto")
    settings = _settings(args)  # option values that depend on each other: exit status 2
    from deepser.recognizer.gain import parse_gain_mode

    parse_gain_mode(args.gain)  # UsageError (exit status 2) before any file is read
    _check_outputs(args)

    # imported here, not at the top: --help and a bad command line answer without loading them
    from deepser.bundle import read_primary_bundle
    from deepser.errors import FeatureError
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.gain import make_gain
    from deepser.recognizer.pipeline import Recognizer
    from deepser.recognizer.session import SessionOptions, recognise_files, recognise_live
    from deepser.recognizer.sources import FileSource, MicrophoneSource

    status = _status(args)
    bundle = read_primary_bundle(args.model)  # fails fast, before Keras is imported
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
        min_confidence=args.min_confidence,
        plot=args.plot,
        serve=args.serve,
    )
    gain, warnings = make_gain(args.gain, bundle, args.practice)  # option values first
    files = []
    repair = args.repair_nonfinite

    def file_source(path, **kwargs) -> FileSource:  # checked now, before the model loads
        source = FileSource(path, sample_rate, repair_nonfinite=repair, **kwargs)
        if source.n_nonfinite:  # a warning even with -q: the audio was changed
            print(
                f"{parser.prog}: warning: {path}: {source.n_nonfinite} non-finite samples "
                "(NaN or Inf) replaced with 0 (--repair-nonfinite)",
                file=sys.stderr,
                flush=True,
            )
        return source

    if args.mic is None:
        items = [(w, w) for w in args.wav or []]
        if args.meta:
            from deepser.corpus.meta import list_audio  # pandas: only for --meta

            items += list_audio(args.meta, args.meta_column)
        if not items:
            raise RecognizerError(f"{args.meta}: no audio files listed")
        files = [
            (name, file_source(path, realtime=args.realtime, max_seconds=args.max_seconds))
            for name, path in items
        ]
    enrol = [file_source(path) for path in args.enrol or []]
    mic = None
    if args.mic is not None:  # open (not start) the device first: no device fails fast
        mic = MicrophoneSource(sample_rate, args.mic, max_seconds=args.max_seconds)
    try:
        for warning in warnings:
            status(f"warning: {warning}")
        engine = Engine.from_bundle(args.model, gain)
        engine.calibrated = not args.no_calibration
        if args.min_confidence > 0:
            raw = [
                t["name"]
                for t in engine.tasks
                if is_categorical(t) and t["name"] not in engine.calibrated_tasks
            ]
            if raw:
                status(
                    f"note: --min-confidence applies to uncalibrated probabilities of "
                    f"{', '.join(raw)} (the bundle has no temperature for them, or "
                    "--no-calibration)"
                )
        if enrol:
            for source in enrol:
                try:
                    engine.enrol(source.audio)
                except FeatureError as exc:
                    raise RecognizerError(f"{source.path}: {exc}") from None
            status(f"speaker statistics from {len(enrol)} enrolment file(s)")
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
