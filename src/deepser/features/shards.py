"""Feature shards: the features of one shard of a corpus, one HDF5 file per (corpus, feature
set, shard).

A shard holds ``feat`` (all frames of all utterances, concatenated, (F, D) float32),
``offsets`` ((n + 1,) int64; utterance i is ``feat[offsets[i]:offsets[i + 1]]``) and ``utt_id``,
plus JSON attributes (feature spec, gain, rejected audio). It is written under a temporary name
and renamed when complete, so a killed writer never leaves a file that looks finished; a shard
damaged afterwards is named, with the recovery, by :class:`FeatureShard` (opening or reading).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deepser.errors import rerun_recovery
from deepser.files import atomic_path
from deepser.hdf5 import STR, H5File, write_attrs


def write_feature_shard(
    path: str | Path,
    items: Iterable[tuple[str, np.ndarray]],
    attrs: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    sources: Callable[[], Sequence[tuple[str, str, int, int]]] | None = None,
) -> int:
    """Stream ``(utt_id, (frames, D) array)`` items into a shard file; return the count written.

    ``attrs`` may be a callable, called once all items are written (it may raise to discard the
    file). ``sources()``, called then too, gives the audio the items were read from, as
    (utt_id, digest, size, mtime_ns): written as the ``source_*`` datasets that
    :mod:`deepser.corpus.manifest` compares audio files with."""
    ids: list[str] = []
    offsets = [0]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        feat = None
        for utt_id, array in items:
            array = np.asarray(array, dtype=np.float32)
            if array.ndim != 2 or array.shape[0] == 0:
                raise ValueError(f"{utt_id}: expected a non-empty (frames, dims) array")
            if feat is None:
                chunk_rows = max(1, min(65536, (1 << 20) // (4 * array.shape[1])))
                feat = h5.create_dataset(
                    "feat",
                    shape=(0, array.shape[1]),
                    maxshape=(None, array.shape[1]),
                    dtype="float32",
                    chunks=(chunk_rows, array.shape[1]),
                )
            elif array.shape[1] != feat.shape[1]:
                raise ValueError(
                    f"{utt_id}: {array.shape[1]} dims, earlier utterances have {feat.shape[1]}"
                )
            start = feat.shape[0]
            feat.resize(start + array.shape[0], axis=0)
            feat[start:] = array
            ids.append(utt_id)
            offsets.append(start + array.shape[0])
        if feat is None:
            h5.create_dataset("feat", shape=(0, 0), dtype="float32")
        h5.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))
        h5.create_dataset("utt_id", data=np.asarray(ids, dtype=object), dtype=STR)
        final = attrs() if callable(attrs) else attrs
        write_attrs(h5, final)
        if sources is not None:
            _write_sources(h5, sources())
    return len(ids)


def _write_sources(h5: h5py.File, sources: Sequence[tuple[str, str, int, int]]) -> None:
    ids, digests, sizes, mtimes = zip(*sources, strict=True) if sources else ((), (), (), ())
    h5.create_dataset("source_utt_id", data=np.asarray(ids, dtype=object), dtype=STR)
    h5.create_dataset("source_digest", data=np.asarray(digests, dtype=object), dtype=STR)
    h5.create_dataset("source_size", data=np.asarray(sizes, dtype=np.int64))
    h5.create_dataset("source_mtime_ns", data=np.asarray(mtimes, dtype=np.int64))


def shard_recovery(path: str | Path) -> str:
    """How to recover from a damaged shard of the workflow."""
    return rerun_recovery(path, "re-extracts exactly this shard")


class FeatureShard:
    """Read access to one feature shard: ``shard[utt_id]`` -> (frames, D) float32.

    The file is checked when opened (HDF5, not truncated, its datasets and their shapes, the
    format version) and every read after is too: a problem raises :class:`DamagedFileError`
    naming the shard and, with ``recover="workflow"``, the workflow's recovery (else ``recover``
    is the sentence to give, or None for none)."""

    def __init__(self, path: str | Path, recover: str | None = "workflow") -> None:
        self.path = Path(path)
        self.file = H5File(
            self.path,
            "feature shard",
            shard_recovery(path) if recover == "workflow" else recover,
            written_whole=True,
        )
        self._h5 = self.file.open(chunk_cache=0)  # slices are read whole: no cache needed
        try:
            self.attrs = self.file.attrs(self._h5)
            self._feat = self.file.dataset(self._h5, "feat", ndim=2)
            offsets = self.file.dataset(self._h5, "offsets", ndim=1)
            if offsets.shape[0] == 0:
                raise self.file.fail("dataset 'offsets' is empty (it has one more entry than ids)")
            ids = self.file.dataset(self._h5, "utt_id", ndim=1, rows=offsets.shape[0] - 1)
            with self.file.reading("its index (offsets, utt_id)"):
                self._offsets = offsets[()]
                ids = ids.asstr()[()]
            o = self._offsets
            if o.size == 0 or o[0] != 0 or np.any(np.diff(o) < 0) or o[-1] != self._feat.shape[0]:
                raise self.file.fail(
                    f"inconsistent: offsets do not cut the {self._feat.shape[0]} frames of feat "
                    "into utterances"
                )
            self.index = {u: i for i, u in enumerate(ids)}
            if len(self.index) != len(ids):
                raise self.file.fail("inconsistent: an utterance id appears twice")
        except BaseException:
            self._h5.close()
            raise

    @property
    def dims(self) -> int:
        return int(self._feat.shape[1])

    @property
    def ids(self) -> list[str]:
        """Utterance ids in the order of the file."""
        return list(self.index)

    @property
    def n_frames(self) -> np.ndarray:
        """Frames of each utterance, in the order of the file."""
        return np.diff(self._offsets)

    @property
    def starts(self) -> np.ndarray:
        """First frame of each utterance in ``feat``, in the order of the file."""
        return self._offsets[:-1]

    def raw_layout(self) -> tuple[int, np.ndarray]:
        """Where ``feat``'s frames lie in the file, for reads that bypass HDF5: (frames per
        chunk, file offset of each chunk), chunk k holding frames k * rows .. (k + 1) * rows - 1
        as float32 rows. A shard stored otherwise than :func:`write_feature_shard` stores it
        (compressed, filtered, split by column) raises :class:`DamagedFileError`."""
        feat, n = self._feat, int(self._feat.shape[0])
        if feat.dtype != np.dtype("<f4"):
            raise self.file.fail(f"dataset 'feat' is {feat.dtype}, not little-endian float32")
        if n == 0:
            return 1, np.zeros(0, dtype=np.int64)
        if feat.chunks is None:
            offset = feat.id.get_offset()
            if offset is None:
                raise self.file.fail("dataset 'feat' has no storage")
            return n, np.asarray([offset], dtype=np.int64)
        if feat.compression or feat.shuffle or feat.fletcher32 or feat.scaleoffset is not None:
            raise self.file.fail("dataset 'feat' is compressed or filtered (deepser never does)")
        rows = int(feat.chunks[0])
        if feat.chunks[1] != feat.shape[1]:
            raise self.file.fail("dataset 'feat' is chunked across its columns")
        offsets = np.full(-(-n // rows), -1, dtype=np.int64)
        with self.file.reading("its chunk index"):
            for i in range(feat.id.get_num_chunks()):
                info = feat.id.get_chunk_info(i)
                k = info.chunk_offset[0] // rows
                if info.filter_mask or k >= offsets.size or info.byte_offset is None:
                    raise self.file.fail(f"chunk {i} of dataset 'feat' is filtered or misplaced")
                offsets[k] = info.byte_offset
        if (offsets < 0).any():
            raise self.file.fail("dataset 'feat' lacks a chunk of its frames")
        return rows, offsets

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.index

    def __getitem__(self, utt_id: str) -> np.ndarray:
        i = self.index[utt_id]
        with self.file.reading(f"the features of {utt_id!r}"):
            return self._feat[self._offsets[i] : self._offsets[i + 1]]

    def read_all(self) -> dict[str, np.ndarray]:
        """Every utterance's features, read in one contiguous pass."""
        with self.file.reading("its features"):
            feat = self._feat[()]
        o = self._offsets
        return {u: feat[o[i] : o[i + 1]] for u, i in self.index.items()}

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> FeatureShard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
