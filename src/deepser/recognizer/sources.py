"""Audio sources: float32 mono chunks at the feature sample rate, from a file or a microphone.

:class:`MicrophoneSource` captures with PyAudio in PortAudio's own callback thread, which only
puts raw chunks into a bounded queue (``put_nowait``): the model never blocks capture. Input
overflows reported by PortAudio and chunks dropped because the queue was full are counted.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepser.corpus.audio import AudioStream, read_audio
from deepser.errors import RecognizerError
from deepser.runtime import quiet_stderr

PYAUDIO_HINT = (
    "live input needs PyAudio: pip install 'deepser[live]' (build needs apt portaudio19-dev)"
)


class FileSource:
    """A file (any soundfile format, rate, channel count) as chunks at ``sample_rate``, read
    block by block (:class:`deepser.corpus.audio.AudioStream`): memory does not grow with the
    file's length. The chunks equal :func:`deepser.corpus.audio.load_audio`'s samples.

    The file is checked when the source is made, before anything is recognised: its header, and
    for a float file its samples (NaN or Inf: :class:`AudioError`, or with
    ``repair_nonfinite`` replaced with 0 and counted in :attr:`n_nonfinite`). With ``realtime``
    the chunks are paced at the speed of the audio (a file played as if live).
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int,
        chunk_s: float = 0.1,
        realtime: bool = False,
        max_seconds: float | None = None,
        repair_nonfinite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.chunk = max(1, int(round(chunk_s * sample_rate)))
        self.realtime = realtime
        self.max_samples = None if max_seconds is None else int(round(max_seconds * sample_rate))
        self.repair_nonfinite = repair_nonfinite
        # AudioError now, not half-way through a batch (or after rows were written)
        self.stream = AudioStream(
            self.path, self.sample_rate, self.max_samples, repair_nonfinite=repair_nonfinite
        )
        self.n_nonfinite = self.stream.scan_nonfinite()  # replaced with 0 (repair_nonfinite)

    @property
    def audio(self) -> np.ndarray:
        """The whole signal at once (``--whole-file``: one segment per file), as
        :func:`load_audio` reads it (cut after ``max_seconds``)."""
        y, _ = read_audio(self.path, self.sample_rate, self.repair_nonfinite)
        return y[: self.max_samples]

    def __iter__(self) -> Iterator[np.ndarray]:
        """Chunks of ``chunk`` samples (the last one shorter), read from the file as needed."""
        self.close()
        self._active = self._chunks()
        return self._active

    def _chunks(self) -> Iterator[np.ndarray]:
        t0 = time.monotonic()
        position = 0
        rest = np.zeros(0, np.float32)
        for block in self.stream:
            y = np.concatenate([rest, block]) if rest.size else block
            n = y.size - y.size % self.chunk
            for i in range(0, n, self.chunk):
                if self.realtime:
                    delay = t0 + (position + i) / self.sample_rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield y[i : i + self.chunk]
            position += n
            rest = y[n:]
        if rest.size:
            if self.realtime:
                delay = t0 + position / self.sample_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield rest

    def close(self) -> None:
        """Close the file if an iteration was left unfinished (safe to call twice)."""
        active, self._active = getattr(self, "_active", None), None
        if active is not None:
            active.close()


def _pyaudio():
    try:
        import pyaudio
    except ImportError:
        raise RecognizerError(PYAUDIO_HINT) from None
    with quiet_stderr():
        return pyaudio, pyaudio.PyAudio()


@dataclass(frozen=True)
class Gap:
    """Audio lost between two chunks (dropped on overflow): ``samples`` at the feature rate."""

    samples: int


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    channels: int
    default_rate: float
    is_default: bool


def list_devices() -> list[Device]:
    """Input-capable audio devices as PortAudio sees them."""
    _, pa = _pyaudio()
    try:
        try:
            default = pa.get_default_input_device_info()["index"]
        except OSError:
            default = -1
        out = []
        for i in range(pa.get_device_count()):
            d = pa.get_device_info_by_index(i)
            if d["maxInputChannels"] > 0:
                out.append(
                    Device(
                        i, d["name"], d["maxInputChannels"], d["defaultSampleRate"], i == default
                    )
                )
        return out
    finally:
        with quiet_stderr():
            pa.terminate()


