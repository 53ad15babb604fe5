"""Training data from an H5 database: fold splits and batches read in contiguous chunks.

Rows of a database are sorted by fold, so a fold's training rows are a few contiguous runs.
They are read run by run (never row by row: random fancy-indexed h5py reads are ~100x slower)
and kept in RAM when they fit; otherwise :class:`ChunkedBatches` streams contiguous blocks and
shuffles rows inside a buffer of several blocks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deepser.augment import is_augmented, spec_augment


@dataclass(frozen=True)
class DatabaseInfo:
    """What training needs to know about a database without reading its features."""

    path: Path
    attrs: dict[str, Any]
    n_rows: int
    row_shape: tuple[int, ...]
    fold: np.ndarray
    speaker: np.ndarray
    utt_id: np.ndarray
    tasks: list[dict[str, Any]]

    @property
    def augmented(self) -> np.ndarray:
        """Which rows are augmented copies (training only)."""
        return is_augmented(self.utt_id)

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1 if self.n_rows and self.fold.max() >= 0 else 0


def read_info(path: str | Path) -> DatabaseInfo:
    """Read the small datasets and attributes of a database."""
    with h5py.File(path, "r") as h5:
        attrs = {k: json.loads(v) for k, v in h5.attrs.items()}
        return DatabaseInfo(
            path=Path(path),
            attrs=attrs,
            n_rows=int(h5["feat"].shape[0]),
            row_shape=tuple(h5["feat"].shape[1:]),
            fold=h5["fold"][()],
            speaker=np.asarray(h5["speaker"].asstr()[()], dtype=object),
            utt_id=np.asarray(h5["utt_id"].asstr()[()], dtype=object),
            tasks=attrs["tasks"],
        )


@dataclass(frozen=True)
class FoldSplit:
    """Row indices (sorted) of a fold's training, validation and test sets, and their speakers."""

    test_fold: int | None
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    speakers: dict[str, list[str]] = field(default_factory=dict)


def split_fold(
    info: DatabaseInfo, test_fold: int | None, val_fraction: float, seed: int
) -> FoldSplit:
    """Test = fold ``test_fold`` (None: no test set, for the final model); validation = a
    random, speaker-disjoint subset of the *training* speakers (at least one speaker when
    ``val_fraction`` > 0, never all of them); training = the remaining rows. Augmented copies
    go to the training set only: validation and test hold original recordings."""
    rows = np.arange(info.n_rows)
    augmented = info.augmented
    in_fold = info.fold == test_fold if test_fold is not None else np.zeros(info.n_rows, bool)
    is_test = in_fold & ~augmented
    if test_fold is not None and not is_test.any():
        raise ValueError(f"fold {test_fold} has no rows (the database has {info.n_folds} folds)")
    train_speakers = sorted(set(info.speaker[~in_fold]))
    n_val = 0
    if val_fraction > 0:
        if len(train_speakers) < 2:
            raise ValueError("a validation split needs at least two training speakers")
        n_val = min(len(train_speakers) - 1, max(1, round(val_fraction * len(train_speakers))))
    rng = np.random.default_rng([seed, 0 if test_fold is None else test_fold + 1])
    val_speakers = sorted(rng.choice(train_speakers, size=n_val, replace=False).tolist())
    is_val = ~in_fold & np.isin(info.speaker, val_speakers)
    is_train = ~in_fold & ~is_val
    is_val &= ~augmented
    return FoldSplit(
        test_fold=test_fold,
        train=rows[is_train],
        val=rows[is_val],
        test=rows[is_test],
        speakers={
            "train": sorted(set(info.speaker[is_train])),
            "validation": val_speakers,
            "test": sorted(set(info.speaker[is_test])),
        },
    )


def contiguous_runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted row indices -> [(start, stop), ...] runs of consecutive rows."""
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def label_columns(info: DatabaseInfo, tasks: Sequence[str]) -> list[int]:
    """Column of each task in the database's ``label`` matrix."""
    names = [t["name"] for t in info.tasks]
    missing = [t for t in tasks if t not in names]
    if missing:
        raise ValueError(f"task(s) {missing} not in the database (it has {names})")
    return [names.index(t) for t in tasks]


