"""A recognition session: a bundle's recogniser over a list of files or a live microphone,
writing timelines (stdout, ``--log`` CSV, ``--jsonl``, one file per input in ``--out-dir``,
the live page of ``--serve``), reporting progress and capture problems, and keeping every row
written so far on Ctrl-C.

The command line (:mod:`deepser.cli.recognize`) only parses options into
:class:`SessionOptions` and calls :func:`recognise_files` or :func:`recognise_live`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from deepser.errors import RecognizerError
from deepser.recognizer.engine import Prediction
from deepser.recognizer.live_view import LiveView
from deepser.recognizer.output import Outputs, columns, row
from deepser.recognizer.pipeline import NonFiniteAudioError, Recognizer
from deepser.recognizer.sources import FileSource, Gap, MicrophoneSource
from deepser.recognizer.timeline_plot import write_timeline_plot
from deepser.runtime import ensure_std_streams

Status = Callable[[str], None]  # prints one status line (stderr) unless quiet


@dataclass(frozen=True)
class SessionOptions:
    """Where and how the timeline is written."""

    log: str | None = None  # CSV file
    jsonl: str | None = None  # JSON lines file
    out_dir: str | None = None  # one timeline per input file
    format: str = "csv"  # stdout and out_dir: csv | jsonl
    output: str = "proba"  # proba | label
    whole_file: bool = False  # each file is one segment
    quiet: bool = False
    with_file: bool = False  # a leading "file" column (several inputs share one output)
    min_confidence: float = 0.0  # below it a categorical task's label is "uncertain"
    plot: str | None = None  # the (single) file's timeline picture: .png or .html
    serve: str | None = None  # [HOST:]PORT of the live timeline page (LiveView)


class GainStatus:
    """Reports the auto-gain state when it calibrates or its extremes widen."""

    def __init__(self, gain, status: Status) -> None:
        self.gain, self.status, self.last = gain, status, None

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
            self.status(self.gain.status())


def out_name(name: str, used: set[str], ext: str) -> str:
    """A per-input output file name (relative, no '..'), unique among ``used``."""
    stem = Path(name).with_suffix("").as_posix().lstrip("/").replace("../", "")
    candidate, n = f"{stem}.{ext}", 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}.{ext}"
    used.add(candidate)
    return candidate


def open_text(path: str | Path) -> IO[str]:
    """A new text file for a timeline (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8", newline="")


def open_outputs(options: SessionOptions, tasks, with_file: bool) -> Outputs:
    """The shared outputs: --log, --jsonl, else stdout (unless --out-dir)."""
    ensure_std_streams()  # a closed fd 1 or 2 is taken by /dev/null before any file opens
    to_stdout = not (options.log or options.jsonl or options.out_dir)
    if to_stdout and sys.stdout is None:
        raise RecognizerError(
            "stdout is closed: nowhere to write the timeline (give --log, --jsonl or --out-dir)"
        )
    cols = columns(tasks, options.output, with_file)
    outputs = Outputs()
    try:
        if options.log:
            outputs.add("csv", open_text(options.log), cols)
        if options.jsonl:
            outputs.add("jsonl", open_text(options.jsonl), cols)
        if to_stdout:
            outputs.add(options.format, sys.stdout, cols, owned=False)
    except BaseException:
        outputs.close()
        raise
    return outputs


def open_live_view(options: SessionOptions, tasks, title: str) -> LiveView | None:
    """The ``--serve`` page, listening, its URL on stderr (also with ``-q``: the user needs
    it); None without ``--serve``."""
    if not options.serve:
        return None
    ensure_std_streams()
    view = LiveView(options.serve, tasks, title).start()
    print(f"live view: {view.url}", file=sys.stderr, flush=True)
    return view


def keep_serving(view: LiveView) -> None:
    """The input ended: tell the page, and serve it until Ctrl-C."""
    view.finish()
    print(
        f"input ended; the live view stays at {view.url} until Ctrl-C",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def _predictions(recognizer: Recognizer, source: FileSource, whole: bool) -> Iterator[Prediction]:
    if whole:
        pred = recognizer.whole(source.audio)
        if pred is not None:
            yield pred
    else:
        yield from recognizer.stream(source)


def recognise_files(
    recognizer: Recognizer,
    files: Sequence[tuple[str, FileSource]],
    options: SessionOptions,
    status: Status,
) -> int:
    """Recognise each (name, source) in turn; returns the exit status (130 after Ctrl-C, with
    the rows so far written and the open segment recognised). With ``--serve``, once the
    input ended the page is served until Ctrl-C (the status stays 0)."""
    title = files[0][0] if len(files) == 1 else f"{len(files)} files"
    live = open_live_view(options, recognizer.engine.tasks, f"deepser recognize: {title}")
    try:
        code = _recognise_files(recognizer, files, options, status, live)
        if live is not None and code == 0:
            keep_serving(live)
        return code
    finally:
        if live is not None:
            live.close()


def _recognise_files(
    recognizer: Recognizer,
    files: Sequence[tuple[str, FileSource]],
    options: SessionOptions,
    status: Status,
    live: LiveView | None,
) -> int:
    tasks = recognizer.engine.tasks
    with_file = options.with_file
    outputs = open_outputs(options, tasks, with_file)
    gain_status = GainStatus(recognizer.engine.gain, status)
    gain_status.update()
    used: set[str] = set()
    n_segments = n_rejected = 0
    interrupted = False
    bar = tqdm(
        files,
        desc="recognising",
        unit="file",
        file=sys.stderr,
        disable=options.quiet or len(files) < 2 or sys.stderr is None,
    )
    started = time.perf_counter()

    plotted: list[dict] = []  # rows with probabilities, for --plot

    def write(pred: Prediction, name: str, per_file: Outputs) -> None:
        nonlocal n_segments
        if options.plot:
            plotted.append(row(pred, tasks, "proba", None, options.min_confidence))
        gain_status.update()
        outputs.write(
            row(pred, tasks, options.output, name if with_file else None, options.min_confidence)
        )
        per_file.write(row(pred, tasks, options.output, None, options.min_confidence))
        if live is not None:  # always with probabilities: the page shows them
            live.write(
                row(pred, tasks, "proba", name if with_file else None, options.min_confidence)
            )
        n_segments += 1

    try:
        for name, source in bar:
            per_file = Outputs()
            if options.out_dir:
                target = Path(options.out_dir) / out_name(name, used, options.format)
                per_file.add(options.format, open_text(target), columns(tasks, options.output))
            try:
                for pred in _predictions(recognizer, source, options.whole_file):
                    write(pred, name, per_file)
            except NonFiniteAudioError as exc:  # a source let NaN or Inf through: name the file
                raise RecognizerError(f"{name}: {exc}") from None
            except KeyboardInterrupt:
                interrupted = True
                for pred in recognizer.flush():
                    write(pred, name, per_file)
                break
            finally:
                per_file.close()
                source.close()
                if recognizer.segmenter is not None and not options.whole_file:
                    n_rejected += recognizer.segmenter.n_rejected
            bar.set_postfix(segments=n_segments, refresh=False)
    finally:
        bar.close()
        outputs.close()
    if options.plot and files:
        name, source = files[0]
        write_timeline_plot(options.plot, plotted, tasks, source.path, title=name)
        status(f"timeline picture: {options.plot}")
    elapsed = time.perf_counter() - started
    status(
        f"{'interrupted (Ctrl-C): ' if interrupted else ''}{len(files)} file(s), "
        f"{n_segments} segment(s) recognised, {n_rejected} rejected by the speech gates "
        f"({elapsed:.1f} s)"
    )
    return 130 if interrupted else 0


def recognise_live(
    recognizer: Recognizer, source: MicrophoneSource, options: SessionOptions, status: Status
) -> int:
    """Recognise microphone input until ``--max-seconds`` or Ctrl-C (exit status 0 either
    way; the open segment is recognised and every row is written). With ``--serve``, when
    ``--max-seconds`` ended the input the page is served until Ctrl-C."""
    title = f"deepser recognize: microphone {source.device_name}"
    live = open_live_view(options, recognizer.engine.tasks, title)
    try:
        code, interrupted = _recognise_live(recognizer, source, options, status, live)
        if live is not None and not interrupted:
            keep_serving(live)
        return code
    finally:
        if live is not None:
            live.close()


def _recognise_live(
    recognizer: Recognizer,
    source: MicrophoneSource,
    options: SessionOptions,
    status: Status,
    live: LiveView | None,
) -> tuple[int, bool]:
    engine = recognizer.engine

    def write(pred: Prediction) -> None:
        outputs.write(row(pred, engine.tasks, options.output, None, options.min_confidence))
        if live is not None:
            live.write(row(pred, engine.tasks, "proba", None, options.min_confidence))

    outputs = open_outputs(options, engine.tasks, False)
    gain_status = GainStatus(engine.gain, status)
    resampled = (
        f" (resampled to {engine.sample_rate} Hz)" if source.rate != engine.sample_rate else ""
    )
    status(f"listening on {source.device_name!r} at {source.rate} Hz{resampled}; Ctrl-C stops")
    gain_status.update()
    reported, reported_at = 0, 0.0
    interrupted = False
    n_segments = 0
    recognizer.start()
    try:
        try:
            for chunk in source:
                if isinstance(chunk, Gap):
                    preds = recognizer.skip(chunk.samples)
                else:
                    preds = recognizer.feed(chunk)
                for pred in preds:
                    gain_status.update()
                    write(pred)
                    n_segments += 1
                lost = source.overflows + source.dropped
                if lost > reported and time.monotonic() - reported_at > 1.0:
                    reported, reported_at = lost, time.monotonic()
                    status(
                        f"warning: capture overflow: {source.overflows} input overflow(s), "
                        f"{source.dropped} chunk(s) dropped so far (the recogniser lags)"
                    )
        except KeyboardInterrupt:
            interrupted = True
        source.close()
        for pred in recognizer.flush():
            write(pred)
            n_segments += 1
    finally:
        source.close()
        outputs.close()
    seg = recognizer.segmenter
    status(
        f"{'stopped (Ctrl-C): ' if interrupted else ''}captured {source.seconds:.1f} s, "
        f"{n_segments} segment(s) recognised, {seg.n_rejected if seg else 0} rejected, "
        f"{source.overflows} input overflow(s), {source.dropped} chunk(s) dropped"
    )
    return 0, interrupted