def _find_device(pa, device: str | None) -> dict:
    """Device info for ``device`` (None/'default', an index, or part of a name)."""
    if device in (None, "", "default"):
        try:
            return pa.get_default_input_device_info()
        except OSError:
            raise RecognizerError(
                "no audio input device: PortAudio finds no default input "
                "(see --list-devices; name one with --mic DEVICE)"
            ) from None
    infos = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
    inputs = [d for d in infos if d["maxInputChannels"] > 0]
    if device.isdigit():
        match = [d for d in inputs if d["index"] == int(device)]
    else:
        match = [d for d in inputs if device.lower() in d["name"].lower()]
    if not match:
        known = ", ".join(f"{d['index']}: {d['name']}" for d in inputs) or "none"
        raise RecognizerError(f"no audio input device {device!r} (input devices: {known})")
    return match[0]


class MicrophoneSource:
    """Live capture: 16-bit PCM chunks from PortAudio's callback thread via a bounded queue."""

    def __init__(
        self,
        sample_rate: int,
        device: str | None = None,
        chunk_s: float = 0.02,
        max_seconds: float | None = None,
        queue_s: float = 60.0,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self._pyaudio, self._pa = _pyaudio()
        self.overflows = 0  # PortAudio input-overflow flags (audio lost before us)
        self.dropped = 0  # chunks dropped because the queue was full (the consumer lagged)
        self.captured = 0  # samples delivered at the capture rate
        self._done = object()
        try:
            info = _find_device(self._pa, device)
            self.device_name = str(info["name"])
            self.rate = self._pick_rate(info)
            frames = max(1, int(round(chunk_s * self.rate)))
            self._queue: queue.Queue = queue.Queue(maxsize=max(4, int(queue_s / chunk_s)))
            self._limit = None if max_seconds is None else int(round(max_seconds * self.rate))
            with quiet_stderr():
                self._stream = self._pa.open(
                    format=self._pyaudio.paInt16,
                    channels=1,
                    rate=self.rate,
                    input=True,
                    input_device_index=int(info["index"]),
                    frames_per_buffer=frames,
                    stream_callback=self._callback,
                    start=False,
                )
        except OSError as exc:
            self.close()
            raise RecognizerError(
                f"cannot open audio input {device or 'default'!r}: {exc}"
            ) from None
        except BaseException:
            self.close()
            raise
        self._resampler = self._new_resampler()

    def _new_resampler(self):
        """Capture rate -> feature rate, streaming (None when they are equal)."""
        if self.rate == self.sample_rate:
            return None
        import soxr

        return soxr.ResampleStream(self.rate, self.sample_rate, 1, dtype="float32", quality="HQ")

    def _pick_rate(self, info: dict) -> int:
        """The feature rate if the device takes it, else the device's default rate."""
        try:
            with quiet_stderr():
                ok = self._pa.is_format_supported(
                    self.sample_rate,
                    input_device=int(info["index"]),
                    input_channels=1,
                    input_format=self._pyaudio.paInt16,
                )
            if ok:
                return self.sample_rate
        except ValueError:
            pass
        return int(info["defaultSampleRate"])

    def _callback(self, data, n_frames, time_info, status):  # PortAudio's thread
        if status & self._pyaudio.paInputOverflow:
            self.overflows += 1
        done = False
        if self._limit is not None and self.captured + n_frames >= self._limit:
            data = data[: 2 * (self._limit - self.captured)]
            done = True
        position = self.captured
        self.captured += len(data) // 2
        try:
            self._queue.put_nowait((position, data))
        except queue.Full:
            self.dropped += 1
        if done:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(self._done)
            return None, self._pyaudio.paComplete
        return None, self._pyaudio.paContinue

    def __iter__(self) -> Iterator[np.ndarray | Gap]:
        """Chunks (float32 at ``sample_rate``), and a :class:`Gap` where chunks were dropped."""
        self._stream.start_stream()
        expected = 0
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._stream.is_active() and self._queue.empty():
                    break  # the stream stopped (device gone, or done with a full queue)
                continue
            if item is self._done:
                break
            position, data = item
            if position > expected:
                yield Gap(int(round((position - expected) * self.sample_rate / self.rate)))
                self._resampler = self._new_resampler()
            expected = position + len(data) // 2
            y = np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768.0
            if self._resampler is not None:
                y = self._resampler.resample_chunk(y)
            yield y

    @property
    def seconds(self) -> float:
        """Seconds of audio captured so far."""
        return self.captured / getattr(self, "rate", self.sample_rate)

    def close(self) -> None:
        """Stop capture and release PortAudio (safe to call twice)."""
        stream, self._stream = getattr(self, "_stream", None), None
        with quiet_stderr():
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.stop_stream()
                stream.close()
            if getattr(self, "_pa", None) is not None:
                self._pa.terminate()
                self._pa = None
