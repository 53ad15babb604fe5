"""Bad inputs through the real workflow: each ends with one clear block or one line on the
console (no traceback, no Snakemake ``CalledProcessError`` dump), and impossible folds stop
before any feature is extracted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ..helpers import run_workflow, tone, write_wav

NOISE = ("Traceback", "CalledProcessError", "RuleException", "Shell command: None")


def corpus(
    root: Path,
    speakers: list[str],
    emotions: list[str] | None = None,
    extra: list[str] | None = None,
    n_folds: int | None = None,
) -> dict:
    """A tiny real corpus (one short tone per row) and a config with one experiment."""
    emotions = emotions or ["ab"[i % 2] for i in range(len(speakers))]
    lines = ["path\temotion\tspeaker"]
    for i, (spk, emo) in enumerate(zip(speakers, emotions, strict=True)):
        write_wav(root / "corpus" / f"u{i}.wav", tone(0.6, freq=150 + 20 * i, seed=i))
        lines.append(f"u{i}.wav\t{emo}\t{spk}")
    (root / "corpus" / "meta.tsv").write_text("\n".join(lines + (extra or [])) + "\n")
    return {
        "corpora": {
            "c": {
                "meta": "corpus/meta.tsv",
                "n_shards": 2,
                "columns": {"emotion": "emotion", "speaker": "speaker"},
            }
        },
        "feature_sets": {"f": {"type": "logmel", "sample_rate": 16000, "n_mels": 24}},
        "databases": {
            "d": {
                "corpora": ["c"],
                "feature_set": "f",
                "c_len": 5,
                "max_steps": 50,
                "tasks": ["emotion"],
                "n_folds": n_folds,
            }
        },
        "experiments": {
            "e": {"database": "d", "model": {"architecture": "dnn"}, "training": {"epochs": 1}}
        },
    }


def failed(work: Path, config: dict, *args: str) -> str:
    proc = run_workflow(work, config, *args, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    for noise in NOISE:
        assert noise not in out, f"{noise!r} on the console:\n{out[-3000:]}"
    return out


def error_blocks(out: str) -> list[list[str]]:
    """The console's failed-job blocks: the 'Error in rule' line and its indented lines."""
    blocks, lines = [], out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Error in rule "):
            block = [line]
            for following in lines[i + 1 :]:
                if not following.startswith("    "):
                    break
                block.append(following.strip())
            blocks.append(block)
    return blocks


def test_a_missing_audio_file_is_one_block_with_file_line_and_log(tmp_path: Path) -> None:
    config = corpus(tmp_path, ["s1", "s2", "s3"], extra=["missing.wav\ta\ts1"])
    out = failed(tmp_path, config)
    [block] = error_blocks(out)
    assert block == [
        "Error in rule prepare_meta (corpus=c):",
        "1 problem(s) in the meta file:",
        "corpus/meta.tsv:5: missing.wav: file not found",
        "log: results/logs/prepare_meta/c.log",
    ]
    log = (tmp_path / "results/logs/prepare_meta/c.log").read_text()
    assert "Traceback" in log and "MetaError" in log  # the traceback is kept, in the log


def test_a_path_outside_the_corpus_names_the_option(tmp_path: Path) -> None:
    write_wav(tmp_path / "elsewhere" / "x.wav", tone(0.6))
    config = corpus(tmp_path, ["s1", "s2", "s3"], extra=["../elsewhere/x.wav\ta\ts1"])
    [block] = error_blocks(failed(tmp_path, config))
    assert block[0] == "Error in rule prepare_meta (corpus=c):"
    assert any(
        line.startswith("corpus/meta.tsv:5:") and "allow_outside_paths" in line for line in block
    )
    config["corpora"]["c"]["allow_outside_paths"] = True
    run_workflow(tmp_path, config, "results/corpora/c/meta.tsv")
    meta = (tmp_path / "results/corpora/c/meta.tsv").read_text()
    assert str(tmp_path) not in meta and "../" not in meta.split("\n", 1)[1].split("\t")[0]


def test_one_speaker_stops_before_any_feature_is_extracted(tmp_path: Path) -> None:
    out = failed(tmp_path, corpus(tmp_path, ["s1", "s1", "s1"]))
    assert "databases.d: a speaker-independent evaluation needs at least 2 speakers" in out
    assert "fold_by: null" in out
    assert not (tmp_path / "results/corpora/c/features").exists()


def test_more_folds_than_speakers_stops_before_any_feature(tmp_path: Path) -> None:
    out = failed(tmp_path, corpus(tmp_path, ["s1", "s2", "s3", "s1"], n_folds=5))
    assert "databases.d" in out and "n_folds" in out and "3" in out
    assert not (tmp_path / "results/corpora/c/features").exists()


