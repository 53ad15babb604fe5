"""Inner speaker folds inside an outer fold: speaker-disjoint, never the outer test speakers."""

from __future__ import annotations

import numpy as np
import pytest

from deepser.database.normalise import FixedNorm
from deepser.database.store import read_info
from deepser.training.split import inner_speakers, split_fold

from ..helpers import synthetic_db


def _db(path, n_speakers: int, n_folds: int):
    speakers = [f"s{k}" for k in range(n_speakers) for _ in range(4)]
    folds = np.array([int(s[1:]) % n_folds for s in speakers])
    order = np.argsort(folds, kind="stable")
    labels = np.tile([0, 1], len(speakers) // 2)[order]
    return read_info(synthetic_db(path, labels, [speakers[i] for i in order], folds[order]))


@pytest.fixture
def info(tmp_path):
    return _db(tmp_path / "db.h5", 6, 3)


def test_inner_folds_split_the_training_speakers_only(info):
    for outer in range(info.n_folds):
        test = set(info.speaker[info.fold == outer])
        groups = inner_speakers(info, outer, 2)
        flat = [s for g in groups for s in g]
        assert len(flat) == len(set(flat))
        assert set(flat) == set(info.speaker) - test
        for j in range(len(groups)):
            split = split_fold(info, outer, 0.34, seed=1, inner=(2, j))
            used = set(info.speaker[np.concatenate([split.train, split.val, split.test])])
            assert not used & test
            assert set(info.speaker[split.test]) == set(groups[j])
            assert not set(info.speaker[split.train]) & set(groups[j])
            assert not set(info.speaker[split.val]) & set(groups[j])


def test_inner_folds_need_two_training_speakers(tmp_path):
    info = _db(tmp_path / "db.h5", 2, 2)
    with pytest.raises(ValueError, match="at least two training speakers"):
        inner_speakers(info, 0, 3)


def test_fixed_norm_standardises_and_keeps_padding_zero():
    feat = np.ones((2, 3, 1, 2, 4), np.float32) * 3
    FixedNorm(np.full(4, 1.0), np.full(4, 4.0)).apply(feat, np.array([3, 1]), np.arange(2), "2d")
    assert np.allclose(feat[0], 1.0) and np.allclose(feat[1, 0], 1.0) and not feat[1, 1:].any()