@dataclass
class Arrays:
    """Rows held in memory."""

    feat: np.ndarray
    n_valid: np.ndarray
    label: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.size)


def read_rows(
    path: str | Path,
    rows: np.ndarray,
    label_cols: Sequence[int],
    norm: SpeakerNorm | None = None,
) -> Arrays:
    """Read the given (sorted) rows, one contiguous slice per run (standardised per speaker
    when ``norm`` is given)."""
    with h5py.File(path, "r") as h5:
        feat = np.empty((rows.size, *h5["feat"].shape[1:]), dtype=np.float32)
        n_valid = np.empty(rows.size, dtype=np.int32)
        label = np.empty((rows.size, len(label_cols)), dtype=np.float64)
        pos = 0
        for start, stop in contiguous_runs(rows):
            n = stop - start
            h5["feat"].read_direct(feat, np.s_[start:stop], np.s_[pos : pos + n])
            n_valid[pos : pos + n] = h5["n_valid"][start:stop]
            label[pos : pos + n] = h5["label"][start:stop][:, list(label_cols)]
            pos += n
        layout = json.loads(h5.attrs["window_spec"])["layout"]
    if norm is not None:
        norm.apply(feat, n_valid, rows, layout)
    return Arrays(feat=feat, n_valid=n_valid, label=label, rows=rows)


class SpeakerNorm:
    """Speaker-level normalisation: each speaker's features standardised with that speaker's own
    per-dimension mean and standard deviation, over the valid windows of the speaker's original
    (not augmented) recordings. Uses no labels, and includes the test speakers (as a deployed
    recogniser adapting to its user would, see the recogniser's running statistics)."""

    def __init__(self, info: DatabaseInfo, chunk_rows: int = 1024) -> None:
        self.speakers, self.code = np.unique(info.speaker.astype(str), return_inverse=True)
        n_spk = len(self.speakers)
        dims = info.row_shape[-1]
        s1, s2 = np.zeros((n_spk, dims)), np.zeros((n_spk, dims))
        count = np.zeros(n_spk)
        rows = np.flatnonzero(~info.augmented)
        with h5py.File(info.path, "r") as h5:
            dset, layout = h5["feat"], info.attrs["window_spec"]["layout"]
            for start, stop in contiguous_runs(rows):
                for a in range(start, stop, chunk_rows):
                    b = min(stop, a + chunk_rows)
                    windows = to_time_major(dset[a:b], layout)
                    mask = np.arange(windows.shape[1])[None, :] < h5["n_valid"][a:b][:, None]
                    valid = np.where(mask[:, :, None, None, None], windows, 0).astype(np.float64)
                    codes = self.code[a:b]
                    np.add.at(s1, codes, valid.sum((1, 2, 3)))
                    np.add.at(s2, codes, (valid**2).sum((1, 2, 3)))
                    np.add.at(count, codes, mask.sum(1) * windows.shape[3])
        if (count == 0).any():
            raise ValueError(f"speaker(s) without frames: {list(self.speakers[count == 0])}")
        self.mean = (s1 / count[:, None]).astype(np.float32)
        var = np.maximum(s2 / count[:, None] - (s1 / count[:, None]) ** 2, 1e-12)
        self.std = np.sqrt(var).astype(np.float32)

    def apply(self, feat: np.ndarray, n_valid: np.ndarray, rows: np.ndarray, layout: str) -> None:
        """Standardise ``feat`` (rows ``rows`` of the database) in place; padding windows stay 0."""
        k = self.code[rows]
        shape = (len(rows),) + (1,) * (feat.ndim - 2) + (feat.shape[-1],)
        feat -= self.mean[k].reshape(shape)
        feat /= self.std[k].reshape(shape)
        time_major = to_time_major(feat, layout)  # a view
        steps = time_major.shape[1]
        time_major[np.arange(steps)[None, :] >= n_valid[:, None]] = 0.0


