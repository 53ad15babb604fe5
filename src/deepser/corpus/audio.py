"""Audio loading: any soundfile-readable file -> mono float32 at a chosen sample rate.

- :func:`load_audio` reads a whole file (the workflow: one utterance at a time);
- :class:`AudioStream` reads a file block by block (mono mix and streaming soxr resampling), so
  its memory does not grow with the file's length (the recogniser on hour-long recordings); its
  samples equal :func:`load_audio`'s.

Non-finite samples (NaN or Inf; only float files can hold them) are an error,
:class:`AudioError` naming the file and their count, wherever audio is read, unless the caller
asks to repair them (``repair_nonfinite``: replaced with 0, and counted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from deepser.errors import AudioError

BLOCK_FRAMES = 1 << 16  # frames read at a time by AudioStream (about 4 s at 16 kHz)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the only sample formats that can hold NaN or Inf


def _not_a_file(path: str | Path) -> str:
    """Why ``path`` (not a regular file) cannot be read as audio."""
    if Path(path).is_dir():
        return "is a folder, not an audio file"
    return "not a regular file" if Path(path).exists() else "file not found"


def check_audio(path: str | Path) -> tuple[int, int]:
    """Read only the header; return (frames, sample rate) or raise :class:`AudioError`."""
    if not Path(path).is_file():
        raise AudioError(path, _not_a_file(path))
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError with the reason
        raise AudioError(path, f"unreadable audio ({exc})") from None
    if info.frames <= 0:
        raise AudioError(path, "contains no samples")
    return int(info.frames), int(info.samplerate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Mix (frames, channels) down to (frames,) by averaging the channels."""
    if data.ndim == 1:
        return data
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); a no-op at equal rates."""
    if orig_sr == target_sr:
        return y
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def nonfinite_reason(count: int, first_s: float) -> str:
    """The :class:`AudioError` reason for ``count`` non-finite samples, the first at ``first_s``."""
    return (
        f"{count} non-finite samples (NaN or Inf), the first at {first_s:.3f} s: "
        "a float file with invalid samples"
    )


def _nonfinite(data: np.ndarray) -> tuple[int, int]:
    """(number of non-finite values in ``data`` (frames, channels), first such frame or -1)."""
    bad = ~np.isfinite(data)
    count = int(np.count_nonzero(bad))
    if not count:
        return 0, -1
    return count, int(np.argmax(bad.any(axis=1) if bad.ndim == 2 else bad))


def read_audio(
    path: str | Path, sample_rate: int, repair_nonfinite: bool = False
) -> tuple[np.ndarray, int]:
    """:func:`load_audio`, and with ``repair_nonfinite`` non-finite samples replaced with 0
    instead of an error; returns (mono float32 at ``sample_rate``, samples replaced)."""
    if not Path(path).is_file():
        raise AudioError(path, _not_a_file(path))
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "contains no samples")
    count, first = _nonfinite(data)
    if count:
        if not repair_nonfinite:
            raise AudioError(path, nonfinite_reason(count, first / sr))
        data[~np.isfinite(data)] = 0.0
    y = np.ascontiguousarray(resample(to_mono(data), sr, sample_rate), dtype=np.float32)
    return y, count


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Load ``path`` as mono float32 in [-1, 1] at ``sample_rate`` (integer and float formats);
    :class:`AudioError` if it is missing, unreadable, empty or holds NaN or Inf samples."""
    return read_audio(path, sample_rate)[0]


class AudioStream:
    """``path`` as mono float32 blocks at ``sample_rate``, read ``block_frames`` frames at a time:
    memory stays bounded whatever the file's length. The samples are :func:`load_audio`'s (the
    same soxr resampler, run as a stream), cut after ``max_samples`` if given.

    The header is checked at once (:class:`AudioError`). :meth:`scan_nonfinite` reads a float
    file through once to count its non-finite samples before anything is recognised; while
    streaming, non-finite samples raise :class:`AudioError`, or with ``repair_nonfinite`` are
    replaced with 0 (counted in :attr:`n_repaired`).
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int,
        max_samples: int | None = None,
        repair_nonfinite: bool = False,
        block_frames: int = BLOCK_FRAMES,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.max_samples = max_samples
        self.repair_nonfinite = repair_nonfinite
        self.block_frames = max(1, int(block_frames))
        self.frames, self.file_rate = check_audio(self.path)
        try:
            self.subtype = sf.info(str(self.path)).subtype
        except Exception:  # checked just above; a file replaced meanwhile fails when read
            self.subtype = ""
        self.n_repaired = 0

    @property
    def may_hold_nonfinite(self) -> bool:
        """Whether the sample format can hold NaN or Inf (float PCM)."""
        return self.subtype in FLOAT_SUBTYPES

    def _frames_needed(self) -> int | None:
        """File frames that give ``max_samples`` output samples (with the resampler's margin)."""
        if self.max_samples is None:
            return None
        ratio = self.file_rate / self.sample_rate
        return int(np.ceil(self.max_samples * ratio)) + 2 * self.block_frames

    def _open(self) -> sf.SoundFile:
        try:
            return sf.SoundFile(str(self.path))
        except Exception as exc:
            raise AudioError(self.path, f"unreadable audio ({exc})") from None

    def _blocks(self, limit: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first frame, (frames, channels) float32 block) over the file, up to ``limit``."""
        with self._open() as f:
            pos = 0
            while limit is None or pos < limit:
                n = self.block_frames if limit is None else min(self.block_frames, limit - pos)
                try:
                    data = f.read(n, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioError(self.path, f"unreadable audio ({exc})") from None
                if data.shape[0] == 0:
                    return
                yield pos, data
                pos += data.shape[0]

    def scan_nonfinite(self) -> int:
        """Count the non-finite samples of the part that will be read (float files only: other
        sample formats cannot hold them); without ``repair_nonfinite``, raise
        :class:`AudioError` with the count and the first one's time if there are any."""
        if not self.may_hold_nonfinite:
            return 0
        count, first = 0, -1
        for pos, data in self._blocks(self._frames_needed()):
            n, at = _nonfinite(data)
            if n and first < 0:
                first = pos + at
            count += n
        if count and not self.repair_nonfinite:
            raise AudioError(self.path, nonfinite_reason(count, first / self.file_rate))
        return count

    def __iter__(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks at ``sample_rate`` (of varying size), ``max_samples`` in all."""
        resampler = None
        if self.file_rate != self.sample_rate:
            import soxr

            resampler = soxr.ResampleStream(
                self.file_rate, self.sample_rate, 1, dtype="float32", quality="HQ"
            )
        check = self.may_hold_nonfinite
        left = self.max_samples
        blocks = self._blocks()
        self.n_repaired = 0
        while left is None or left > 0:
            pos, data = next(blocks, (None, None))
            if data is None:
                if resampler is not None:  # the resampler's last samples
                    y = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                    y = y if left is None else y[:left]
                    if y.size:
                        yield y
                return
            if check:
                n, at = _nonfinite(data)
                if n:
                    if not self.repair_nonfinite:
                        blocks.close()
                        first = (pos + at) / self.file_rate
                        raise AudioError(self.path, nonfinite_reason(n, first))
                    data[~np.isfinite(data)] = 0.0
                    self.n_repaired += n
            y = np.ascontiguousarray(to_mono(data), dtype=np.float32)
            if resampler is not None:
                y = resampler.resample_chunk(y)
            if left is not None:
                y = y[:left]
                left -= y.size
            if y.size:
                yield y
        blocks.close()
