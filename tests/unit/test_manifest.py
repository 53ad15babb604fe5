"""Shard manifests: written by the meta stage, refreshed while the workflow plans; a shard's
manifest changes exactly when one of its audio files' content changes (real files, real
feature shards)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from deepser.corpus.manifest import (
    Entry,
    UnchangedCheck,
    file_digest,
    manifest_is_whole,
    read_manifest,
    read_sources,
    recorded_sources,
    refresh_manifest,
    shard_rows,
    shards_with_outputs,
    unchanged_manifests,
    write_manifests,
)
from deepser.corpus.summary import distinct_rows
from deepser.features.extraction import extract_shard
from deepser.features.registry import resolve_spec

SPEC = resolve_spec({"type": "logmel", "sample_rate": 16000, "n_mels": 24})


def _wav(path: Path, seed: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.random.default_rng(seed).normal(0, 0.1, 8000).astype(np.float32)
    sf.write(path, y, 16000, subtype="PCM_16")
    return str(path)


@pytest.fixture
def shard(tmp_path: Path):
    """Three files in shard 0 (one more in shard 1), their manifests and shard 0's features
    extracted from the manifest as the workflow does."""
    rows = [(f"u{i}", _wav(tmp_path / f"wav/u{i}.wav", i), 0 if i < 3 else 1) for i in range(4)]
    folder = tmp_path / "shards"
    write_manifests(folder, rows, 3)
    manifest = folder / "shard-0.tsv"
    entries = read_manifest(manifest)
    features = tmp_path / "features/shard-0.h5"
    extract_shard(
        shard_rows(manifest), SPEC, {"method": "none"}, features,
        states={e.utt_id: e.state for e in entries},
    )  # fmt: skip
    return manifest, features, rows


def _refresh(manifest: Path, features: Path, rows) -> bool:
    return refresh_manifest(
        manifest,
        recorded=lambda: recorded_sources([features]),
        rows=lambda: [(u, a) for u, a, k in rows if k == 0],
    )


def _later(path: str, seconds: int = 5) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_manifests_hold_every_shard_with_each_files_state(shard, tmp_path: Path) -> None:
    manifest, features, rows = shard
    assert [e.utt_id for e in read_manifest(manifest)] == ["u0", "u1", "u2"]
    assert [e.utt_id for e in read_manifest(tmp_path / "shards/shard-1.tsv")] == ["u3"]
    assert read_manifest(tmp_path / "shards/shard-2.tsv") == []  # an empty shard has one too
    entry = read_manifest(manifest)[1]
    st = os.stat(rows[1][1])
    assert entry == Entry("u1", rows[1][1], st.st_size, st.st_mtime_ns)
    sources = read_sources(features)
    assert sources["u1"].digest == file_digest(rows[1][1]) and sources["u1"].size == st.st_size


def test_given_states_are_written_and_odd_names_read_back(tmp_path: Path) -> None:
    """The meta check's states are written as given; names the csv module quotes (a quote, a
    tab) read back as they were."""
    for names in (["u0", "wav/u0.wav", "u1", "wav/u1.wav"], ['u"0', 'a "b".wav', "u\t1", "c.wav"]):
        rows = [(names[0], names[1], 0), (names[2], names[3], 1)]
        write_manifests(tmp_path, rows, 2, states=[(10, 20), (-1, 0)])
        assert read_manifest(tmp_path / "shard-0.tsv") == [Entry(names[0], names[1], 10, 20)]
        assert read_manifest(tmp_path / "shard-1.tsv") == [Entry(names[2], names[3], -1, 0)]
        assert manifest_is_whole(tmp_path / "shard-1.tsv")


def test_unchanged_files_leave_the_manifest_alone(shard) -> None:
    manifest, features, rows = shard
    before = manifest.read_bytes(), manifest.stat().st_mtime_ns
    assert not _refresh(manifest, features, rows)
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before


def test_a_touch_changes_nothing_and_is_hashed_once(shard, monkeypatch) -> None:
    manifest, features, rows = shard
    before = manifest.read_bytes()
    _later(rows[0][1])
    assert not _refresh(manifest, features, rows)
    assert manifest.read_bytes() == before
    # the verified state is remembered: no second digest of the file
    import deepser.corpus.manifest as module

    monkeypatch.setattr(module, "file_digest", lambda path: pytest.fail(f"hashed {path}"))
    assert not _refresh(manifest, features, rows)


def test_changed_content_of_the_same_size_rewrites_the_manifest(shard) -> None:
    manifest, features, rows = shard
    before = read_manifest(manifest)
    y, sr = sf.read(rows[2][1], dtype="float32")
    sf.write(rows[2][1], y * 0.5, sr, subtype="PCM_16")  # same size, other samples
    assert os.stat(rows[2][1]).st_size == before[2].size
    assert _refresh(manifest, features, rows)
    after = read_manifest(manifest)
    assert after[:2] == before[:2] and after[2].mtime_ns == os.stat(rows[2][1]).st_mtime_ns
    assert not _refresh(manifest, features, rows)  # stable until the next change


def test_restoring_the_extracted_content_restores_the_manifest(shard) -> None:
    manifest, features, rows = shard
    original_bytes = manifest.read_bytes()
    wav = Path(rows[1][1])
    original = wav.read_bytes()
    wav.write_bytes(original[:-2] + b"\x01\x02")
    _later(str(wav), 3)
    assert _refresh(manifest, features, rows)
    wav.write_bytes(original)  # back to what the features were extracted from
    _later(str(wav), 9)
    assert _refresh(manifest, features, rows)
    assert manifest.read_bytes() == original_bytes  # its checksum is the recorded one again


def test_a_missing_file_or_a_new_size_rewrites_the_manifest(shard) -> None:
    manifest, features, rows = shard
    Path(rows[0][1]).unlink()
    assert _refresh(manifest, features, rows)
    assert read_manifest(manifest)[0].state == (-1, 0)
    _wav(Path(rows[0][1]), 99)
    with open(rows[0][1], "ab") as f:
        f.write(b"\0\0")
    assert _refresh(manifest, features, rows)
    assert read_manifest(manifest)[0].size == os.stat(rows[0][1]).st_size


def test_a_lost_or_damaged_manifest_is_rebuilt_with_the_extracted_states(shard) -> None:
    manifest, features, rows = shard
    original = manifest.read_bytes()
    _later(rows[2][1])  # touched since the extraction: still the extracted content
    for damage in (lambda: manifest.unlink(), lambda: manifest.write_bytes(b"\xff\x00garbage")):
        damage()
        assert _refresh(manifest, features, rows)
        assert manifest.read_bytes() == original


def test_without_a_record_a_differing_file_counts_as_changed(shard, tmp_path: Path) -> None:
    manifest, features, rows = shard
    _later(rows[0][1])
    assert refresh_manifest(manifest, recorded=dict, rows=list)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(b"not hdf5")
    assert read_sources(damaged) == {} and read_sources(tmp_path / "absent.h5") == {}


def test_a_file_edited_before_its_shard_was_extracted_keeps_the_manifest(tmp_path: Path) -> None:
    """A shard with nothing extracted is planned on its manifest as the meta stage wrote it
    (its files are not compared): an edit made meanwhile (here a new size) is extracted with
    the manifest's earlier state recorded, and that content then counts as the extracted one."""
    rows = [(f"u{i}", _wav(tmp_path / f"wav/u{i}.wav", i), 0) for i in range(2)]
    write_manifests(tmp_path / "shards", rows, 1)
    manifest = tmp_path / "shards/shard-0.tsv"
    original = manifest.read_bytes()
    _wav(Path(rows[1][1]), 42)
    with open(rows[1][1], "ab") as f:
        f.write(b"\0\0")  # another size, after the meta stage
    entries = read_manifest(manifest)
    features = tmp_path / "features/shard-0.h5"
    extract_shard(
        shard_rows(manifest), SPEC, {"method": "none"}, features,
        states={e.utt_id: e.state for e in entries},
    )  # fmt: skip
    assert not _refresh(manifest, features, rows)
    assert manifest.read_bytes() == original
    _wav(Path(rows[1][1]), 43)  # and an edit after the extraction counts
    assert _refresh(manifest, features, rows)


