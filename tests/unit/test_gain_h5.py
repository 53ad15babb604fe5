"""Gain statistics (map/reduce equals the global values), gain files, H5 shards and atomicity."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from deepser.corpus.gain import apply_gain, merge_stats, read_gain_txt, resolve_gain, shard_stats
from deepser.database.store import DatabaseWriter
from deepser.features.shards import FeatureShard, write_feature_shard


def test_merged_shard_stats_equal_global_stats(rng: np.random.Generator) -> None:
    signals = [rng.standard_normal(rng.integers(100, 1000)).astype(np.float32) for _ in range(9)]
    merged = merge_stats([shard_stats(signals[:4]), shard_stats(signals[4:]), shard_stats([])])
    everything = np.concatenate(signals).astype(np.float64)
    assert merged["n_utterances"] == 9 and merged["n_samples"] == everything.size
    assert merged["min"] == everything.min() and merged["max"] == everything.max()
    assert merged["rms"] == pytest.approx(np.sqrt(np.mean(everything**2)))


def test_original_gain_file(tmp_path: Path) -> None:
    path = tmp_path / "meta.txt.gain.txt"
    path.write_text("min gain:\t-1.0541904, max gain:\t1.1097699\n")
    assert read_gain_txt(path) == (-1.0541904, 1.1097699)
    gain = resolve_gain({"method": "minmax", "source": "file", "file": str(path)}, None)
    y = apply_gain(np.array([-1.0541904, 0.0, 1.1097699], np.float32), gain)
    np.testing.assert_allclose(y, [0.0, 1.0541904 / (1.1097699 + 1.0541904), 1.0], atol=1e-6)
    path.write_text("nonsense")
    with pytest.raises(ValueError, match="not a gain file"):
        read_gain_txt(path)


def test_gain_methods() -> None:
    y = np.array([0.0, 0.25, -0.5], np.float32)
    assert np.max(np.abs(apply_gain(y, resolve_gain({"method": "peak"}, None)))) == pytest.approx(
        1.0
    )
    rms = apply_gain(y, resolve_gain({"method": "rms", "target": 0.2}, None))
    assert np.sqrt(np.mean(rms.astype(np.float64) ** 2)) == pytest.approx(0.2, rel=1e-5)
    assert apply_gain(y, {"method": "none"}) is y
    with pytest.raises(ValueError, match="max > min"):
        resolve_gain({"method": "minmax", "source": "fixed", "min": 0.0, "max": 0.0}, None)
    fixed = resolve_gain(
        {"method": "minmax", "source": "fixed", "min": -1, "max": 1, "range": [-1, 1]}, None
    )
    np.testing.assert_allclose(apply_gain(y, fixed), y, atol=1e-7)


def test_feature_shard_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    items = [
        (f"u{i}", rng.standard_normal((int(rng.integers(1, 50)), 7)).astype(np.float32))
        for i in range(20)
    ]
    path = tmp_path / "shard-0.h5"
    assert write_feature_shard(path, iter(items), {"feature_spec": {"type": "x"}}) == 20
    with FeatureShard(path) as shard:
        assert shard.dims == 7 and shard.attrs["feature_spec"] == {"type": "x"}
        for utt_id, array in items:
            np.testing.assert_array_equal(shard[utt_id], array)


def test_interrupted_writers_leave_no_file(tmp_path: Path) -> None:
    def failing():
        yield "u0", np.ones((3, 2), np.float32)
        raise KeyboardInterrupt

    path = tmp_path / "shard.h5"
    with pytest.raises(KeyboardInterrupt):
        write_feature_shard(path, failing(), {})
    assert list(tmp_path.iterdir()) == []

    writer = DatabaseWriter(tmp_path / "db.h5", n_rows=2, row_shape=(1, 1, 2, 2), n_tasks=1)
    writer.append(np.zeros((1, 1, 2, 2)), np.zeros(1), 1, 0, "u0", "s", "c")
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    writer = DatabaseWriter(tmp_path / "db.h5", n_rows=2, row_shape=(1, 1, 2, 2), n_tasks=1)
    writer.append(np.zeros((1, 1, 2, 2)), np.zeros(1), 1, 0, "u0", "s", "c")
    with pytest.raises(ValueError, match="wrote 1 rows, announced 2"):
        writer.finish(None, {})
    writer.abort()
    assert not (tmp_path / "db.h5").exists()


def test_database_writer_streams_rows(tmp_path: Path) -> None:
    writer = DatabaseWriter(
        tmp_path / "db.h5", n_rows=5, row_shape=(2, 1, 3, 4), n_tasks=2, block_rows=2
    )
    for i in range(5):
        writer.append(np.full((2, 1, 3, 4), i), np.array([i, -i]), 2, i // 3, f"u{i}", "s", "c")
    writer.finish([(0, 3), (3, 5)], {"note": "x"})
    with h5py.File(tmp_path / "db.h5") as h5:
        assert h5["feat"].shape == (5, 2, 1, 3, 4)
        assert [int(v) for v in h5["feat"][:, 0, 0, 0, 0]] == [0, 1, 2, 3, 4]
        assert h5["start_indice"].dtype == np.int64 and list(h5["end_indice"]) == [3, 5]
        assert list(h5["utt_id"].asstr()) == [f"u{i}" for i in range(5)]
