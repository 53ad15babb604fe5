"""Fold splits (speaker-disjoint validation from training speakers), contiguous reads, batches,
and normalisation statistics from training rows only."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from deepser.database.normalise import feature_moments
from deepser.database.store import DatabaseWriter, contiguous_runs, read_info, read_rows
from deepser.training.batches import ChunkedBatches
from deepser.training.split import split_fold

TASKS = [{"name": "emotion", "type": "categorical", "classes": ["a", "b", "c"]}]


def make_db(path: Path, n_speakers: int = 6, per_speaker: int = 7, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    speakers = [f"s{i}" for i in range(n_speakers) for _ in range(per_speaker)]
    folds = [int(s[1:]) % 3 for s in speakers]
    order = np.argsort(folds, kind="stable")
    writer = DatabaseWriter(path, len(speakers), (4, 1, 2, 3), 1, block_rows=5)
    for i in order:
        feat = rng.standard_normal((4, 1, 2, 3)).astype(np.float32) + folds[i]
        writer.append(
            feat,
            np.array([i % 3]),
            int(rng.integers(1, 5)),
            folds[i],
            f"u{i:03d}",
            speakers[i],
            "c",
        )
    bounds = [
        (
            int(np.searchsorted(np.sort(folds), k)),
            int(np.searchsorted(np.sort(folds), k, side="right")),
        )
        for k in range(3)
    ]
    writer.finish(
        bounds,
        {"tasks": TASKS, "window_spec": {"layout": "2d", "c_len": 2, "n_steps": 4, "dims": 3}},
    )
    return path


def test_split_is_speaker_disjoint_and_validation_comes_from_training(tmp_path: Path) -> None:
    info = read_info(make_db(tmp_path / "db.h5"))
    for fold in range(3):
        split = split_fold(info, fold, 0.25, seed=3)
        sp = split.speakers
        assert set(sp["test"]) == {s for s in set(info.speaker) if int(s[1:]) % 3 == fold}
        assert len(sp["validation"]) == 1
        assert not set(sp["train"]) & set(sp["validation"])
        assert not (set(sp["train"]) | set(sp["validation"])) & set(sp["test"])
        assert np.all(info.fold[split.test] == fold) and not np.any(info.fold[split.train] == fold)
        rows = np.concatenate([split.train, split.val, split.test])
        assert sorted(rows) == list(range(info.n_rows))
        again = split_fold(info, fold, 0.25, seed=3)  # seeded
        assert again.speakers == sp and np.array_equal(again.val, split.val)
    final = split_fold(info, None, 0.0, seed=3)
    assert final.test.size == 0 and final.train.size == info.n_rows
    with pytest.raises(ValueError, match="fold 7 has no rows"):
        split_fold(info, 7, 0.25, seed=3)


def test_contiguous_runs() -> None:
    assert contiguous_runs(np.array([0, 1, 2, 5, 6, 9])) == [(0, 3), (5, 7), (9, 10)]
    assert contiguous_runs(np.array([], int)) == []


def test_batches_cover_every_training_row_once_from_disk_and_ram(tmp_path: Path) -> None:
    info = read_info(make_db(tmp_path / "db.h5"))
    split = split_fold(info, 1, 0.25, seed=0)
    reference = read_rows(info.path, split.train, [0])
    for arrays in (None, reference):
        batches = ChunkedBatches(
            info.path,
            split.train,
            [0],
            TASKS,
            batch_size=4,
            seed=1,
            arrays=arrays,
            block_rows=3,
            buffer_blocks=2,
        )
        for _ in range(2):  # two epochs, different orders
            got = [b for b in batches.epoch()]
            assert len(got) == len(batches)
            feats = np.concatenate([x["features"] for x, _, _ in got])
            labels = np.concatenate([y["emotion"] for _, y, _ in got])
            assert feats.shape[0] == split.train.size
            key = lambda a: np.round(a.reshape(len(a), -1)[:, 0], 5)  # noqa: E731
            assert sorted(key(feats)) == sorted(key(reference.feat))
            assert sorted(labels) == sorted(reference.label[:, 0].astype(int))


def test_normalisation_statistics_ignore_test_and_padding(tmp_path: Path) -> None:
    path = make_db(tmp_path / "db.h5")
    info = read_info(path)
    split = split_fold(info, 0, 0.0, seed=0)
    mean, var = feature_moments(path, split.train)
    arrays = read_rows(path, split.train, [0])
    valid = np.concatenate(
        [a[:n].reshape(-1, 3) for a, n in zip(arrays.feat, arrays.n_valid, strict=True)]
    )
    np.testing.assert_allclose(mean, valid.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, valid.var(0), rtol=1e-4)
    with h5py.File(path, "r+") as h5:  # changing test rows does not change the statistics
        s, e = h5["start_indice"][0], h5["end_indice"][0]
        h5["feat"][s:e] = 1000.0
    np.testing.assert_array_equal(feature_moments(path, split.train)[0], mean)
