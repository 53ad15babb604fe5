"""Every damaged intermediate ends cleanly: real feature shards, databases, original databases,
legacy models and bundles, written by the real writers and then damaged (truncated, emptied,
overwritten with text, a dataset removed, made inconsistent). Each read raises a
:class:`~deepser.errors.DeepserError` whose message names the file, says what is wrong and, for
what the workflow writes, how to recover (delete it, re-run); each command prints one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from deepser.bundle import load_bundle, read_bundle
from deepser.cli import main as deepser
from deepser.database.build import CorpusInput, build_database
from deepser.database.store import read_database_attrs, read_info, read_rows
from deepser.errors import (
    BundleError,
    DamagedFileError,
    DeepserError,
    LegacyDatabaseError,
    LegacyModelError,
)
from deepser.features.shards import FeatureShard, write_feature_shard
from deepser.files import write_json, write_tsv
from deepser.legacy.database import convert_database
from deepser.legacy.importer import import_legacy

from ..helpers import REPO, synthetic_db

BUNDLE = REPO / "tests" / "data" / "bundles" / "lstm"
SPEAKERS = ("s1", "s2")
EMOTIONS = ("angry", "sad")
DB = {"tasks": ["emotion"], "c_len": 2, "max_steps": 6, "n_folds": None}


def shard_recovery(path: Path) -> list[str]:
    return [str(path), f"rm {path}", "re-extracts exactly this shard", "snakemake --cores all"]


def database_recovery(path: Path) -> list[str]:
    return [str(path), f"rm {path}", "rebuilds it from its feature shards"]


def assert_says(exc: pytest.ExceptionInfo, *parts: str) -> str:
    """The error is a DeepserError, on one line, naming everything in ``parts``."""
    message = str(exc.value)
    assert isinstance(exc.value, DeepserError), repr(exc.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in: {message}"
    return message


def write_shard(path: Path, utt_ids, rejected=(), dims: int = 3) -> Path:
    """A shard as the workflow's extraction writes it (features, spec, gain, rejected)."""
    rng = np.random.default_rng(len(utt_ids))
    items = [
        (u, rng.standard_normal((5 + i, dims)).astype(np.float32)) for i, u in enumerate(utt_ids)
    ]
    attrs = {
        "feature_spec": {"type": "logmel", "n_mels": dims, "sample_rate": 16000},
        "gain": {"method": "none"},
        "rejected": [
            {"utt_id": u, "audio": f"{u}.wav", "stage": "features", "reason": "x"} for u in rejected
        ],
    }
    write_feature_shard(path, items, attrs)
    return path


@pytest.fixture
def shard(tmp_path: Path) -> Path:
    return write_shard(tmp_path / "features" / "shard-0.h5", [f"u{i}" for i in range(40)])


def corpus(tmp_path: Path, in_shard1=None) -> CorpusInput:
    """A corpus of 8 utterances in 2 shards: normalised meta, vocabulary, real shards.
    ``in_shard1``: the utterances shard 1 really holds (default: all the meta puts there)."""
    folder = tmp_path / "corpora" / "c"
    rows = [
        {
            "utt_id": f"{s}_{e}_{k}",
            "audio": f"wav/{s}_{e}_{k}.wav",
            "shard": k % 2,
            "line": 2 + i,
            "emotion": e,
            "speaker": s,
        }
        for i, (s, e, k) in enumerate((s, e, k) for s in SPEAKERS for e in EMOTIONS for k in (0, 1))
    ]
    table = pd.DataFrame(rows)
    write_tsv(folder / "meta.tsv", table)
    vocab = {
        "emotion": {"type": "categorical", "classes": list(EMOTIONS)},
        "speaker": {"type": "categorical", "classes": list(SPEAKERS)},
    }
    write_json(folder / "vocab.json", vocab, sort_keys=False)
    shards = []
    for k in (0, 1):
        ids = list(table.loc[table["shard"] == k, "utt_id"])
        if k == 1 and in_shard1 is not None:
            ids = in_shard1
        shards.append(write_shard(folder / "features" / f"shard-{k}.h5", ids))
    return CorpusInput("c", folder / "meta.tsv", folder / "vocab.json", tuple(shards))


@pytest.fixture
def database(tmp_path: Path) -> Path:
    n = 24
    labels = np.arange(n) % 3
    speakers = [f"s{i % 4}" for i in range(n)]
    return synthetic_db(
        tmp_path / "db" / "db.h5", labels, speakers, np.array([i % 4 for i in range(n)])
    )


def copy_bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLE, folder)
    return folder


