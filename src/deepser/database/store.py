"""The H5 database format: its writer and its readers, in one place.

A database holds one row per utterance, sorted by fold:

- ``feat``: float32 context windows, layout ``2d`` = (N, T, 1, c_len, D) or ``3d`` =
  (N, 1, T, c_len, D), the original DEEPSER toolkit's layouts (so its readers still work);
- ``label``: float64 (N, n_tasks), a class index or a continuous value per task;
- ``n_valid``: int32, the windows of each row that are not zero padding;
- ``fold``: int32 fold of each row (-1 without folds); ``start_indice`` / ``end_indice``: fold k
  is rows ``start_indice[k]:end_indice[k]`` (the original's datasets);
- ``utt_id``, ``speaker``, ``corpus``: UTF-8 strings; a row is identified by (corpus, utt_id),
  and speakers of a multi-corpus database are qualified ``corpus/speaker``;
- JSON attributes: ``feature_spec``, ``gain`` (per corpus), ``window_spec``, ``tasks`` (names,
  types, ordered classes), ``fold_by``, ``folds``, ``corpora``, counts, ``config_hash``.

Reads go run by run over contiguous rows (never row by row: random fancy-indexed h5py reads are
about 100x slower).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deepser.database.windows import LAYOUTS, row_shape
from deepser.errors import rerun_recovery
from deepser.features.augment import is_augmented
from deepser.files import atomic_path
from deepser.hdf5 import STR, H5File, write_attrs
from deepser.tasks import is_categorical


@dataclass(frozen=True)
class DatabaseInfo:
    """What training and evaluation need to know about a database without reading features."""

    path: Path
    attrs: dict[str, Any]
    n_rows: int
    row_shape: tuple[int, ...]
    fold: np.ndarray
    speaker: np.ndarray
    utt_id: np.ndarray
    corpus: np.ndarray
    tasks: list[dict[str, Any]]

    @property
    def augmented(self) -> np.ndarray:
        """Which rows are augmented copies (training only)."""
        return is_augmented(self.utt_id)

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1 if self.n_rows and self.fold.max() >= 0 else 0

    @property
    def layout(self) -> str:
        return self.attrs["window_spec"]["layout"]

    def fold_rows(self, fold: int) -> np.ndarray:
        """The test rows of ``fold``: its original recordings (augmented copies excluded)."""
        return np.flatnonzero((self.fold == fold) & ~self.augmented)

    def label_columns(self, tasks: Sequence[str]) -> list[int]:
        """Column of each task in the ``label`` matrix."""
        names = [t["name"] for t in self.tasks]
        missing = [t for t in tasks if t not in names]
        if missing:
            raise ValueError(f"task(s) {missing} not in the database (it has {names})")
        return [names.index(t) for t in tasks]


def database_recovery(path: str | Path) -> str:
    """How to recover from a damaged database of the workflow."""
    return rerun_recovery(
        path, "rebuilds it from its feature shards (one made by deepser convert-db: convert again)"
    )


def database_file(path: str | Path) -> H5File:
    """A database as :class:`deepser.hdf5.H5File` describes it in messages."""
    return H5File(Path(path), "database", database_recovery(path), written_whole=True)


@contextmanager
def open_database(path: str | Path) -> Iterator[tuple[h5py.File, dict[str, Any]]]:
    """Open a database, checked (HDF5, not truncated, format version, attributes, every dataset
    with its shape), -> (file, attributes); reads inside the block are checked too. Problems raise
    :class:`deepser.errors.DamagedFileError` naming the file and how to recover."""
    db = database_file(path)
    with db.opened() as h5:
        attrs = db.attrs(h5, required=("window_spec", "tasks"))
        feat = db.dataset(h5, "feat", ndim=5)
        n = int(feat.shape[0])
        tasks, window = attrs["tasks"], attrs["window_spec"]
        if not isinstance(tasks, list) or not isinstance(window, dict):
            raise db.fail("malformed tasks or window_spec attribute")
        if window.get("layout") not in LAYOUTS:
            raise db.fail(f"window_spec has layout {window.get('layout')!r}, not one of {LAYOUTS}")
        if all(k in window for k in ("n_steps", "c_len", "dims")):
            expected = row_shape(window)
            if tuple(feat.shape[1:]) != expected:
                raise db.fail(
                    f"dataset 'feat' has rows of shape {tuple(feat.shape[1:])}, its window_spec "
                    f"says {expected}"
                )
        label = db.dataset(h5, "label", ndim=2, rows=n)
        if label.shape[1] != len(tasks):
            raise db.fail(f"dataset 'label' has {label.shape[1]} columns for {len(tasks)} task(s)")
        for name in ("n_valid", "fold", "utt_id", "speaker", "corpus"):
            db.dataset(h5, name, ndim=1, rows=n)
        yield h5, attrs


def _check_fold_indices(db: H5File, h5: h5py.File, fold: np.ndarray) -> None:
    """``start_indice`` / ``end_indice`` (when present) agree with ``fold``: fold k is rows
    ``start_indice[k]:end_indice[k]``."""
    if "start_indice" not in h5 and "end_indice" not in h5:
        return
    starts = db.dataset(h5, "start_indice", ndim=1)[()]
    ends = db.dataset(h5, "end_indice", ndim=1, rows=starts.shape[0])[()]
    for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if not 0 <= s <= e <= fold.size or np.any(fold[s:e] != k) or np.sum(fold == k) != e - s:
            raise db.fail(
                f"inconsistent fold indices: start_indice/end_indice give fold {k} rows "
                f"[{s}, {e}), the fold dataset does not"
            )


def read_info(path: str | Path) -> DatabaseInfo:
    """Read the small datasets and attributes of a database (checked: see
    :func:`open_database`; also the fold indices)."""
    with open_database(path) as (h5, attrs):
        fold = h5["fold"][()]
        _check_fold_indices(database_file(path), h5, fold)
        return DatabaseInfo(
            path=Path(path),
            attrs=attrs,
            n_rows=int(h5["feat"].shape[0]),
            row_shape=tuple(h5["feat"].shape[1:]),
            fold=fold,
            speaker=np.asarray(h5["speaker"].asstr()[()], dtype=object),
            utt_id=np.asarray(h5["utt_id"].asstr()[()], dtype=object),
            corpus=np.asarray(h5["corpus"].asstr()[()], dtype=object),
            tasks=attrs["tasks"],
        )


def read_database_attrs(path: str | Path) -> dict[str, Any]:
    """The database's attributes only (no dataset is read; the file is checked)."""
    with open_database(path) as (_, attrs):
        return attrs


