"""Fold splits: test = one fold's speakers; validation = a random, speaker-disjoint subset of
the training speakers (never of the test fold); augmented copies go to training only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepser.database.store import DatabaseInfo


@dataclass(frozen=True)
class FoldSplit:
    """Row indices (sorted) of a fold's training, validation and test sets, and their speakers."""

    test_fold: int | None
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    speakers: dict[str, list[str]] = field(default_factory=dict)


def inner_speakers(info: DatabaseInfo, outer_fold: int, n_inner: int) -> list[list[str]]:
    """The speakers of each inner fold of ``outer_fold``: the outer fold's *training* speakers
    (every speaker outside the outer test fold), sorted and dealt round-robin into
    ``min(n_inner, speakers)`` groups. Inner folds never hold a speaker of the outer test fold."""
    outer = info.fold == outer_fold
    if not (outer & ~info.augmented).any():
        raise ValueError(f"fold {outer_fold} has no rows (the database has {info.n_folds} folds)")
    speakers = sorted(set(info.speaker[~outer]) - set(info.speaker[outer]))
    n = min(int(n_inner), len(speakers))
    if n < 2:
        raise ValueError(
            f"inner folds need at least two training speakers; fold {outer_fold} has "
            f"{len(speakers)}"
        )
    return [speakers[j::n] for j in range(n)]


def split_fold(
    info: DatabaseInfo,
    test_fold: int | None,
    val_fraction: float,
    seed: int,
    inner: tuple[int, int] | None = None,
) -> FoldSplit:
    """Test = fold ``test_fold`` (None: no test set, for the final model); validation = a
    random, speaker-disjoint subset of the *training* speakers (at least one speaker when
    ``val_fraction`` > 0, never all of them); training = the remaining rows. Augmented copies
    go to the training set only: validation and test hold original recordings.

    ``inner=(n_inner, j)``: an inner split of outer fold ``test_fold``: the outer test rows are
    left out entirely, the test set is inner fold ``j`` of :func:`inner_speakers`, and training
    and validation come from the other inner folds."""
    rows = np.arange(info.n_rows)
    augmented = info.augmented
    in_fold = info.fold == test_fold if test_fold is not None else np.zeros(info.n_rows, bool)
    excluded = np.zeros(info.n_rows, bool)
    if inner is not None:
        if test_fold is None:
            raise ValueError("an inner split needs an outer test fold")
        groups = inner_speakers(info, test_fold, inner[0])
        if not 0 <= inner[1] < len(groups):
            raise ValueError(f"inner fold {inner[1]} of {len(groups)}")
        excluded = in_fold
        in_fold = ~excluded & np.isin(info.speaker, groups[inner[1]])
    is_test = in_fold & ~augmented
    if test_fold is not None and not is_test.any():
        raise ValueError(f"fold {test_fold} has no rows (the database has {info.n_folds} folds)")
    train_speakers = sorted(set(info.speaker[~in_fold & ~excluded]))
    n_val = 0
    if val_fraction > 0:
        if len(train_speakers) < 2:
            raise ValueError("a validation split needs at least two training speakers")
        n_val = min(len(train_speakers) - 1, max(1, round(val_fraction * len(train_speakers))))
    key = [seed, 0 if test_fold is None else test_fold + 1]
    if inner is not None:
        key += [inner[0], inner[1] + 1]
    rng = np.random.default_rng(key)
    val_speakers = sorted(rng.choice(train_speakers, size=n_val, replace=False).tolist())
    is_val = ~in_fold & ~excluded & np.isin(info.speaker, val_speakers)
    is_train = ~in_fold & ~excluded & ~is_val
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