def one_error_line(capsys, command: str, *parts: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"deepser {command}: error:") and "Traceback" not in err, err
    for part in parts:
        assert part in err, f"{part!r} not in: {err}"
    return err


# --------------------------------------------------------------------------- feature shards


def test_truncated_shard_names_the_shard_and_its_recovery(shard: Path) -> None:
    size = shard.stat().st_size
    os.truncate(shard, 2000)
    with pytest.raises(DamagedFileError) as exc:
        FeatureShard(shard)
    assert_says(exc, "feature shard", "truncated (2000 bytes on disk", f"{size} when written")
    assert_says(exc, "renames a file into place only once it is complete", *shard_recovery(shard))
    assert exc.value.path == str(shard)


def test_shard_that_is_a_text_file(shard: Path) -> None:
    shard.write_text("feat,offsets\n1,2\n")
    with pytest.raises(DamagedFileError) as exc:
        FeatureShard(shard)
    assert_says(exc, "not an HDF5 file", "it starts with b'feat,offsets", *shard_recovery(shard))


def test_empty_shard(shard: Path) -> None:
    shard.write_bytes(b"")
    with pytest.raises(DamagedFileError) as exc:
        FeatureShard(shard)
    assert_says(exc, "empty file (0 bytes)", *shard_recovery(shard))


def test_shard_missing_a_dataset(shard: Path) -> None:
    with h5py.File(shard, "a") as h5:
        del h5["offsets"]
    with pytest.raises(DamagedFileError) as exc:
        FeatureShard(shard)
    assert_says(exc, "no dataset 'offsets'", "it holds: feat, utt_id", *shard_recovery(shard))


def test_shard_with_inconsistent_offsets(shard: Path) -> None:
    with h5py.File(shard, "a") as h5:
        h5["offsets"][-1] += 7  # past the last frame
    with pytest.raises(DamagedFileError) as exc:
        FeatureShard(shard)
    assert_says(exc, "inconsistent: offsets do not cut", *shard_recovery(shard))


def test_shard_damaged_inside_fails_when_read(shard: Path) -> None:
    """The chunk index of ``feat`` overwritten: the shard opens and its index reads; its features
    fail only when read, and each read names the shard and the recovery."""
    data = bytearray(shard.read_bytes())
    chunk_trees = [m.start() for m in re.finditer(b"TREE\x01", data)]  # v1 B-tree of chunks
    assert len(chunk_trees) == 1
    data[chunk_trees[0] : chunk_trees[0] + 4] = b"XXXX"
    shard.write_bytes(bytes(data))
    with FeatureShard(shard) as features:
        assert len(features.index) == 40
        with pytest.raises(DamagedFileError) as exc:
            features["u3"]
        assert_says(exc, "reading the features of 'u3' failed", *shard_recovery(shard))
        with pytest.raises(DamagedFileError) as exc:
            features.read_all()
        assert_says(exc, "reading its features failed", *shard_recovery(shard))


def test_shard_missing_an_utterance_of_its_meta(tmp_path: Path) -> None:
    good = corpus(tmp_path / "good")
    attrs = build_database([good], DB, tmp_path / "good.h5")
    assert attrs["n_utterances"] == 8
    bad = corpus(tmp_path / "bad", in_shard1=["s1_angry_1", "s1_sad_1", "s2_angry_1"])
    with pytest.raises(DamagedFileError) as exc:
        build_database([bad], DB, tmp_path / "db.h5")
    assert_says(
        exc,
        "missing 1 utterance(s)",
        "'s2_sad_1'",
        "shard 1 of corpus c",
        *shard_recovery(bad.shards[1]),
    )
    assert not (tmp_path / "db.h5").exists()


def test_a_rejected_utterance_is_not_missing(tmp_path: Path) -> None:
    bad = corpus(tmp_path, in_shard1=["s1_angry_1", "s1_sad_1", "s2_angry_1"])
    write_shard(bad.shards[1], ["s1_angry_1", "s1_sad_1", "s2_angry_1"], rejected=["s2_sad_1"])
    assert build_database([bad], DB, tmp_path / "db.h5")["n_utterances"] == 7


def test_damaged_vocabulary_of_a_database_build(tmp_path: Path) -> None:
    good = corpus(tmp_path)
    good.vocab.write_text('{"emotion": {"type": "categ')
    with pytest.raises(DamagedFileError) as exc:
        build_database([good], DB, tmp_path / "db.h5")
    assert_says(exc, "vocabulary file", str(good.vocab), "not a valid JSON file")
    assert_says(
        exc,
        "delete it with the other files its job writes and re-run the workflow, which prepares "
        "the corpus's meta again",
    )
    assert_says(exc, f"rm {good.meta} {good.vocab} then snakemake --cores all")


