"""Audio chunks -> segments -> predictions, incrementally."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np

from deepser.errors import FeatureError, RecognizerError
from deepser.recognizer.engine import Engine, Prediction
from deepser.recognizer.vad import Segment, StreamingSegmenter, VadSettings

log = logging.getLogger(__name__)


class NonFiniteAudioError(RecognizerError):
    """Audio with NaN or Inf samples reached the recogniser (a source let them through)."""


def check_finite(y: np.ndarray, sample_rate: int, offset: int = 0) -> None:
    """Raise :class:`NonFiniteAudioError` if ``y`` (samples from ``offset`` of the stream on)
    holds NaN or Inf: they would give garbage features and a confident-looking label."""
    finite = np.isfinite(y)
    if not finite.all():
        n, first = int(y.size - np.count_nonzero(finite)), offset + int(np.argmin(finite))
        raise NonFiniteAudioError(
            f"{n} non-finite audio samples (NaN or Inf) from {first / sample_rate:.3f} s of the "
            "stream on: nothing is recognised from invalid audio"
        )


class Recognizer:
    """A bundle's engine plus VAD settings; :meth:`stream` recognises one audio stream."""

    def __init__(self, engine: Engine, settings: VadSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or VadSettings()
        self.segmenter: StreamingSegmenter | None = None
        self.n_too_short = 0

    def new_segmenter(self) -> StreamingSegmenter:
        return StreamingSegmenter(self.engine.sample_rate, self.settings)

    def start(self) -> None:
        """Begin a new stream (times restart at 0)."""
        self.segmenter = self.new_segmenter()

    def feed(self, chunk: np.ndarray) -> list[Prediction]:
        """Predictions for the segments that ``chunk`` completes (usually none or one)."""
        if self.segmenter is None:
            self.start()
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        check_finite(chunk, self.engine.sample_rate, self.segmenter.samples_seen)
        return [p for s in self.segmenter.feed(chunk) if (p := self.predict(s)) is not None]

    def flush(self) -> list[Prediction]:
        """End of the stream (or Ctrl-C): recognise the segment still open, if any."""
        if self.segmenter is None:
            return []
        return [p for s in self.segmenter.flush() if (p := self.predict(s)) is not None]

    def skip(self, n: int) -> list[Prediction]:
        """``n`` samples were lost: recognise the open segment, then continue after the gap."""
        if self.segmenter is None:
            self.start()
        return [p for s in self.segmenter.skip(n) if (p := self.predict(s)) is not None]

    def stream(self, chunks: Iterable[np.ndarray]) -> Iterator[Prediction]:
        """Predictions for each speech segment of ``chunks``, each as soon as it ends."""
        self.start()
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.flush()

    def whole(self, y: np.ndarray) -> Prediction | None:
        """One prediction for the whole signal ``y`` (no segmentation; for utterance files)."""
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        check_finite(y, self.engine.sample_rate)
        decisions = self.new_segmenter().speech_frames(y)
        ratio = float(decisions.mean()) if decisions.size else 0.0
        return self.predict(Segment(0, y.size, self.engine.sample_rate, y, ratio, "whole"))

    def predict(self, segment: Segment) -> Prediction | None:
        """The engine's prediction, or None for a segment it cannot use (too short, non-finite
        features: logged and counted); non-finite model outputs are an error, not a label."""
        try:
            pred = self.engine.recognize(segment)
        except FeatureError as exc:
            self.n_too_short += 1
            log.warning("segment %.2f-%.2f s skipped: %s", segment.start_s, segment.end_s, exc)
            return None
        for task, value in pred.outputs.items():
            if not np.all(np.isfinite(value)):
                raise RecognizerError(
                    f"the model gave non-finite outputs (NaN or Inf) for task {task!r} on the "
                    f"segment {segment.start_s:.2f}-{segment.end_s:.2f} s: the bundle is broken"
                )
        return pred
