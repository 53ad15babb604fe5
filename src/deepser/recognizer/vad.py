"""Streaming speech segmentation with WebRTC VAD.

:class:`StreamingSegmenter` takes float32 mono audio at the feature sample rate in chunks of any
size and yields :class:`Segment` objects as soon as their end is detected, never waiting for the
end of the stream. The VAD decides per 10/20/30 ms frame of 16-bit PCM at 8/16/32/48 kHz: it
runs on the audio itself when the feature rate is one of those, otherwise on a streaming 16 kHz
resampled copy (segments are always cut from the feature-rate audio).

Rules (frame = one VAD frame):

- **onset**: a segment starts after ``onset_ms`` of consecutive speech frames; it includes
  ``start_pad_ms`` of audio before the first speech frame (never reaching into the previous
  segment), so word onsets are not clipped;
- **end**: ``hangover_ms`` of consecutive non-speech frames close it; it includes ``end_pad_ms``
  (at most ``hangover_ms``) of audio after the last speech frame; shorter pauses stay inside;
- **split**: a segment reaching ``max_segment_s`` is emitted and the speech goes on in a new
  one; the cut is put in the last non-speech frame of the segment's final quarter, if any;
- **gates**: the speech extent (first to last speech frame) must last ``min_speech_ms`` (the
  original's ``-vd``) and its fraction of speech frames (``speech_ratio``, the original's
  ``-s_ratio``) must reach ``speech_ratio``; other segments are counted as rejected, not emitted.

WebRTC VAD has its own overhang: it keeps deciding "speech" for about 0.1-0.16 s after speech
stops (modes 0-1; a little less in 2-3), which adds to ``end_pad_ms`` and to the emission delay.
It also tends to call the first ~0.1 s of a stream speech (no noise estimate yet); the speech
gates reject that blip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

VAD_RATES = (8000, 16000, 32000, 48000)
FRAME_MS = (10, 20, 30)


@dataclass(frozen=True)
class VadSettings:
    """Segmentation parameters (see the module docstring)."""

    frame_ms: int = 20
    aggressiveness: int = 1
    onset_ms: int = 40
    start_pad_ms: int = 200
    end_pad_ms: int = 200
    hangover_ms: int = 300
    min_speech_ms: int = 300
    speech_ratio: float = 0.3
    max_segment_s: float = 10.0

    def __post_init__(self) -> None:
        if self.frame_ms not in FRAME_MS:
            raise ValueError(f"VAD frame length must be 10, 20 or 30 ms, got {self.frame_ms}")
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"VAD aggressiveness must be 0-3, got {self.aggressiveness}")
        if min(self.onset_ms, self.start_pad_ms, self.end_pad_ms, self.min_speech_ms) < 0:
            raise ValueError("VAD durations must not be negative")
        if self.hangover_ms < self.frame_ms:
            raise ValueError(f"hangover ({self.hangover_ms} ms) is shorter than one VAD frame")
        if not 0.0 <= self.speech_ratio <= 1.0:
            raise ValueError(f"speech ratio must be in [0, 1], got {self.speech_ratio}")
        if self.max_segment_s * 1000 < 4 * self.frame_ms:
            raise ValueError(f"max segment length {self.max_segment_s} s is too short")


@dataclass
class Segment:
    """A detected speech segment: samples ``[start, end)`` of the stream at ``sample_rate``."""

    start: int
    end: int
    sample_rate: int
    audio: np.ndarray
    speech_ratio: float
    reason: str  # "end" (silence after speech), "split" (max length), "flush" (end of stream),
    # "gap" (audio lost after it), "whole" (a whole file)
    detected_at: float = field(default_factory=time.perf_counter)

    @property
    def start_s(self) -> float:
        return self.start / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.end / self.sample_rate


def vad_rate(sample_rate: int) -> int:
    """The rate the VAD runs at for audio at ``sample_rate``."""
    return sample_rate if sample_rate in VAD_RATES else 16000


def to_pcm16(y: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 (clipped)."""
    return np.clip(np.rint(np.asarray(y, np.float32) * 32768.0), -32768, 32767).astype(np.int16)


