"""Audio chunks -> segments -> predictions, incrementally."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np

from deepser.errors import FeatureError
from deepser.recognizer.engine import Engine, Prediction
from deepser.recognizer.vad import Segment, StreamingSegmenter, VadSettings

log = logging.getLogger(__name__)


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
        decisions = self.new_segmenter().speech_frames(y)
        ratio = float(decisions.mean()) if decisions.size else 0.0
        return self.predict(Segment(0, y.size, self.engine.sample_rate, y, ratio, "whole"))

    def predict(self, segment: Segment) -> Prediction | None:
        try:
            return self.engine.recognize(segment)
        except FeatureError as exc:
            self.n_too_short += 1
            log.warning("segment %.2f-%.2f s skipped: %s", segment.start_s, segment.end_s, exc)
            return None