def test_no_validation_speakers_stops_before_training(tmp_path: Path) -> None:
    config = corpus(tmp_path, ["s1", "s2", "s1", "s2"])
    out = failed(tmp_path, config)
    assert "a validation split (training.validation_fraction > 0) needs at least 2" in out
    assert not (tmp_path / "results/corpora/c/features").exists()
    config["experiments"]["e"]["training"]["validation_fraction"] = 0
    assert run_workflow(tmp_path, config, "-n").returncode == 0


def test_a_task_with_one_class_stops_before_any_feature(tmp_path: Path) -> None:
    out = failed(tmp_path, corpus(tmp_path, ["s1", "s2", "s3"], emotions=["a", "a", "a"]))
    assert "databases.d: task emotion has 1 class(es) (a)" in out and "nothing to learn" in out
    assert not (tmp_path / "results/corpora/c/features").exists()


def test_a_class_of_one_speaker_is_a_warning(tmp_path: Path) -> None:
    config = corpus(tmp_path, ["s1", "s2", "s3"] * 2 + ["s3"], emotions=list("ababab") + ["c"])
    run_workflow(tmp_path, config, "results/corpora/c/meta.tsv")
    proc = run_workflow(tmp_path, config, "-n")
    assert "class 'c' of task emotion occurs in speaker s3 only" in proc.stdout + proc.stderr


def test_empty_mel_filters_are_a_config_error_before_any_job(tmp_path: Path) -> None:
    config = corpus(tmp_path, ["s1", "s2", "s3"])
    config["feature_sets"]["f"].update(n_mels=200, n_fft=512)
    out = failed(tmp_path, config, "-n")
    assert "feature_sets.f: n_mels 200 with n_fft 512 gives" in out and "empty mel filter" in out
    assert not (tmp_path / "results").exists()


def test_each_failed_shard_is_its_own_block(tmp_path: Path) -> None:
    """Two files of float samples holding NaN, in two shards: the meta stage reads headers
    only, so the feature jobs fail, each in its own block naming the file (keep-going)."""
    config = corpus(tmp_path, ["s1", "s2", "s3"] * 2)
    bad = tone(0.6)
    bad[100:110] = np.nan
    lines = (tmp_path / "corpus/meta.tsv").read_text().splitlines()
    names = []
    for name in ("nan_a", "nan_b", "nan_c", "nan_d"):
        write_wav(tmp_path / "corpus" / f"{name}.wav", bad, subtype="FLOAT")
        lines.append(f"{name}.wav\ta\ts1")
        names.append(name)
    (tmp_path / "corpus/meta.tsv").write_text("\n".join(lines) + "\n")
    out = failed(tmp_path, config, "results/db/d.h5")
    blocks = [b for b in error_blocks(out) if b[0].startswith("Error in rule extract_features")]
    assert len(blocks) == 2, out[-3000:]  # 4 files over 2 shards (a stable hash of the ids)
    assert {b[0] for b in blocks} == {
        f"Error in rule extract_features (corpus=c, featureset=f, shard={k}):" for k in (0, 1)
    }
    text = "\n".join("\n".join(b) for b in blocks)
    assert all(f"{n}.wav" in text for n in names) and "non-finite" in text
    assert all(b[-1].startswith("log: results/logs/extract_features/") for b in blocks)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c["feature_sets"]["f"].update(type="logmell"),
            "feature_sets.f.type: 'logmell' is not one of",
        ),
        (
            lambda c: c["databases"]["d"].update(feature_set="nope"),
            "databases.d.feature_set: unknown feature set 'nope'",
        ),
        (
            lambda c: c["experiments"]["e"].update(tasks={"zz": 1.0}),
            "experiments.e.tasks: not a task of its database: zz (database 'd' has emotion)",
        ),
        (
            lambda c: c["experiments"]["e"].update(monitor="speaker"),
            "experiments.e.monitor: 'speaker' is not a task of its database",
        ),
        (
            lambda c: c["experiments"]["e"].update(database="nope"),
            "experiments.e.database: unknown database 'nope' (known: d)",
        ),
    ],
)
def test_config_mistakes_are_one_line_before_any_job(tmp_path: Path, edit, expected) -> None:
    config = corpus(tmp_path, ["s1", "s2", "s3"])
    edit(config)
    out = failed(tmp_path, config, "-n")
    assert expected in out and "Failed validating" not in out
    assert not (tmp_path / "results").exists()