# --------------------------------------------------------------------------------- databases


def test_truncated_database(database: Path) -> None:
    os.truncate(database, database.stat().st_size // 2)
    for read in (read_info, read_database_attrs):
        with pytest.raises(DamagedFileError) as exc:
            read(database)
        assert_says(exc, "database", "truncated", *database_recovery(database))


def test_database_missing_feat(database: Path) -> None:
    with h5py.File(database, "a") as h5:
        del h5["feat"]
    with pytest.raises(DamagedFileError) as exc:
        read_info(database)
    assert_says(exc, "no dataset 'feat'", *database_recovery(database))


def test_database_with_inconsistent_fold_indices(database: Path) -> None:
    with h5py.File(database, "a") as h5:
        h5["end_indice"][0] += 1  # fold 0 takes a row of fold 1
    with pytest.raises(DamagedFileError) as exc:
        read_info(database)
    assert_says(exc, "inconsistent fold indices", "fold 0", *database_recovery(database))


def test_database_with_a_wrong_shape_and_a_newer_format(database: Path) -> None:
    with h5py.File(database, "a") as h5:
        del h5["n_valid"]
        h5["n_valid"] = np.ones(5, np.int32)
    with pytest.raises(DamagedFileError) as exc:
        read_info(database)
    assert_says(exc, "dataset 'n_valid' has shape (5,), expected 24 rows", str(database))
    with h5py.File(database, "a") as h5:
        del h5["n_valid"]
        h5["n_valid"] = np.ones(24, np.int32)
        h5.attrs["format_version"] = "2"
    with pytest.raises(DamagedFileError) as exc:
        read_info(database)
    assert_says(exc, "format version 2, written by a newer deepser", str(database))


def test_database_damaged_inside_fails_when_rows_are_read(database: Path) -> None:
    """Truncated with its superblock patched to the new end: it opens and its info reads; the
    feature rows fail when read, and that read names the database and the recovery."""
    with h5py.File(database) as h5:
        chunk = h5["feat"].id.get_chunk_info(0)
    cut = chunk.byte_offset + chunk.size // 2
    data = bytearray(database.read_bytes()[:cut])
    data[40:48] = struct.pack("<Q", cut)  # superblock v0: end-of-file address
    database.write_bytes(bytes(data))
    info = read_info(database)
    with pytest.raises(DamagedFileError) as exc:
        read_rows(database, np.arange(info.n_rows), [0])
    assert_says(exc, "reading rows 0..23 failed", *database_recovery(database))


# ------------------------------------------------------------ the legacy commands' inputs


def test_convert_db_on_a_text_file(tmp_path: Path, capsys) -> None:
    original = tmp_path / "ENT.h5"
    original.write_text("not a database\n")
    code = deepser(
        ["convert-db", str(original), "--tasks", "e:2:0", "--out", str(tmp_path / "o.h5")]
    )
    assert code == 1
    one_error_line(capsys, "convert-db", str(original), "not an HDF5 file")
    assert not (tmp_path / "o.h5").exists()


def test_convert_db_on_a_missing_file(tmp_path: Path, capsys) -> None:
    original = tmp_path / "none.h5"
    code = deepser(
        ["convert-db", str(original), "--tasks", "e:2:0", "--out", str(tmp_path / "o.h5")]
    )
    assert code == 1
    one_error_line(capsys, "convert-db", str(original), "file not found")


def test_convert_db_on_hdf5_without_its_datasets(tmp_path: Path, capsys) -> None:
    original = tmp_path / "other.h5"
    with h5py.File(original, "w") as h5:
        h5["weights"] = np.zeros(3)
    code = deepser(
        ["convert-db", str(original), "--tasks", "e:2:0", "--out", str(tmp_path / "o.h5")]
    )
    assert code == 1
    one_error_line(capsys, "convert-db", str(original), "no feat / label dataset", "holds: weights")
    with pytest.raises(LegacyDatabaseError, match="truncated"):
        os.truncate(original, 1000)
        convert_database(original, ["e:2:0"], tmp_path / "o.h5")


def test_import_legacy_on_garbage(tmp_path: Path, capsys) -> None:
    model = tmp_path / "ami.laugh.h5"
    model.write_bytes(os.urandom(4096).replace(b"\x89HDF", b"xxxx"))
    code = deepser(
        [
            "import-legacy",
            str(model),
            "--features",
            "mspec",
            "--tasks",
            "l:2",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert code == 1
    one_error_line(capsys, "import-legacy", str(model), "not an HDF5 file")
    model.write_bytes(b"")
    with pytest.raises(LegacyModelError, match="empty file"):
        import_legacy(model, "mspec", ["l:2"], tmp_path / "b")
    with h5py.File(model, "w") as h5:
        h5.attrs["model_config"] = '{"class_name": "Model", "config": {'
    with pytest.raises(LegacyModelError) as exc:
        import_legacy(model, "mspec", ["l:2"], tmp_path / "b")
    assert_says(exc, str(model), "reading it failed")


# ------------------------------------------------------------------------------------ bundles


def test_bundle_with_a_garbage_model(tmp_path: Path) -> None:
    folder = copy_bundle(tmp_path)
    model = folder / "model.keras"
    model.write_bytes(os.urandom(2048).replace(b"PK", b"xx"))
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_says(exc, f"{model}: not a Keras model file (not a zip archive")
    assert "File not found" not in str(exc.value)


def test_bundle_with_an_empty_or_truncated_model(tmp_path: Path) -> None:
    folder = copy_bundle(tmp_path)
    model = folder / "model.keras"
    whole = model.read_bytes()
    model.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_says(exc, f"{model}: not a Keras model file (a truncated or damaged zip archive")
    model.write_bytes(b"")
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_says(exc, f"{model}: not a Keras model file (an empty file, 0 bytes)")


def test_bundle_with_a_zip_without_or_with_a_broken_keras_config(tmp_path: Path) -> None:
    folder = copy_bundle(tmp_path)
    with zipfile.ZipFile(folder / "model.keras", "w") as zf:
        zf.writestr("metadata.json", "{}")
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_says(exc, "not a Keras model file (a zip archive without the Keras config.json")
    with zipfile.ZipFile(folder / "model.keras", "w") as zf:
        zf.writestr("config.json", '{"class_name": "Functional"}')
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_says(exc, f"{folder / 'model.keras'}: Keras cannot load this model file")


def test_bundle_whose_model_is_a_folder(tmp_path: Path) -> None:
    folder = copy_bundle(tmp_path)
    (folder / "model.keras").unlink()
    (folder / "model.keras").mkdir()
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_says(exc, f"{folder / 'model.keras'}: not a Keras model file (it is a folder)")


def test_garbage_bundle_json(tmp_path: Path) -> None:
    folder = copy_bundle(tmp_path)
    where = folder / "bundle.json"
    for text, words in (
        ("\x00\x01garbage", "not valid JSON"),
        ("", "not valid JSON (an empty file)"),
        ("[1, 2]", "not a JSON object (it holds a list)"),
        ('{"tasks": []}', "no format_version; not a deepser bundle.json"),
        ('{"format_version": "one"}', "format_version 'one' is not a whole number"),
    ):
        where.write_text(text)
        with pytest.raises(BundleError) as exc:
            read_bundle(folder)
        assert_says(exc, str(where), words)


def test_bundle_json_from_the_future_or_incomplete(tmp_path: Path) -> None:
    folder = copy_bundle(tmp_path)
    where = folder / "bundle.json"
    data = json.loads(where.read_text())
    where.write_text(json.dumps({**data, "format_version": 9}))
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_says(exc, str(where), "bundle format 9 is not supported", "written by a newer deepser")
    where.write_text(json.dumps({k: v for k, v in data.items() if k != "window_spec"}))
    with pytest.raises(BundleError) as exc:
        read_bundle(folder)
    assert_says(exc, str(where), "missing window_spec", "needs feature_spec, window_spec, tasks")


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--out", "{fifo}"], "exists and is not a regular file"),
        (["--out", "{original}"], "is the input"),
        (["--out", "{tmp}/o.h5", "--c-len", "-10"], "--c-len: -10 is below the minimum 1"),
        (["--out", "{tmp}/o.h5", "--k-fold", "0"], "--k-fold: 0 is below the minimum 2"),
    ],
)
def test_convert_db_refuses_outputs_and_values_that_cannot_be_meant(
    tmp_path: Path, capsys, extra, words
) -> None:
    original = tmp_path / "ENT.h5"
    original.write_text("not a database\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo, original=original, tmp=tmp_path) for a in extra]
    with pytest.raises(SystemExit) as exc:
        deepser(["convert-db", str(original), "--tasks", "e:2:0", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert fifo.exists() and not fifo.is_file() and original.read_text() == "not a database\n"


def test_import_legacy_refuses_a_bundle_folder_that_holds_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bundle"
    shutil.copytree(BUNDLE, out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(SystemExit) as exc:
        deepser(
            [
                "import-legacy",
                str(tmp_path / "m.h5"),
                "--features",
                "mspec",
                "--tasks",
                "a:2",
                "--out",
                str(out),
            ]
        )
    assert exc.value.code == 2 and "is a folder that is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before