def test_a_manifest_is_whole_with_its_header_and_a_complete_last_row(tmp_path: Path) -> None:
    rows = [(f"u{i}", _wav(tmp_path / f"wav/u{i}.wav", i), i % 2) for i in range(3)]
    write_manifests(tmp_path, rows, 3)
    full, empty = tmp_path / "shard-0.tsv", tmp_path / "shard-2.tsv"
    assert manifest_is_whole(full) and manifest_is_whole(empty)
    data = full.read_bytes()
    cut = tmp_path / "cut.tsv"
    for damaged in (data[:-1], data[:-8], b"utt_id\taudio\n" + data[30:], b"\xff" + data, b""):
        cut.write_bytes(damaged)
        assert not manifest_is_whole(cut), damaged
    assert not manifest_is_whole(tmp_path / "absent.tsv")
    assert not manifest_is_whole(tmp_path)  # a folder


def test_shards_with_outputs_are_read_off_the_file_names(tmp_path: Path) -> None:
    for name in ("a/shard-3.h5", "a/shard-10.h5", "b/shard-3.json", "b/shard-x.h5", "b/other.h5"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "c.json").write_bytes(b"")
    folders = [tmp_path / "a", tmp_path / "b", tmp_path / "c.json", tmp_path / "z"]
    assert shards_with_outputs(folders) == {3, 10}