def feature_moments(path: str | Path, rows: np.ndarray, chunk_rows: int = 1024) -> tuple:
    """Per-dimension mean and variance of the features over the *valid* windows of ``rows``
    (training data only), read in contiguous chunks with float64 accumulation."""
    total = 0
    s1 = s2 = None
    with h5py.File(path, "r") as h5:
        dset, layout = h5["feat"], json.loads(h5.attrs["window_spec"])["layout"]
        for start, stop in contiguous_runs(rows):
            for a in range(start, stop, chunk_rows):
                b = min(stop, a + chunk_rows)
                windows = to_time_major(dset[a:b], layout)  # (n, T, 1, c, D)
                n_valid = h5["n_valid"][a:b]
                mask = np.arange(windows.shape[1])[None, :] < n_valid[:, None]
                valid = windows[mask].reshape(-1, windows.shape[-1]).astype(np.float64)
                s1 = valid.sum(0) if s1 is None else s1 + valid.sum(0)
                s2 = (valid**2).sum(0) if s2 is None else s2 + (valid**2).sum(0)
                total += valid.shape[0]
    if not total:
        raise ValueError("no valid feature windows to compute normalisation statistics from")
    mean = s1 / total
    var = np.maximum(s2 / total - mean**2, 1e-12)
    return mean.astype(np.float32), var.astype(np.float32)


def read_layout(path: str | Path) -> str:
    """The database's window layout (2d or 3d)."""
    with h5py.File(path, "r") as h5:
        return json.loads(h5.attrs["window_spec"])["layout"]


def to_time_major(feat: np.ndarray, layout: str) -> np.ndarray:
    """3d layout (N, 1, T, c, D) -> (N, T, 1, c, D); 2d is already time-major."""
    return np.swapaxes(feat, 1, 2) if layout == "3d" else feat


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights, normalised to mean 1 over the present classes."""
    counts = np.bincount(labels.astype(int), minlength=n_classes).astype(float)
    weights = np.where(
        counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0
    )
    return weights


def as_inputs(feat: np.ndarray, n_valid: np.ndarray) -> dict[str, np.ndarray]:
    """The model's named inputs."""
    return {"features": feat, "n_valid": n_valid}


