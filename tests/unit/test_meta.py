"""Meta files: both formats, every validation error at once, CRLF/BOM, bad audio policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepser.corpus.meta import CorpusSpec, read_meta, shard_of, utt_id_of
from deepser.errors import MetaError

from ..helpers import tone, write_wav


def make_corpus(tmp_path: Path, n: int = 4) -> Path:
    for i in range(n):
        write_wav(tmp_path / "wav" / f"s{i % 2}" / f"u{i}.wav", tone(0.5, seed=i))
    return tmp_path


def spec(tmp_path: Path, text: str, fmt: str = "named", **kw) -> CorpusSpec:
    meta = tmp_path / "meta.tsv"
    meta.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    cfg = {
        "meta": str(meta),
        "format": fmt,
        "columns": kw.pop("columns", {"emotion": "emotion", "speaker": "speaker"}),
    }
    cfg.update(kw)
    return CorpusSpec.from_config("c", cfg)


# zlib.crc32 of the utt_id modulo n_shards: fixed across processes, machines and Python versions
SHARDS_4, SHARDS_7 = [0, 0, 0], [5, 3, 4]
NAMED = "path\temotion\tspeaker\nwav/s0/u0.wav\tangry\tA\nwav/s1/u1.wav\tsad\tB\n"


def test_named_format(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    result = read_meta(spec(tmp_path, NAMED))
    assert list(result.table["utt_id"]) == ["wav/s0/u0", "wav/s1/u1"]
    assert list(result.table["emotion"]) == ["angry", "sad"]
    assert result.vocab["emotion"] == {"type": "categorical", "classes": ["angry", "sad"]}
    assert all(Path(a).is_file() for a in result.table["audio"])
    assert result.rejected == []


def test_crlf_and_bom_are_handled_silently(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    text = "\ufeff" + NAMED.replace("\n", "\r\n")
    result = read_meta(spec(tmp_path, text))
    assert list(result.table["speaker"]) == ["A", "B"]  # no '\r' left in the last column
    assert list(result.table["utt_id"]) == ["wav/s0/u0", "wav/s1/u1"]


def test_original_format_with_integer_codes_by_index(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    text = (
        "n_train_data.name\tclass\tsid\tcorpus_id\n"
        "./wav/s0/u0.wav\t1\t0\t0\n./wav/s1/u1.wav\t0\t1\t0\n./wav/s0/u2.wav\t1\t0\t0\n"
    )
    columns = {"emotion": {"column": 1, "classes": ["angry", "sad"]}, "speaker": 2}
    result = read_meta(spec(tmp_path, text, fmt="original", columns=columns))
    assert list(result.table["emotion"]) == ["sad", "angry", "sad"]
    assert list(result.table["speaker"]) == ["0", "1", "0"]
    assert result.vocab["speaker"]["classes"] == ["0", "1"]
    assert list(result.table["utt_id"]) == ["wav/s0/u0", "wav/s1/u1", "wav/s0/u2"]


def test_integer_labels_sorted_numerically(tmp_path: Path) -> None:
    make_corpus(tmp_path, 4)
    text = "path\tclass\n" + "".join(
        f"wav/s{i % 2}/u{i}.wav\t{c}\n" for i, c in enumerate([10, 2, 2, 1])
    )
    result = read_meta(spec(tmp_path, text, columns={"class": "class"}))
    assert result.vocab["class"]["classes"] == ["1", "2", "10"]


def test_every_problem_reported_at_once_with_lines(tmp_path: Path) -> None:
    make_corpus(tmp_path, 4)
    (tmp_path / "wav" / "broken.wav").write_bytes(b"RIFF....not audio")
    write_wav(tmp_path / "wav" / "empty.wav", tone(0.0))
    text = (
        "path\temotion\tspeaker\n"
        "wav/s0/u0.wav\tangry\tA\n"  # 2 ok
        "wav/s0/u0.wav\tsad\tA\n"  # 3 duplicate path
        "wav/missing.wav\tsad\tB\n"  # 4 missing audio
        "wav/s1/u1.wav\t\tB\n"  # 5 empty label cell
        "wav/broken.wav\tsad\tB\n"  # 6 unreadable audio
        "wav/s0/u2.wav\tsad\n"  # 7 wrong field count
        "wav/empty.wav\tsad\tB\n"  # 8 zero samples
    )
    with pytest.raises(MetaError) as err:
        read_meta(spec(tmp_path, text))
    found = {(p.line, p.message.split(" ")[0]) for p in err.value.problems}
    lines = sorted(p.line for p in err.value.problems)
    assert lines == [3, 4, 5, 6, 7, 8], err.value
    msg = str(err.value)
    assert "duplicate audio path" in msg and "(first on line 2)" in msg
    assert "file not found" in msg and "empty cell in column 'emotion'" in msg
    assert "unreadable audio" in msg and "2 fields, the header has 3" in msg
    assert "contains no samples" in msg
    assert all(p.file.endswith("meta.tsv") for p in err.value.problems)
    assert len(found) == 6


def test_unknown_columns_named(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    with pytest.raises(
        MetaError, match=r"unknown column 'emotoin' for 'emotion'.*known: path, emotion"
    ):
        read_meta(spec(tmp_path, NAMED, columns={"emotion": "emotoin"}))
    with pytest.raises(MetaError, match="unknown column 7"):
        read_meta(spec(tmp_path, NAMED, columns={"emotion": 7}))
    with pytest.raises(MetaError, match="unknown audio column 'file'"):
        read_meta(spec(tmp_path, NAMED, audio_column="file"))


def test_unknown_class_and_bad_number(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    text = "path\temotion\tscore\nwav/s0/u0.wav\tjoy\t0.5\nwav/s1/u1.wav\tangry\thigh\n"
    columns = {
        "emotion": {"column": "emotion", "classes": ["angry", "sad"]},
        "score": {"column": "score", "type": "continuous"},
    }
    with pytest.raises(MetaError) as err:
        read_meta(spec(tmp_path, text, columns=columns))
    assert [p.line for p in err.value.problems] == [2, 3]
    assert "'joy' is not one of" in str(err.value) and "'high' is not a number" in str(err.value)


def test_skip_lists_bad_audio_as_rejected(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    text = NAMED + "wav/missing.wav\tsad\tB\n"
    result = read_meta(spec(tmp_path, text, on_bad_audio="skip"))
    assert len(result.table) == 2
    assert [(r["utt_id"], r["line"], r["reason"]) for r in result.rejected] == [
        ("wav/missing", 4, "file not found")
    ]


def test_utt_id_and_shard_are_stable() -> None:
    assert utt_id_of("./wav/a/b.wav") == "wav/a/b"
    assert utt_id_of("wav\\a\\b.flac") == "wav/a/b"
    # CRC-32 based: fixed values, independent of the process (no hash randomisation)
    assert [shard_of(f"u{i}", 4) for i in range(6)] == [shard_of(f"u{i}", 4) for i in range(6)]
    ids = ["wav/03a01Fa", "wav/03a01Nc", "wav/03a01Wa"]
    assert [shard_of(u, 4) for u in ids] == SHARDS_4 and [shard_of(u, 7) for u in ids] == SHARDS_7
    assert len({shard_of(f"utt{i}", 4) for i in range(100)}) == 4


def test_parallel_audio_checks_give_the_same_result(tmp_path: Path, monkeypatch) -> None:
    from deepser.corpus import probe

    monkeypatch.setattr(probe, "MIN_PARALLEL", 4)  # a pool of workers for a few files
    monkeypatch.setattr(probe, "CHUNK_PATHS", 3)
    make_corpus(tmp_path, 12)
    (tmp_path / "wav" / "text.wav").write_text("not audio\n")
    write_wav(tmp_path / "wav" / "empty.wav", tone(0.0))
    (tmp_path / "wav" / "folder.wav").mkdir()
    broken = ["wav/missing.wav", "wav/text.wav", "wav/empty.wav", "wav/folder.wav"]
    rows = [f"wav/s{i % 2}/u{i}.wav\t{'angry' if i != 5 else ''}\tS{i % 3}" for i in range(12)]
    for k, path in enumerate(broken):
        rows.insert(3 * k + 1, f"{path}\tsad\tB")
    text = "path\temotion\tspeaker\n" + "\n".join(rows) + "\n"
    found = []
    for workers in (1, 2):
        with pytest.raises(MetaError) as err:
            read_meta(spec(tmp_path, text), workers=workers)
        found.append([str(p) for p in err.value.problems])
    lines = [int(p.split(":")[1]) for p in found[0]]
    assert found[0] == found[1] and lines == sorted(lines) and len(lines) == 5
    assert "empty cell in column 'emotion'" in found[0][3]  # between the audio problems
    text = text.replace("\t\tS2", "\tsad\tS2")  # the empty label filled: only audio problems
    skip = [read_meta(spec(tmp_path, text, on_bad_audio="skip"), workers=w) for w in (1, 2)]
    assert skip[0].table.equals(skip[1].table) and len(skip[0].table) == 12
    assert skip[0].rejected == skip[1].rejected
    assert [r["line"] for r in skip[0].rejected] == [3, 6, 9, 12]
    # each usable file's state, from the check's own stat (what the shard manifests record)
    states = [(os.stat(a).st_size, os.stat(a).st_mtime_ns) for a in skip[0].table["audio"]]
    assert skip[0].states == skip[1].states == states


def test_one_file_named_through_links_is_a_duplicate(tmp_path: Path) -> None:
    make_corpus(tmp_path, 2)
    (tmp_path / "alias.wav").symlink_to(tmp_path / "wav" / "s0" / "u0.wav")  # a file link
    (tmp_path / "s1link").symlink_to("wav/s1")  # a relative folder link
    text = NAMED + "alias.wav\tsad\tB\ns1link/u1.wav\tsad\tB\n"
    with pytest.raises(MetaError) as err:
        read_meta(spec(tmp_path, text))
    assert [str(p).split(":", 1)[1] for p in err.value.problems] == [
        "4: duplicate audio path 'alias.wav' (first on line 2)",
        "5: duplicate audio path 's1link/u1.wav' (first on line 3)",
    ]
