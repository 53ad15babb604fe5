"""HDF5 storage: feature shards (variable-length arrays keyed by utt_id) and databases.

A feature shard holds ``feat`` (all frames of all utterances, concatenated, (F, D) float32),
``offsets`` ((n + 1,) int64; utterance i is ``feat[offsets[i]:offsets[i + 1]]``) and ``utt_id``.
Both kinds of file are written under a temporary name and renamed when complete, so a killed
writer never leaves a file that looks finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deepser.files import atomic_path

STR = h5py.string_dtype(encoding="utf-8")
FORMAT_VERSION = 1


def _set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        obj.attrs[key] = json.dumps(value, sort_keys=True)


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """Attributes written by this module (JSON-encoded) as Python values."""
    out = {}
    for key, value in obj.attrs.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            out[key] = value
    return out


def write_feature_shard(
    path: str | Path,
    items: Iterable[tuple[str, np.ndarray]],
    attrs: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
) -> int:
    """Stream ``(utt_id, (frames, D) array)`` items into a shard file; return the count written.

    ``attrs`` may be a callable, called once all items are written (it may raise to discard the
    file)."""
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
        _set_attrs(h5, {**final, "format_version": FORMAT_VERSION})
    return len(ids)


class FeatureShard:
    """Read access to one feature shard: ``shard[utt_id]`` -> (frames, D) float32."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._h5 = h5py.File(self.path, "r")
        self._feat = self._h5["feat"]
        self._offsets = self._h5["offsets"][()]
        ids = self._h5["utt_id"].asstr()[()]
        self.index = {u: i for i, u in enumerate(ids)}
        self.attrs = read_attrs(self._h5)

    @property
    def dims(self) -> int:
        return int(self._feat.shape[1])

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.index

    def __getitem__(self, utt_id: str) -> np.ndarray:
        i = self.index[utt_id]
        return self._feat[self._offsets[i] : self._offsets[i + 1]]

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> FeatureShard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DatabaseWriter:
    """Streaming writer of a database (contract 'H5 database' in design.md).

    Rows are appended in their final order (sorted by fold) and flushed in blocks, so memory does
    not grow with the number of utterances.
    """

    def __init__(
        self,
        path: str | Path,
        n_rows: int,
        row_shape: tuple[int, ...],
        n_tasks: int,
        block_rows: int = 256,
    ) -> None:
        self._atomic = atomic_path(path)
        self._tmp = self._atomic.__enter__()
        self.h5 = h5py.File(self._tmp, "w")
        row_bytes = 4 * int(np.prod(row_shape))
        chunk = max(1, min(block_rows, n_rows, (4 << 20) // max(row_bytes, 1)))
        self.feat = self.h5.create_dataset(
            "feat", shape=(n_rows, *row_shape), dtype="float32", chunks=(chunk, *row_shape)
        )
        self.label = self.h5.create_dataset("label", shape=(n_rows, n_tasks), dtype="float64")
        self.n_valid = self.h5.create_dataset("n_valid", shape=(n_rows,), dtype="int32")
        self.fold = self.h5.create_dataset("fold", shape=(n_rows,), dtype="int32")
        self.text = {
            name: self.h5.create_dataset(name, shape=(n_rows,), dtype=STR)
            for name in ("utt_id", "speaker", "corpus")
        }
        self.n_rows = n_rows
        self.block_rows = block_rows
        self._row = 0
        self._buf: list[tuple] = []

    def append(
        self,
        feat: np.ndarray,
        label: np.ndarray,
        n_valid: int,
        fold: int,
        utt_id: str,
        speaker: str,
        corpus: str,
    ) -> None:
        self._buf.append((feat, label, n_valid, fold, utt_id, speaker, corpus))
        if len(self._buf) >= self.block_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        lo, hi = self._row, self._row + len(self._buf)
        if hi > self.n_rows:
            raise ValueError(f"more rows than the {self.n_rows} announced")
        cols = list(zip(*self._buf, strict=True))
        self.feat[lo:hi] = np.stack(cols[0])
        self.label[lo:hi] = np.stack(cols[1])
        self.n_valid[lo:hi] = cols[2]
        self.fold[lo:hi] = cols[3]
        for name, values in zip(("utt_id", "speaker", "corpus"), cols[4:], strict=True):
            self.text[name][lo:hi] = np.asarray(values, dtype=object)
        self._row = hi
        self._buf.clear()

    def finish(self, folds: list[tuple[int, int]] | None, attrs: Mapping[str, Any]) -> None:
        """Write fold indices and attributes, close, and rename into place."""
        self._flush()
        if self._row != self.n_rows:
            raise ValueError(f"wrote {self._row} rows, announced {self.n_rows}")
        if folds is not None:
            self.h5.create_dataset(
                "start_indice", data=np.asarray([s for s, _ in folds], dtype=np.int64)
            )
            self.h5.create_dataset(
                "end_indice", data=np.asarray([e for _, e in folds], dtype=np.int64)
            )
        _set_attrs(self.h5, {**attrs, "format_version": FORMAT_VERSION})
        self.h5.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Close and delete the temporary file."""
        try:
            self.h5.close()
        finally:
            try:
                self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
            except RuntimeError:
                pass