class ChunkedBatches:
    """Shuffled batches over rows, read as contiguous blocks of ``block_rows``.

    Each epoch shuffles the block order; ``buffer_blocks`` blocks are read together and their
    rows shuffled in memory. With everything in RAM (``arrays`` given) the blocks are slices.
    Yields ``(inputs, targets, sample_weights)`` as Keras's ``fit`` expects.
    """

    def __init__(
        self,
        path: str | Path,
        rows: np.ndarray,
        label_cols: Sequence[int],
        tasks: Sequence[Mapping[str, Any]],
        batch_size: int,
        seed: int,
        weights: Mapping[str, np.ndarray] | None = None,
        arrays: Arrays | None = None,
        block_rows: int = 2048,
        buffer_blocks: int = 4,
        norm: SpeakerNorm | None = None,
        resample: tuple[int, np.ndarray] | None = None,
        augment: Mapping[str, Any] | None = None,
        augment_fill: np.ndarray | float = 0.0,
    ) -> None:
        """``resample`` = (label column j, per-class factor): each training row of class c is
        drawn factor[c] times per epoch on average (random over-/under-sampling); ``augment``
        = SpecAugment settings for training batches, masking with ``augment_fill``."""
        self.path, self.rows, self.label_cols = Path(path), rows, list(label_cols)
        self.tasks, self.batch_size, self.weights = list(tasks), batch_size, weights or {}
        self.arrays, self.norm, self.resample = arrays, norm, resample
        self.augment, self.augment_fill = augment, augment_fill
        self.rng = np.random.default_rng(seed)
        self.augment_rng = np.random.default_rng([seed, 1])
        self.layout = read_layout(path)
        self.blocks = [
            np.arange(start, min(b, start + block_rows))
            for a, b in contiguous_runs(rows)
            for start in range(a, b, block_rows)
        ]
        self.buffer_blocks = buffer_blocks

    def __len__(self) -> int:
        return math.ceil(self.rows.size / self.batch_size)

    def _read(self, block_rows: np.ndarray) -> Arrays:
        if self.arrays is not None:
            idx = np.searchsorted(self.rows, block_rows)  # rows are sorted
            a = self.arrays
            return Arrays(a.feat[idx], a.n_valid[idx], a.label[idx], block_rows)
        return read_rows(self.path, block_rows, self.label_cols, self.norm)

    def _sample(self, buf: Arrays) -> np.ndarray:
        """Indices into ``buf`` for this epoch: every row once, or with random over-/under-
        sampling each row repeated a stochastically rounded ``factor[class]`` times."""
        if self.resample is None:
            return np.arange(len(buf))
        col, factor = self.resample
        f = factor[buf.label[:, col].astype(int)]
        reps = np.floor(f).astype(int) + (self.rng.random(len(buf)) < f - np.floor(f))
        return np.repeat(np.arange(len(buf)), reps)

    def _groups(self, order: np.ndarray):
        for g in range(0, len(order), self.buffer_blocks):
            rows = np.sort(
                np.concatenate([self.blocks[i] for i in order[g : g + self.buffer_blocks]])
            )
            yield self._read(rows), g + self.buffer_blocks >= len(order)

    def epoch(self):
        """One pass over all rows in a fresh random order (a generator of batches). Reading,
        shuffling and batch assembly run in a background thread, overlapping training."""
        return prefetch(self._batches(), depth=8)

    def _batches(self):
        order = self.rng.permutation(len(self.blocks))
        carry: Arrays | None = None
        for buf, last_group in self._groups(order):
            idx = self._sample(buf)
            if carry is not None:
                idx = np.concatenate([np.arange(len(carry)), len(carry) + idx])
                buf = Arrays(
                    *(
                        np.concatenate([x, y])
                        for x, y in zip(
                            (carry.feat, carry.n_valid, carry.label, carry.rows),
                            (buf.feat, buf.n_valid, buf.label, buf.rows),
                            strict=True,
                        )
                    )
                )
            perm = idx[self.rng.permutation(len(idx))]
            n_full = len(perm) // self.batch_size * self.batch_size
            stop = len(perm) if last_group else n_full
            for i in range(0, stop, self.batch_size):
                yield self.batch(buf, perm[i : i + self.batch_size], train=True)
            carry = (
                None
                if last_group
                else Arrays(
                    *(x[perm[n_full:]] for x in (buf.feat, buf.n_valid, buf.label, buf.rows))
                )
            )

    def batch(self, buf: Arrays, idx: np.ndarray, train: bool = False):
        """Inputs, targets and sample weights for rows ``idx`` of ``buf`` (``train``: with the
        training-only augmentation)."""
        targets, sample_weights = {}, {}
        for j, task in enumerate(self.tasks):
            y = buf.label[idx, j]
            if task["type"] == "categorical":
                targets[task["name"]] = y.astype(np.int32)
                w = self.weights.get(task["name"])
                sample_weights[task["name"]] = (
                    w[y.astype(int)].astype(np.float32)
                    if w is not None
                    else np.ones(idx.size, np.float32)
                )
            else:
                targets[task["name"]] = y.astype(np.float32)[:, None]
                sample_weights[task["name"]] = np.ones(idx.size, np.float32)
        feat = buf.feat[idx]
        if train and self.augment:
            masked = spec_augment(
                to_time_major(feat, self.layout),
                buf.n_valid[idx],
                self.augment_rng,
                self.augment,
                self.augment_fill,
            )
            feat = to_time_major(masked, self.layout)  # the swap is its own inverse
        return as_inputs(feat, buf.n_valid[idx]), targets, sample_weights

    def forever(self):
        """Endless batches, epoch after epoch (for ``fit(..., steps_per_epoch=len(self))``)."""
        while True:
            yield from self.epoch()


def prefetch(items, depth: int = 2):
    """Run the generator ``items`` in a background thread, ``depth`` items ahead."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer went away

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # re-raised in the consumer
            put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