class _Buffer:
    """Audio kept for the current (or next) segment: chunks with absolute sample positions."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.start = 0  # absolute position of chunks[0][0]
        self.end = 0  # absolute position after the last sample

    def append(self, chunk: np.ndarray) -> None:
        if chunk.size:
            self.chunks.append(chunk)
            self.end += chunk.size
            if len(self.chunks) > 64:  # keep the list short for tiny chunks
                self.chunks = [np.concatenate(self.chunks)]

    def discard_before(self, pos: int) -> None:
        while self.chunks and self.start + self.chunks[0].size <= pos:
            self.start += self.chunks.pop(0).size

    def slice(self, a: int, b: int) -> np.ndarray:
        if a < self.start or b > self.end:
            raise ValueError(f"samples [{a}, {b}) are not buffered ([{self.start}, {self.end}))")
        whole = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        self.chunks = [whole]
        return whole[a - self.start : b - self.start].copy()


class StreamingSegmenter:
    """Feed audio chunks with :meth:`feed`; it yields finished segments as they are detected."""

    def __init__(self, sample_rate: int, settings: VadSettings | None = None) -> None:
        import webrtcvad

        self.settings = s = settings or VadSettings()
        self.sample_rate = int(sample_rate)
        self.vad_rate = vad_rate(self.sample_rate)
        self._vad = webrtcvad.Vad(s.aggressiveness)
        self._resampler = None
        if self.vad_rate != self.sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(
                self.sample_rate, self.vad_rate, 1, dtype="float32", quality="HQ"
            )
        self.frame_len = self.vad_rate * s.frame_ms // 1000  # VAD samples per frame
        frames = lambda ms: max(1, -(-int(ms) // s.frame_ms))  # noqa: E731 (ceil)
        self._onset = frames(s.onset_ms)
        self._hangover = frames(s.hangover_ms)
        self._start_pad = self._samples(s.start_pad_ms)
        self._end_pad = min(self._samples(s.end_pad_ms), self._samples(s.hangover_ms))
        self._max_len = int(round(s.max_segment_s * self.sample_rate))
        self._pending = np.zeros(0, np.int16)  # VAD-rate samples not yet in a full frame
        self._buffer = _Buffer()
        self.n_frames = 0  # VAD frames decided so far
        self._origin = 0  # stream sample where frame ``_frame0`` starts (moved by skip())
        self._frame0 = 0
        self.n_emitted = 0
        self.n_rejected = 0
        self._floor = 0  # no segment may start before this sample (end of the previous one)
        self._run = 0  # consecutive speech frames while idle
        self._active = False
        self._seg_start = 0
        self._first_frame = 0  # stream frame of the active segment's first decision
        self._decisions: list[bool] = []  # frames of the active segment, from its first speech

    # -- frame <-> sample bookkeeping ------------------------------------------------------
    def _samples(self, ms: float) -> int:
        return int(round(ms * self.sample_rate / 1000))

    def _pos(self, frame: int) -> int:
        """Feature-rate sample where VAD frame ``frame`` starts."""
        return (
            self._origin
            + (frame - self._frame0) * self.frame_len * self.sample_rate // self.vad_rate
        )

    @property
    def samples_seen(self) -> int:
        return self._buffer.end

    # -- public API --------------------------------------------------------------------
    def feed(self, chunk: np.ndarray) -> Iterator[Segment]:
        """Add audio (float32 mono at ``sample_rate``); yield the segments it completes."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._buffer.append(chunk)
        vad_in = chunk if self._resampler is None else self._resampler.resample_chunk(chunk)
        yield from self._frames(to_pcm16(vad_in))
        if not self._active:
            keep = self._pos(self.n_frames - self._run) - self._start_pad
            self._buffer.discard_before(max(keep, self._floor))

    def flush(self, reason: str = "flush") -> Iterator[Segment]:
        """End of stream: close an open segment (its trailing partial VAD frame is ignored)."""
        if self._resampler is not None:
            yield from self._frames(
                to_pcm16(self._resampler.resample_chunk(np.zeros(0, np.float32), True))
            )
        if self._active:
            d = self._decisions
            last = len(d) - 1 - d[::-1].index(True)
            end = min(self._pos(self._first_frame + last + 1) + self._end_pad, self._buffer.end)
            yield from self._close(end, reason)

    def skip(self, n: int) -> Iterator[Segment]:
        """``n`` samples of the stream were lost (capture overflow): close an open segment at
        the gap and go on after it, so later times stay true to the stream."""
        yield from self.flush("gap")
        self._origin = self._buffer.end + int(n)
        self._frame0 = self.n_frames
        self._buffer = _Buffer()
        self._buffer.start = self._buffer.end = self._floor = self._origin
        self._pending = np.zeros(0, np.int16)
        self._run = 0
        if self._resampler is not None:
            import soxr

            self._resampler = soxr.ResampleStream(
                self.sample_rate, self.vad_rate, 1, dtype="float32", quality="HQ"
            )

    def speech_frames(self, y: np.ndarray) -> np.ndarray:
        """VAD decisions for a whole signal at ``sample_rate`` (no segmentation state)."""
        import soxr
        import webrtcvad

        vad = webrtcvad.Vad(self.settings.aggressiveness)  # fresh: the stream's state is kept
        y = np.asarray(y, np.float32)
        if self.vad_rate != self.sample_rate:
            y = soxr.resample(y, self.sample_rate, self.vad_rate, quality="HQ")
        pcm = to_pcm16(y)
        n = pcm.size // self.frame_len
        return np.array(
            [
                vad.is_speech(
                    pcm[i * self.frame_len : (i + 1) * self.frame_len].tobytes(), self.vad_rate
                )
                for i in range(n)
            ],
            dtype=bool,
        )

    # -- internals ---------------------------------------------------------------------
    def _frames(self, pcm: np.ndarray) -> Iterator[Segment]:
        if self._pending.size:
            pcm = np.concatenate([self._pending, pcm])
        n = pcm.size // self.frame_len
        for i in range(n):
            frame = pcm[i * self.frame_len : (i + 1) * self.frame_len]
            speech = self._vad.is_speech(frame.tobytes(), self.vad_rate)
            yield from self._decide(speech)
        self._pending = pcm[n * self.frame_len :].copy()

    def _decide(self, speech: bool) -> Iterator[Segment]:
        k = self.n_frames
        self.n_frames += 1
        if not self._active:
            self._run = self._run + 1 if speech else 0
            if self._run >= self._onset:
                first = k - self._run + 1
                self._active = True
                self._seg_start = max(self._pos(first) - self._start_pad, self._floor, 0)
                self._decisions = [True] * self._run
                self._first_frame = first
                self._run = 0
            return
        self._decisions.append(speech)
        d = self._decisions
        if not speech and not any(d[-self._hangover :]):
            last = len(d) - 1 - d[::-1].index(True)  # last speech frame (relative)
            end = min(self._pos(self._first_frame + last + 1) + self._end_pad, self._pos(k + 1))
            yield from self._close(end, "end")
        elif self._pos(k + 1) - self._seg_start >= self._max_len:
            yield from self._split(k)

    def _stats(self, decisions: list[bool]) -> tuple[float, float]:
        """(speech extent in ms, speech ratio inside the extent) of a segment's decisions."""
        if True not in decisions:
            return 0.0, 0.0
        first = decisions.index(True)
        last = len(decisions) - 1 - decisions[::-1].index(True)
        extent = decisions[first : last + 1]
        return len(extent) * self.settings.frame_ms, sum(extent) / len(extent)

    def _close(
        self, end: int, reason: str, decisions: list[bool] | None = None
    ) -> Iterator[Segment]:
        decisions = self._decisions if decisions is None else decisions
        extent_ms, ratio = self._stats(decisions)
        start = self._seg_start
        self._active = False
        self._floor = end
        self._decisions = []
        s = self.settings
        if extent_ms >= s.min_speech_ms and ratio >= s.speech_ratio and end > start:
            self.n_emitted += 1
            audio = self._buffer.slice(start, end)
            self._buffer.discard_before(end)
            yield Segment(start, end, self.sample_rate, audio, ratio, reason)
        else:
            self.n_rejected += 1
            self._buffer.discard_before(end)

    def _split(self, k: int) -> Iterator[Segment]:
        d = self._decisions
        tail = max(1, len(d) // 4)
        silent = [j for j in range(len(d) - tail, len(d)) if not d[j]]
        cut_rel = silent[-1] + 1 if silent else len(d)  # frames [0, cut_rel) go to this part
        first_frame = self._first_frame
        cut = self._pos(first_frame + cut_rel)
        head, rest = d[:cut_rel], d[cut_rel:]
        yield from self._close(cut, "split", head)
        if rest:  # all speech (the cut is after the last silent frame): go on at once
            self._active = True
            self._seg_start = cut
            self._first_frame = first_frame + cut_rel
            self._decisions = rest
