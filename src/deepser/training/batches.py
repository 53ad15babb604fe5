"""Training batches from an H5 database, read in contiguous chunks.

Rows of a database are sorted by fold, so a fold's training rows are a few contiguous runs.
They are kept in RAM when they fit; otherwise :class:`ChunkedBatches` streams contiguous blocks
and shuffles rows inside a buffer of several blocks. Class weights and random re-sampling
balance the classes; SpecAugment masks training batches only; :func:`mixup` mixes pairs of
training examples and their targets.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepser.database.normalise import SpeakerNorm
from deepser.database.store import (
    Arrays,
    contiguous_runs,
    read_rows,
    read_window_spec,
    to_time_major,
)
from deepser.models import FEATURES, N_VALID, as_inputs
from deepser.tasks import is_categorical
from deepser.training.spec_augment import spec_augment


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights, normalised to mean 1 over the present classes."""
    counts = np.bincount(labels.astype(int), minlength=n_classes).astype(float)
    weights = np.where(
        counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0
    )
    return weights


def resample_factors(labels: np.ndarray, n_classes: int, how: str) -> np.ndarray:
    """Per-class draw factor for random over-sampling (every class up to the largest) or
    under-sampling (every class down to the smallest present one)."""
    counts = np.bincount(labels.astype(int), minlength=n_classes).astype(float)
    present = counts[counts > 0]
    target = present.max() if how == "over" else present.min()
    return np.where(counts > 0, target / np.maximum(counts, 1), 0.0)


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
        self.layout = read_window_spec(path)["layout"]
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
            if is_categorical(task):
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


def mixup(
    inputs: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray],
    tasks: Sequence[Mapping[str, Any]],
    rng: np.random.Generator,
    alpha: float,
) -> tuple[dict, dict, dict]:
    """Mixup (Zhang et al. 2018) of a training batch: every example ``i`` is mixed with example
    ``perm[i]`` of the same batch, ``lam * x_i + (1 - lam) * x_perm[i]`` with ``lam`` drawn per
    example from Beta(alpha, alpha) and folded to >= 0.5 (the example keeps its own identity);
    categorical targets become the same mixture of one-hot vectors (soft targets), continuous
    targets and sample weights the same mixture of theirs; ``n_valid`` is the larger of the two.
    Features are mixed before the model's (affine) normalisation, which is the same as mixing
    after it."""
    feat = np.asarray(inputs[FEATURES], np.float32)
    n = feat.shape[0]
    lam = rng.beta(alpha, alpha, n).astype(np.float32)
    lam = np.maximum(lam, 1.0 - lam)
    perm = rng.permutation(n)
    shape = (n,) + (1,) * (feat.ndim - 1)
    mixed_inputs = dict(inputs)
    mixed_inputs[FEATURES] = lam.reshape(shape) * feat + (1 - lam.reshape(shape)) * feat[perm]
    n_valid = np.asarray(inputs[N_VALID])
    mixed_inputs[N_VALID] = np.maximum(n_valid, n_valid[perm])
    mixed_targets, mixed_weights = {}, {}
    for task in tasks:
        name = task["name"]
        y = np.asarray(targets[name])
        if is_categorical(task):
            onehot = np.eye(len(task["classes"]), dtype=np.float32)[y.astype(int).reshape(-1)]
            mixed_targets[name] = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm]
        else:
            lam_y = lam.reshape((n,) + (1,) * (y.ndim - 1))
            mixed_targets[name] = (lam_y * y + (1 - lam_y) * y[perm]).astype(np.float32)
        w = np.asarray(weights[name], np.float32)
        mixed_weights[name] = lam * w + (1 - lam) * w[perm]
    return mixed_inputs, mixed_targets, mixed_weights


def prefetch(items, depth: int = 2):
    """Run the generator ``items`` in a background thread, ``depth`` items ahead."""
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
