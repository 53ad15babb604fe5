"""Fast audio header checks for validating many files (a meta file's every row).

:func:`wav_frames` parses the header of a plain RIFF/WAVE file (PCM or IEEE float, also as
WAVE_FORMAT_EXTENSIBLE) in Python, without libsndfile; it answers only when it is sure, with the
frames and sample rate ``soundfile.info`` gives, and ``None`` for anything else (other formats,
unusual chunks, a data chunk that does not end the file, ...). :func:`audio_check` uses it
first and falls back to :func:`deepser.corpus.audio.check_audio` (libsndfile), so its answers
and messages are check_audio's; it gives the file's state (size, modification time) from the
same ``stat`` too. :class:`AudioChecks` checks many files in parallel processes while the caller
goes on, :func:`audio_problems` a list of them.

What the parser accepts follows libsndfile 1.2's WAV reader (``wav.c``, ``wavlike.c``): a
``fmt `` chunk (PCM of 8, 16, 24 or 32 bits, float of 32 or 64 bits, block align equal to
channels x bytes per sample, 1 to 1024 channels, a positive rate), then only ``fact``, ``PEAK``
(of the size libsndfile requires), ``LIST``/``INFO`` (subchunks tiling it exactly), ``JUNK`` or
``PAD `` chunks, then a ``data`` chunk of a positive number of whole frames (at least 4 bytes)
that ends the file (but for the pad byte of an odd size).
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import struct
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from deepser.corpus.audio import check_audio
from deepser.errors import AudioError

FOLDER = "is a folder, not an audio file"
HEAD_BYTES = 4096  # the header read; a data chunk starting later goes to libsndfile
CHUNK_PATHS = 2000  # paths per task of the process pool
MIN_PARALLEL = 4000  # fewer paths are checked in this process

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_BITS = {_PCM: (8, 16, 24, 32), _FLOAT: (32, 64)}
_GUID_TAIL = b"\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_*
_MAX_CHANNELS = 1024  # libsndfile's SF_MAX_CHANNELS
_SKIPPED = (b"JUNK", b"PAD ")
_LIST_MARKERS = (b"INFO", b"adtl", b"exif", b"data", b"labl", b"\0\0\0\0")
_NOT_DATA = (b"wvpk", b"OggS")  # libsndfile refuses data starting so
_U32 = struct.Struct("<I")
_FMT = struct.Struct("<HHIIHH")


def _format(body: bytes) -> tuple[int, int, int] | None:
    """(channels, sample rate, block align) of a ``fmt `` chunk's body, or None if unusual."""
    if len(body) < 16:
        return None
    tag, channels, rate, _, block, bits = _FMT.unpack_from(body)
    if tag == _EXTENSIBLE:
        if len(body) < 40 or body[28:40] != _GUID_TAIL:
            return None
        tag = _U32.unpack_from(body, 24)[0]
    if bits not in _BITS.get(tag, ()):
        return None
    if not (1 <= channels <= _MAX_CHANNELS and 1 <= rate < 1 << 31):
        return None
    if block != channels * (bits // 8):
        return None
    return channels, rate, block


def _plain_list(body: bytes) -> bool:
    """Whether a ``LIST`` chunk's body is an ``INFO`` list whose subchunks tile it exactly."""
    if body[:4] != b"INFO" or len(body) <= 8:
        return False
    pos = 4
    while pos < len(body):
        if pos + 8 > len(body) or body[pos : pos + 4] in _LIST_MARKERS:
            return False
        size = _U32.unpack_from(body, pos + 4)[0]
        pos += 8 + size + (size & 1)
    return pos == len(body)


def _data_frames(
    fmt: tuple[int, int, int] | None, head: bytes, start: int, size: int, file_size: int
) -> tuple[int, int] | None:
    """(frames, rate) for a ``data`` chunk of ``size`` bytes at ``start``, or None."""
    if fmt is None or size < 4 or file_size - (start + size) not in (0, size & 1):
        return None
    _, rate, block = fmt
    if size % block or start + 4 > len(head) or head[start : start + 4] in _NOT_DATA:
        return None
    return size // block, rate


def parse_wav_header(head: bytes, file_size: int) -> tuple[int, int] | None:
    """(frames, sample rate) from the first bytes ``head`` of a file of ``file_size`` bytes when
    it is a plain PCM/float WAV (see the module docstring), else None."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        marker = head[pos : pos + 4]
        size = _U32.unpack_from(head, pos + 4)[0]
        start, end = pos + 8, pos + 8 + size
        if marker == b"data":
            return _data_frames(fmt, head, start, size, file_size)
        if end > file_size:
            return None
        if marker == b"fmt ":
            fmt = None if fmt is not None or end > len(head) else _format(head[start:end])
            if fmt is None:
                return None
        elif marker == b"fact":
            if fmt is None or size < 4:
                return None
        elif marker == b"PEAK":
            if fmt is None or size != 8 + 8 * fmt[0]:
                return None
        elif marker == b"LIST":
            if end > len(head) or not _plain_list(head[start:end]):
                return None
        elif marker not in _SKIPPED:
            return None
        pos = end + (size & 1)
    return None


def _read_head(path: str | Path) -> bytes:
    """The first :data:`HEAD_BYTES` bytes of a file (OSError if it cannot be read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, HEAD_BYTES)
    finally:
        os.close(fd)


def _regular_wav_frames(path: str | Path, file_size: int) -> tuple[int, int] | None:
    """:func:`wav_frames` of a regular file of ``file_size`` bytes."""
    try:
        head = _read_head(path)
    except OSError:
        return None
    return parse_wav_header(head, file_size)


def wav_frames(path: str | Path) -> tuple[int, int] | None:
    """(frames, sample rate) of a plain PCM/float WAV file, read from its header in Python: the
    values ``soundfile.info`` gives. None when not sure (not a regular file, another format or an
    unusual header): ask libsndfile then."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return _regular_wav_frames(path, st.st_size)


State = tuple[int, int]  # (size, modification time in ns) of a file
NO_STATE: State = (-1, 0)  # a file that cannot be stat'ed (deepser.corpus.manifest.MISSING)


def audio_check(path: str | Path) -> tuple[str | None, State]:
    """Why the audio file ``path`` cannot be used (None: it can), and its state from the same
    ``stat`` (:data:`NO_STATE` when there is none): a folder, or the reason
    :func:`~deepser.corpus.audio.check_audio` gives. A plain WAV header is read in Python,
    anything else by libsndfile."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        st = None
    state = NO_STATE if st is None else (st.st_size, st.st_mtime_ns)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return FOLDER, state
        if stat.S_ISREG(st.st_mode) and _regular_wav_frames(path, st.st_size) is not None:
            return None, state
    try:
        check_audio(path)
    except AudioError as exc:
        return exc.reason, state
    return None, state


def audio_problem(path: str | Path) -> str | None:
    """Why the audio file ``path`` cannot be used (None: it can): :func:`audio_check`'s
    reason."""
    return audio_check(path)[0]


def _serial(paths: Sequence[str]) -> list[tuple[str | None, State]]:
    """:func:`audio_check` of each path, in this process."""
    return [audio_check(p) for p in paths]


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` on Linux (workers start at once), the platform's default elsewhere."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class AudioChecks:
    """:func:`audio_check` of paths given one at a time (:meth:`add`), while the caller goes on
    (validating the next rows of a meta file, say): in ``workers`` processes, a chunk of
    ``chunk`` paths (default :data:`CHUNK_PATHS`) as soon as it is full, when ``workers`` > 1
    and ``expected`` (the number of paths to come) is above ``min_parallel`` (default
    :data:`MIN_PARALLEL`); else in this process, when :meth:`results` is asked for. Use it as
    a context manager: leaving it stops the workers."""

    def __init__(
        self,
        workers: int,
        expected: int,
        chunk: int | None = None,
        min_parallel: int | None = None,
    ) -> None:
        min_parallel = MIN_PARALLEL if min_parallel is None else min_parallel
        self._workers, self._chunk = workers, chunk or CHUNK_PATHS
        self._parallel = workers > 1 and expected > min_parallel
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future[list[tuple[str | None, State]]]] = []
        self._pending: list[str] = []

    def __enter__(self) -> AudioChecks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, path: str | Path) -> None:
        self._pending.append(str(path))
        if self._parallel and len(self._pending) >= self._chunk:
            self._submit()

    def _submit(self) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=_pool_context())
        self._futures.append(self._pool.submit(_serial, self._pending))
        self._pending = []

    def results(self) -> list[tuple[str | None, State]]:
        """(reason, state) of every path added, in order."""
        if self._parallel and self._pending:
            self._submit()
        out = [check for future in self._futures for check in future.result()]
        out += _serial(self._pending)
        self._futures, self._pending = [], []
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def audio_problems(
    paths: Sequence[str | Path],
    workers: int = 1,
    chunk: int | None = None,
    min_parallel: int | None = None,
) -> list[str | None]:
    """:func:`audio_problem` of every path, in order: in ``workers`` processes over chunks of
    ``chunk`` paths (default :data:`CHUNK_PATHS`) when ``workers`` > 1 and there are more than
    ``min_parallel`` paths (default :data:`MIN_PARALLEL`), else in this process."""
    with AudioChecks(workers, len(paths), chunk, min_parallel) as checks:
        for path in paths:
            checks.add(path)
        return [reason for reason, _ in checks.results()]