def test_the_parallel_check_agrees_with_the_serial_one(tmp_path: Path) -> None:
    rows = [(f"u{i}", _wav(tmp_path / f"wav/u{i}.wav", i), i % 9) for i in range(18)]
    write_manifests(tmp_path / "shards", rows, 9)  # 8 manifests or more: child processes
    paths = [tmp_path / "shards" / f"shard-{k}.tsv" for k in range(9)] + [tmp_path / "none.tsv"]
    _later(rows[4][1])  # shard 4: a file in another state
    expected = [True] * 4 + [False] + [True] * 4 + [False]
    assert unchanged_manifests(paths, 1) == expected
    assert unchanged_manifests(paths, 2) == expected  # two child processes
    check = UnchangedCheck(paths, 3)
    (tmp_path / "shards/shard-0.tsv").write_text("rewritten meanwhile\n")
    assert check[4] is False and check[5] is True  # answered one by one, in any order
    assert check.results() == [False, *expected[1:]]  # a manifest rewritten since: again


def test_distinct_rows_are_counted_once_and_cached_per_meta_version(tmp_path: Path) -> None:
    meta = tmp_path / "meta.tsv"
    table = pd.DataFrame({"speaker": ["a", "a", "b", "a"], "emotion": ["x", "y", "x", "x"]})
    meta.write_text(table.to_csv(sep="\t", index=False))
    reads = []

    def read() -> pd.DataFrame:
        reads.append(1)
        return pd.read_csv(meta, sep="\t", dtype=str)

    rows = distinct_rows(meta, ("speaker", "emotion"), read)
    assert rows == [("a", "x", 2), ("a", "y", 1), ("b", "x", 1)]
    assert distinct_rows(meta, ("speaker",), read) == [("a", 3), ("b", 1)]
    assert distinct_rows(meta, ("speaker", "emotion"), read) == rows and len(reads) == 2
    meta.write_text(table.iloc[:2].to_csv(sep="\t", index=False))  # a new version
    assert distinct_rows(meta, ("speaker",), read) == [("a", 2)] and len(reads) == 3
