"""Utterance frames read straight from feature shard files (``pread`` at the offsets of the
shard's chunks), for the database build's copy in database order: no HDF5 file object per
open shard (about 0.5 MB each), one system call per utterance, and a bounded number of open
files (least recently used closed first)."""

from __future__ import annotations

import os
import resource
from collections import OrderedDict
from pathlib import Path

import numpy as np

from deepser.features.shards import FeatureShard
from deepser.hdf5 import H5File


def open_file_budget() -> int:
    """Shard files to keep open: half of this process's limit on open files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 4096 if soft == resource.RLIM_INFINITY else max(8, min(4096, soft // 2))


class RawShards:
    """The raw layout of each shard (:meth:`FeatureShard.raw_layout`), added in global shard
    order, and reads of an utterance's frames into a caller's buffer."""

    def __init__(self, max_open: int | None = None) -> None:
        self._files: list[H5File] = []
        self._layouts: list[tuple[int, np.ndarray, int]] = []
        self._open: OrderedDict[int, int] = OrderedDict()
        self._max_open = max_open or open_file_budget()
        self._table: tuple[np.ndarray, ...] | None = None

    def add(self, shard: FeatureShard) -> None:
        rows, offsets = shard.raw_layout()
        self._files.append(shard.file)
        self._layouts.append((rows, offsets, 4 * shard.dims))
        self._table = None

    def locate(
        self, shard: np.ndarray, start: np.ndarray, n_frames: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """File offsets of frames ``start:start + n_frames`` of each given shard, and whether
        they lie in one chunk (then one read at that offset gets them all)."""
        if self._table is None:
            rows = np.asarray([r for r, _, _ in self._layouts], dtype=np.int64)
            sizes = [o.size for _, o, _ in self._layouts]
            base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            chunks = np.concatenate([o for _, o, _ in self._layouts] + [np.zeros(1, np.int64)])
            frame_bytes = np.asarray([b for _, _, b in self._layouts], dtype=np.int64)
            self._table = rows, base, chunks, frame_bytes
        rows, base, chunks, frame_bytes = self._table
        r = rows[shard]
        k = start // r
        offset = chunks[base[shard] + k] + (start - k * r) * frame_bytes[shard]
        return offset, (start + np.maximum(n_frames, 1) - 1) // r == k

    def fd(self, s: int) -> int:
        """An open descriptor of shard ``s``'s file."""
        return self._fd(s)

    def read_into(self, s: int, start: int, n_frames: int, out: memoryview) -> None:
        """Frames ``start:start + n_frames`` of shard ``s`` into ``out`` (bytes, exactly their
        size)."""
        rows, offsets, frame_bytes = self._layouts[s]
        fd, done, frame, end = self._fd(s), 0, start, start + n_frames
        while frame < end:
            k = frame // rows
            stop = min(end, (k + 1) * rows)
            size = (stop - frame) * frame_bytes
            offset = int(offsets[k]) + (frame - k * rows) * frame_bytes
            while size:
                got = os.preadv(fd, [out[done : done + size]], offset)
                if got <= 0:
                    raise self._files[s].fail(
                        f"truncated: frames {frame}..{stop - 1} end past the end of the file"
                    )
                done, size, offset = done + got, size - got, offset + got
            frame = stop

    def _fd(self, s: int) -> int:
        fd = self._open.get(s)
        if fd is not None:
            self._open.move_to_end(s)
            return fd
        if len(self._open) >= self._max_open:
            os.close(self._open.popitem(last=False)[1])
        path: Path = self._files[s].path
        fd = self._open[s] = os.open(path, os.O_RDONLY)
        return fd

    def close(self) -> None:
        while self._open:
            os.close(self._open.popitem()[1])

    def __enter__(self) -> RawShards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