def read_window_spec(path: str | Path) -> dict[str, Any]:
    """The database's window spec (c_len, max_steps, layout, n_steps, dims)."""
    return read_database_attrs(path)["window_spec"]


def contiguous_runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted row indices -> [(start, stop), ...] runs of consecutive rows."""
    rows = np.asarray(rows)
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def to_time_major(feat: np.ndarray, layout: str) -> np.ndarray:
    """3d layout (N, 1, T, c, D) -> (N, T, 1, c, D); 2d is already time-major (a view)."""
    return np.swapaxes(feat, 1, 2) if layout == "3d" else feat


@dataclass
class Arrays:
    """Rows held in memory."""

    feat: np.ndarray
    n_valid: np.ndarray
    label: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.size)


def read_rows(path: str | Path, rows: np.ndarray, label_cols: Sequence[int], norm=None) -> Arrays:
    """Read the given (sorted) rows, one contiguous slice per run; ``norm`` (a
    :class:`deepser.database.normalise.SpeakerNorm`) standardises them per speaker."""
    with open_database(path) as (h5, attrs):
        feat = np.empty((rows.size, *h5["feat"].shape[1:]), dtype=np.float32)
        n_valid = np.empty(rows.size, dtype=np.int32)
        label = np.empty((rows.size, len(label_cols)), dtype=np.float64)
        pos, db = 0, database_file(path)
        for start, stop in contiguous_runs(rows):
            n = stop - start
            with db.reading(f"rows {start}..{stop - 1}"):
                h5["feat"].read_direct(feat, np.s_[start:stop], np.s_[pos : pos + n])
                n_valid[pos : pos + n] = h5["n_valid"][start:stop]
                label[pos : pos + n] = h5["label"][start:stop][:, list(label_cols)]
            pos += n
        layout = attrs["window_spec"]["layout"]
    if norm is not None:
        norm.apply(feat, n_valid, rows, layout)
    return Arrays(feat=feat, n_valid=n_valid, label=label, rows=rows)


def valid_windows(path: str | Path, rows: np.ndarray, chunk_rows: int = 1024):
    """Yield ``(start, windows, mask)`` over ``rows`` in contiguous chunks: the time-major
    windows (n, T, 1, c_len, D) of rows ``start:start + n`` and which of them are valid (n, T)."""
    with open_database(path) as (h5, attrs):
        dset, layout, db = h5["feat"], attrs["window_spec"]["layout"], database_file(path)
        for run_start, run_stop in contiguous_runs(rows):
            for a in range(run_start, run_stop, chunk_rows):
                b = min(run_stop, a + chunk_rows)
                with db.reading(f"rows {a}..{b - 1}"):
                    windows = to_time_major(dset[a:b], layout)
                    mask = np.arange(windows.shape[1])[None, :] < h5["n_valid"][a:b][:, None]
                yield a, windows, mask


def read_labels(path: str | Path, rows: np.ndarray, cols: Sequence[int]) -> np.ndarray:
    """Labels only (small), e.g. for class weights when features stay on disk."""
    with open_database(path) as (h5, _):
        return h5["label"][()][rows][:, list(cols)]


def class_counts(info: DatabaseInfo, tasks: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
    """Utterances per class of each categorical task (original recordings only)."""
    cols = info.label_columns([t["name"] for t in tasks])
    labels = read_labels(info.path, np.flatnonzero(~info.augmented), cols)
    counts = {}
    for j, task in enumerate(tasks):
        if is_categorical(task):
            values = labels[:, j].astype(int)
            counts[task["name"]] = {
                c: int((values == i).sum()) for i, c in enumerate(task["classes"])
            }
    return counts


class DatabaseWriter:
    """Streaming writer of a database (the format of this module's docstring).

    Rows are appended in their final order (sorted by fold) and flushed in blocks, so memory does
    not grow with the number of utterances. ``scattered=True`` instead writes rows in any order:
    :meth:`write_columns` for the small datasets, :meth:`write_features` for one row's features
    (``feat`` is then stored contiguous and written in place, past HDF5: one ``pwrite`` per run
    of rows).
    """

    def __init__(
        self,
        path: str | Path,
        n_rows: int,
        row_shape: tuple[int, ...],
        n_tasks: int,
        block_rows: int = 256,
        scattered: bool = False,
    ) -> None:
        self._atomic = atomic_path(path)
        self._tmp = self._atomic.__enter__()
        self.h5 = h5py.File(self._tmp, "w")
        self._fd: int | None = None
        try:
            self._create(n_rows, row_shape, n_tasks, block_rows, scattered)
        except BaseException:
            self.abort()
            raise

    def _create(
        self, n_rows: int, row_shape: tuple[int, ...], n_tasks: int, block_rows: int, scattered
    ) -> None:
        row_bytes = 4 * int(np.prod(row_shape))
        if scattered:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # its place in the file is fixed now
            self.feat = self.h5.create_dataset(
                "feat", shape=(n_rows, *row_shape), dtype="float32", dcpl=dcpl, fill_time="never"
            )
            self.h5.flush()
            offset = self.feat.id.get_offset()
            if offset is None and n_rows:
                raise RuntimeError(f"{self._tmp}: HDF5 did not allocate the feature rows")
            self._feat_offset, self._row_bytes = int(offset or 0), row_bytes
            self._fd = os.open(self._tmp, os.O_WRONLY)
            self._written = np.zeros(n_rows, dtype=bool)
        else:
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

    def write_features(self, start: int, feat: np.ndarray) -> None:
        """Write the features of rows ``start:start + len(feat)`` (``scattered`` only; float32
        in C order, rows of the row shape) with one ``pwrite``."""
        if self._fd is None:
            raise RuntimeError("write_features needs a DatabaseWriter(..., scattered=True)")
        data = memoryview(np.ascontiguousarray(feat, dtype=np.float32)).cast("B")
        n, extra = divmod(data.nbytes, self._row_bytes)
        stop = start + n
        if extra or not 0 <= start <= stop <= self.n_rows or self._written[start:stop].any():
            raise ValueError(f"rows {start}:{stop}: not whole rows, out of range or written twice")
        offset = self._feat_offset + start * self._row_bytes
        while data:
            done = os.pwrite(self._fd, data, offset)
            data, offset = data[done:], offset + done
        self._written[start:stop] = True

    def write_columns(
        self,
        start: int,
        label: np.ndarray,
        n_valid: np.ndarray,
        fold: np.ndarray,
        utt_id: Sequence[str],
        speaker: Sequence[str],
        corpus: Sequence[str],
    ) -> None:
        """Write rows ``start:start + len(label)`` of the small datasets (``scattered`` only)."""
        stop = start + len(label)
        if self._fd is None or not 0 <= start <= stop <= self.n_rows:
            raise ValueError(f"rows {start}:{stop}: out of range or not a scattered writer")
        self.label[start:stop] = label
        self.n_valid[start:stop] = n_valid
        self.fold[start:stop] = fold
        for name, values in (("utt_id", utt_id), ("speaker", speaker), ("corpus", corpus)):
            self.text[name][start:stop] = np.asarray(values, dtype=object)
        self._row += stop - start

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
        if self._fd is not None:
            if not self._written.all():
                missing = int(np.count_nonzero(~self._written))
                raise ValueError(f"the features of {missing} of {self.n_rows} rows not written")
            os.close(self._fd)
            self._fd = None
        if folds is not None:
            self.h5.create_dataset(
                "start_indice", data=np.asarray([s for s, _ in folds], dtype=np.int64)
            )
            self.h5.create_dataset(
                "end_indice", data=np.asarray([e for _, e in folds], dtype=np.int64)
            )
        write_attrs(self.h5, attrs)
        self.h5.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Close and delete the temporary file."""
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.h5.close()
        finally:
            try:
                self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
            except RuntimeError:
                pass
