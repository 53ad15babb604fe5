"""The out-of-core database build against a row-by-row oracle: the straightforward in-memory
build (every meta row joined with every shard, sorted by fold, corpus, group and utterance id,
windows cut per row) on random corpora: several corpora, augmented copies, rejected audio,
utterances a shard holds that the meta does not list, folds by speaker, by another column or
none, a continuous task, both layouts, and batches small enough that the plan merges many
runs and reads shards in many blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from deepser.database import build as build_module
from deepser.database import rows as rows_module
from deepser.database import shard_reads
from deepser.database.build import CorpusInput, build_database
from deepser.database.folds import assign_folds
from deepser.database.store import DatabaseWriter
from deepser.database.windows import as_row, cut_windows
from deepser.errors import DamagedFileError
from deepser.features.augment import augmented_id, is_augmented, source_id
from deepser.features.shards import write_feature_shard
from deepser.files import write_json, write_tsv

EMOTIONS = ("angry", "happy", "neutral", "sad")
DIMS = 3


def make_corpus(folder: Path, name: str, rng: np.random.Generator) -> CorpusInput:
    """A random corpus: meta, vocab and shards as the workflow writes them."""
    n, n_shards = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    speakers = [f"sp{k}" for k in range(int(rng.integers(1, 6)))]
    rows = []
    for i in range(n):
        number = int(rng.integers(0, 10 ** int(rng.integers(1, 7))))  # ids of several lengths
        utt = f"{rng.choice(['a', 'bb', 'ccc/ä'])}{number}_{i}"
        rows.append(
            {
                "utt_id": utt,
                "audio": f"wav/{utt}.wav",
                "shard": int(rng.integers(0, n_shards)),
                "line": i + 2,
                "emotion": str(rng.choice(EMOTIONS)),
                "arousal": f"{rng.uniform(-1, 1):.3f}",
                "session": f"ses{int(rng.integers(0, 3))}",
                "speaker": str(rng.choice(speakers)),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["utt_id", "audio", "shard", "line", "emotion", "arousal", "session", "speaker"],
    )
    folder.mkdir(parents=True)
    write_tsv(folder / "meta.tsv", table)
    vocab = {
        "emotion": {"type": "categorical", "classes": list(rng.permutation(EMOTIONS))},
        "arousal": {"type": "continuous"},
        "session": {"type": "categorical", "classes": ["ses0", "ses1", "ses2"]},
        "speaker": {"type": "categorical", "classes": speakers},
    }
    write_json(folder / "vocab.json", vocab, sort_keys=False)
    shards = []
    for k in range(n_shards):
        ids = list(table.loc[table["shard"] == k, "utt_id"])
        rejected = [u for u in ids if rng.random() < 0.1]
        held = [u for u in ids if u not in rejected]
        held += [augmented_id(u, c) for u in held for c in (1, 2) if rng.random() < 0.3]
        held += [f"stray{k}_{j}" for j in range(int(rng.integers(0, 2)))]  # not in the meta
        held = list(rng.permutation(held)) if held else []
        items = [(u, rng.standard_normal((int(rng.integers(1, 30)), DIMS))) for u in held]
        attrs = {
            "feature_spec": {"type": "logmel", "n_mels": DIMS},
            "gain": {"method": "none", "shard": k},
            "rejected": [
                {"utt_id": u, "audio": "x", "stage": "features", "reason": "r"} for u in rejected
            ],
        }
        path = folder / f"shard-{k}.h5"
        write_feature_shard(path, items, attrs)
        shards.append(path)
    return CorpusInput(name, folder / "meta.tsv", folder / "vocab.json", tuple(shards))


def oracle(corpora: list[CorpusInput], db: dict[str, Any]) -> dict[str, Any]:
    """The in-memory build, row by row: datasets and the attributes that depend on the rows."""
    from deepser.database.build import read_corpus_tables
    from deepser.features.shards import FeatureShard

    tables, feats = [], {}
    multi = len(corpora) > 1
    for corpus in corpora:
        vocab, table = read_corpus_tables(corpus)
        where = {}
        for path in corpus.shards:
            with FeatureShard(path) as shard:
                for u, f in shard.read_all().items():
                    where[u] = np.array(f)
        table = table[table["utt_id"].isin(where.keys())].assign(corpus=corpus.name)
        by_id = table.set_index("utt_id", drop=False)
        extra = [u for u in where if is_augmented([u])[0] and source_id(u) in by_id.index]
        copies = by_id.loc[[source_id(u) for u in extra]].copy()
        copies["utt_id"] = extra
        tables.append(pd.concat([table, copies], ignore_index=True))
        feats.update({(corpus.name, u): f for u, f in where.items()})
        task_vocab = vocab
    rows = pd.concat(tables, ignore_index=True)
    classes = {t: [] for t in db["tasks"]}
    for corpus in corpora:
        vocab, _ = read_corpus_tables(corpus)
        for t in db["tasks"]:
            if vocab[t]["type"] == "categorical":
                classes[t] += [c for c in vocab[t]["classes"] if c not in classes[t]]
    del task_vocab

    def q(col):
        return [
            f"{c}/{v}" if multi else str(v) for c, v in zip(rows["corpus"], rows[col], strict=True)
        ]

    rows["spk"] = q("speaker")
    fold_by = db.get("fold_by", "speaker")
    if fold_by:
        rows["group"] = q(fold_by)
        assignment = assign_folds(list(rows["group"]), db.get("n_folds"))
        rows["fold"] = rows["group"].map(assignment).astype(int)
        rows = rows.sort_values(["fold", "corpus", "group", "utt_id"], kind="stable")
    else:
        rows["fold"] = -1
        rows = rows.sort_values(["corpus", "utt_id"], kind="stable")
    label = np.stack(
        [
            rows[t]
            .map(lambda v, t=t: classes[t].index(str(v)) if classes[t] else float(v))
            .to_numpy(float)
            for t in db["tasks"]
        ],
        axis=1,
    )
    feat, n_valid = [], []
    for corpus, utt in zip(rows["corpus"], rows["utt_id"], strict=True):
        windows, n = cut_windows(feats[(corpus, utt)], db["c_len"], db["max_steps"])
        feat.append(as_row(windows, db.get("layout", "2d")))
        n_valid.append(n)
    out = {
        "feat": np.stack(feat),
        "label": label,
        "n_valid": np.asarray(n_valid),
        "fold": rows["fold"].to_numpy(),
        "utt_id": list(rows["utt_id"]),
        "speaker": list(rows["spk"]),
        "corpus": list(rows["corpus"]),
        "speakers": sorted(set(rows["spk"])),
        "n_augmented": int(is_augmented(rows["utt_id"]).sum()),
    }
    if fold_by:
        folds = rows["fold"].to_numpy()
        out["start_indice"] = [int(np.flatnonzero(folds == k)[0]) for k in range(folds.max() + 1)]
        out["end_indice"] = [
            int(np.flatnonzero(folds == k)[-1]) + 1 for k in range(folds.max() + 1)
        ]
        out["folds"] = [
            {
                "fold": k,
                "groups": sorted(g for g, f in assignment.items() if f == k),
                "n_utterances": int(((folds == k) & ~is_augmented(rows["utt_id"])).sum()),
            }
            for k in range(folds.max() + 1)
        ]
    return out


def read_back(path: Path) -> dict[str, Any]:
    with h5py.File(path) as h5:
        out = {k: h5[k][()] for k in ("feat", "label", "n_valid", "fold")}
        for k in ("utt_id", "speaker", "corpus"):
            out[k] = list(h5[k].asstr()[()])
        for k in ("start_indice", "end_indice"):
            if k in h5:
                out[k] = h5[k][()].tolist()
    return out


CASES = list(range(12))


@pytest.mark.parametrize("case", CASES)
def test_the_build_matches_the_row_by_row_oracle(tmp_path: Path, case: int, monkeypatch) -> None:
    rng = np.random.default_rng(case)
    small = case % 2 == 1  # tiny batches: many runs merged, shards read in many blocks
    if small:
        monkeypatch.setattr(rows_module, "MERGE_BLOCK", 2)
        monkeypatch.setattr(build_module, "COPY_BYTES", 1)  # one row per write
        monkeypatch.setattr(build_module, "READ_ROWS", 3)
        monkeypatch.setattr(shard_reads, "open_file_budget", lambda: 1)  # reopened every time
    corpora = [
        make_corpus(tmp_path / f"c{k}", name, rng)
        for k, name in enumerate(
            rng.choice(["emo", "b", "emo-x", "zz"], size=int(rng.integers(1, 4)), replace=False)
        )
    ]
    if small:  # chunks of 3 frames: most utterances lie across chunks of their shard
        for corpus in corpora:
            for path in corpus.shards:
                rechunk(path, 3)
    fold_by = [None, "speaker", "session"][case % 3]
    n_groups = len(set(oracle_groups(corpora, fold_by))) if fold_by else 0
    db = {
        "tasks": ["emotion", "arousal"] if case % 4 else ["emotion"],
        "c_len": int(rng.integers(1, 4)),
        "max_steps": int(rng.integers(4, 12)),
        "layout": ["2d", "3d"][case % 2],
        "fold_by": fold_by,
        "n_folds": 2 if n_groups >= 2 and case % 5 == 0 else None,
    }
    try:
        expected = oracle(corpora, db)
    except (ValueError, IndexError):
        pytest.skip("the random corpus has no row with features")
    attrs = build_database(corpora, db, tmp_path / "db.h5", batch_rows=5 if small else 65536)
    got = read_back(tmp_path / "db.h5")
    for key in ("utt_id", "corpus", "speaker"):
        assert got[key] == expected[key], key
    for key in ("label", "n_valid", "fold", "feat"):
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert attrs["speakers"] == expected["speakers"]
    assert attrs["n_augmented"] == expected["n_augmented"]
    assert attrs["n_utterances"] == len(got["utt_id"]) - expected["n_augmented"]
    if fold_by:
        assert got["start_indice"] == expected["start_indice"]
        assert got["end_indice"] == expected["end_indice"]
        assert attrs["folds"] == expected["folds"]
    else:
        assert attrs["folds"] is None and "start_indice" not in got
    assert attrs["gain"] == {
        c.name: {"method": "none", "shard": len(c.shards) - 1} for c in corpora
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".db.h5")] == []  # temp gone


def oracle_groups(corpora: list[CorpusInput], fold_by: str) -> list[str]:
    return [
        f"{c.name}/{v}" for c in corpora for v in pd.read_csv(c.meta, sep="\t", dtype=str)[fold_by]
    ]


def test_a_meta_that_names_a_shard_the_corpus_lacks(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", "c", np.random.default_rng(3))
    fewer = CorpusInput("c", corpus.meta, corpus.vocab, corpus.shards[:0] or ())
    with pytest.raises(ValueError, match="is in shard 0, but corpus c has 0 feature shard"):
        build_database(
            [fewer], {"tasks": ["emotion"], "c_len": 1, "max_steps": 2}, tmp_path / "db.h5"
        )


def test_scattered_writer_checks_every_row(tmp_path: Path) -> None:
    writer = DatabaseWriter(tmp_path / "db.h5", 3, (2, 1, 1, 2), 1, scattered=True)
    row = np.arange(4, dtype=np.float32).reshape(2, 1, 1, 2)
    writer.write_features(2, row)
    with pytest.raises(ValueError, match="written twice"):
        writer.write_features(1, np.stack([row, row]))
    with pytest.raises(ValueError, match="not whole rows"):
        writer.write_features(0, row[:1])
    writer.write_columns(
        0, np.zeros((3, 1)), np.ones(3), np.zeros(3), ["a", "b", "c"], ["s"] * 3, ["c"] * 3
    )
    with pytest.raises(ValueError, match="the features of 2 of 3 rows not written"):
        writer.finish(None, {"window_spec": {}, "tasks": []})
    writer.abort()
    assert not (tmp_path / "db.h5").exists()
    writer = DatabaseWriter(tmp_path / "db.h5", 2, (2, 1, 1, 2), 1, scattered=True)
    writer.write_features(1, row[None])
    writer.write_features(0, row + 10)
    writer.write_columns(
        0, np.zeros((2, 1)), np.ones(2), np.zeros(2), ["a", "b"], ["s"] * 2, ["c"] * 2
    )
    writer.finish(None, {"window_spec": {}, "tasks": []})
    with h5py.File(tmp_path / "db.h5") as h5:
        np.testing.assert_array_equal(h5["feat"][()], np.stack([row + 10, row]))


def rechunk(path: Path, frames: int, **options) -> None:
    """Store the shard's ``feat`` again in chunks of ``frames`` frames (``options``: h5py's)."""
    with h5py.File(path, "a") as h5:
        data = h5["feat"][()]
        if not data.size:
            return
        del h5["feat"]
        h5.create_dataset("feat", data=data, chunks=(frames, data.shape[1]), **options)


def test_a_compressed_shard_is_named(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", "c", np.random.default_rng(5))
    path = corpus.shards[0]
    rechunk(path, 4, compression="gzip")
    with pytest.raises(DamagedFileError) as exc:
        build_database(
            [corpus], {"tasks": ["emotion"], "c_len": 1, "max_steps": 2}, tmp_path / "db.h5"
        )
    assert str(path) in str(exc.value)
    assert "compressed or filtered" in str(exc.value)
    assert not (tmp_path / "db.h5").exists()
