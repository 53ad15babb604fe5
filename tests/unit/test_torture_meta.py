"""Every bad input ends cleanly: meta paths outside the corpus folder and their utterance ids,
meta format problems, impossible feature parameters (empty mel filters), gain entries, and fold
feasibility (mirrored against the real split code). Each case asserts where (file:line or the
config key) and a message a user can act on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import librosa
import numpy as np
import pytest

from deepser.corpus.meta import CorpusSpec, audio_location, read_meta
from deepser.errors import MetaError
from deepser.training.split import inner_speakers, split_fold
from deepser.workflow.config import check_config
from deepser.workflow.feasibility import (
    fold_problems,
    inner_fold_problems,
    needs_validation_split,
)

from ..helpers import tone, write_wav

HEADER = "path\temotion\tspeaker\n"


def wav(path: Path) -> Path:
    return write_wav(path, tone(0.05, seed=len(str(path))))


def corpus(tmp_path: Path, text: str | bytes, **options) -> CorpusSpec:
    """A corpus ``c`` whose meta file (tmp_path/corpus/meta.tsv) holds ``text``."""
    meta = tmp_path / "corpus" / "meta.tsv"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    cfg = {"meta": str(meta), "columns": {"emotion": "emotion", "speaker": "speaker"}, **options}
    return CorpusSpec.from_config("c", cfg)


def problems(spec: CorpusSpec) -> list[str]:
    """Every problem of the meta, as printed: ``file:line: message``."""
    with pytest.raises(MetaError) as err:
        read_meta(spec)
    return [str(p) for p in err.value.problems]


def at(spec: CorpusSpec, line: int) -> str:
    return f"{spec.meta}:{line}: "


# ------------------------------------------------------------------------- meta: outside paths


def test_a_path_leaving_the_corpus_folder_names_its_line_and_the_option(tmp_path: Path) -> None:
    wav(tmp_path / "corpus" / "wav" / "a.wav")
    wav(tmp_path / "elsewhere" / "x.wav")
    spec = corpus(tmp_path, HEADER + "wav/a.wav\tangry\tA\nwav/../../elsewhere/x.wav\tsad\tB\n")
    [found] = problems(spec)
    assert found.startswith(at(spec, 3) + "audio path 'wav/../../elsewhere/x.wav' leaves the ")
    assert found.endswith("set allow_outside_paths: true under corpora.c to accept it")


def test_an_absolute_path_is_refused_unless_allowed(tmp_path: Path) -> None:
    inside = wav(tmp_path / "corpus" / "wav" / "a.wav")
    spec = corpus(tmp_path, HEADER + f"{inside}\tangry\tA\n")
    [found] = problems(spec)
    assert found.startswith(at(spec, 2) + f"audio path '{inside}' is absolute; write it relative")
    assert "allow_outside_paths: true under corpora.c" in found


def test_a_detour_that_comes_back_in_says_how_to_write_it(tmp_path: Path) -> None:
    wav(tmp_path / "corpus" / "wav" / "a.wav")
    spec = corpus(tmp_path, HEADER + "../corpus/wav/a.wav\tangry\tA\n")
    [found] = problems(spec)
    assert found.startswith(at(spec, 2)) and "(it comes back in: write 'wav/a.wav')" in found


def test_allowed_outside_paths_get_readable_unique_ids_without_machine_paths(
    tmp_path: Path,
) -> None:
    wav(tmp_path / "corpus" / "wav" / "a.wav")
    inside_abs = wav(tmp_path / "corpus" / "wav" / "b.wav")
    wav(tmp_path / "e1" / "s1" / "x.wav")
    wav(tmp_path / "e2" / "s1" / "x.wav")  # same folder and file name: ids must still differ
    other_abs = wav(tmp_path / "e3" / "y.flac")
    wav(tmp_path / "z.wav")
    text = (
        HEADER
        + "wav/a.wav\tangry\tA\n"
        + f"{inside_abs}\tsad\tA\n"
        + "../e1/s1/x.wav\tangry\tB\n"
        + "../e2/s1/x.wav\tsad\tB\n"
        + f"{other_abs}\tsad\tC\n"
        + "..\\z.wav\tsad\tC\n"  # no folder named: the stem and the hash
    )
    table = read_meta(corpus(tmp_path, text, allow_outside_paths=True)).table

    def digest(written: str) -> str:
        return hashlib.sha256(written.encode()).hexdigest()[:8]

    assert list(table["utt_id"]) == [
        "wav/a",
        "wav/b",  # absolute but inside the corpus folder: its path relative to it
        f"s1/x~{digest('../e1/s1/x.wav')}",
        f"s1/x~{digest('../e2/s1/x.wav')}",
        f"e3/y~{digest(other_abs.as_posix())}",
        f"z~{digest('../z.wav')}",
    ]
    assert table["utt_id"].is_unique
    assert not any(str(tmp_path) in u or ".." in u.split("/") for u in table["utt_id"])
    assert all(Path(a).is_file() for a in table["audio"])


def test_one_file_named_twice_is_a_duplicate_even_outside(tmp_path: Path) -> None:
    x = wav(tmp_path / "elsewhere" / "x.wav")
    spec = corpus(
        tmp_path,
        HEADER + "../elsewhere/x.wav\tangry\tA\n" + f"{x}\tsad\tB\n",
        allow_outside_paths=True,
    )
    assert problems(spec) == [at(spec, 3) + f"duplicate audio path '{x}' (first on line 2)"]


def test_a_symlinked_audio_folder_is_inside_and_judged_lexically(tmp_path: Path) -> None:
    wav(tmp_path / "store" / "a.wav")
    (tmp_path / "corpus").mkdir()
    os.symlink(tmp_path / "store", tmp_path / "corpus" / "wav")
    spec = corpus(tmp_path, HEADER + "wav/a.wav\tangry\tA\n")
    assert list(read_meta(spec).table["utt_id"]) == ["wav/a"]
    loc = audio_location("wav/../wav/a.wav", tmp_path / "corpus")
    assert (loc.outside, loc.utt_id) == (False, "wav/a")


# -------------------------------------------------------------------------- meta: file format


def test_empty_file_header_only_and_missing_path_column(tmp_path: Path) -> None:
    spec = corpus(tmp_path, "")
    assert problems(spec) == [
        at(spec, 1) + "meta file is empty: it needs a header line and a row per audio"
    ]
    spec = corpus(tmp_path, "# only a comment\n\n" + HEADER)
    assert problems(spec) == [at(spec, 3) + "no data rows after the header (one row per audio)"]
    spec = corpus(tmp_path, "file\temotion\tspeaker\nwav/a.wav\tangry\tA\n")
    assert problems(spec) == [
        at(spec, 1) + "unknown audio column 'path' (columns: file, emotion, speaker); name the "
        "column of audio paths 'path' or set audio_column under corpora.c"
    ]


def test_a_missing_header_line_is_recognised(tmp_path: Path) -> None:
    spec = corpus(tmp_path, "wav/a.wav\tangry\tA\n")
    found = problems(spec)
    assert all(p.startswith(at(spec, 1)) for p in found) and len(found) == 3
    assert found[0].endswith("'wav/a.wav' looks like an audio path: add a header line")


def test_duplicate_header_names_that_are_used(tmp_path: Path) -> None:
    spec = corpus(tmp_path, "path\temotion\tspeaker\temotion\nwav/a.wav\tangry\tA\tsad\n")
    assert problems(spec) == [
        at(spec, 1) + "column 'emotion' (label 'emotion') appears 2 times in the header "
        "(fields 2, 4); rename all but one"
    ]


def test_bom_crlf_comments_blank_lines_whitespace_and_trailing_tabs_work(tmp_path: Path) -> None:
    wav(tmp_path / "corpus" / "wav" / "a.wav")
    wav(tmp_path / "corpus" / "wav" / "Sprecher 1" / "äöü ß.wav")
    text = (
        "\ufeff# corpus X, version 2\r\n"
        + HEADER.replace("\n", "\r\n")
        + "\r\n"
        + "  wav/a.wav \t angry \tA\t\r\n"  # 4: surrounding blanks, a trailing tab
        + "# wav/removed.wav\tsad\tB\r\n"
        + "wav/Sprecher 1/äöü ß.wav\tsad\tB\r\n"  # 6: spaces and unicode
        + "wav/missing.wav\tsad\tB\r\n"  # 7
    )
    spec = corpus(tmp_path, text)
    assert problems(spec) == [at(spec, 7) + "wav/missing.wav: file not found"]
    spec = corpus(tmp_path, text.rsplit("wav/missing", 1)[0])
    result = read_meta(spec)
    assert list(result.table["utt_id"]) == ["wav/a", "wav/Sprecher 1/äöü ß"]
    assert list(result.table["emotion"]) == ["angry", "sad"]
    assert list(result.table["line"]) == [4, 6]


def test_utf16_is_read_and_a_non_utf8_byte_names_its_line(tmp_path: Path) -> None:
    wav(tmp_path / "corpus" / "wav" / "a.wav")
    text = HEADER + "wav/a.wav\tangry\tA\n"
    assert len(read_meta(corpus(tmp_path, text.encode("utf-16"))).table) == 1
    spec = corpus(tmp_path, (text + "wav/caf\xe9.wav\tsad\tB\n").encode("latin-1"))
    [found] = problems(spec)
    assert found.startswith(at(spec, 3) + "not UTF-8 text (byte 0xe9")
    assert found.endswith("save the meta file as UTF-8")


def test_field_counts_empty_labels_folders_and_paths_naming_no_file(tmp_path: Path) -> None:
    wav(tmp_path / "corpus" / "wav" / "a.wav")
    (tmp_path / "corpus" / "wav" / "folder.wav").mkdir()
    text = (
        HEADER
        + "wav/a.wav\tangry\tA\textra\n"  # 2
        + "wav/a.wav\tangry\n"  # 3
        + "wav/a.wav angry A\n"  # 4
        + "wav/a.wav\t\tA\n"  # 5
        + "wav/folder.wav\tsad\tB\n"  # 6
        + "wav/..\tsad\tB\n"  # 7
        + "wav\\a.wav\tsad\tB\n"  # 8: a Windows separator: the file of line 5's path
    )
    spec = corpus(tmp_path, text)
    assert problems(spec) == [
        at(spec, 2) + "4 fields, the header has 3",
        at(spec, 3) + "2 fields, the header has 3",
        at(spec, 4) + "1 fields, the header has 3 (no tab on this line: separate the fields "
        "with tabs, not spaces)",
        at(spec, 5) + "empty cell in column 'emotion'",
        at(spec, 6) + "wav/folder.wav: is a folder, not an audio file",
        at(spec, 7) + "audio path 'wav/..' does not name a file",
        # the path is shown as repr() writes it: the backslash doubled
        at(spec, 8) + "duplicate audio path 'wav\\\\a.wav' (first on line 5)",
    ]


def test_a_continuous_label_must_be_a_finite_number(tmp_path: Path) -> None:
    for name in "abc":
        wav(tmp_path / "corpus" / "wav" / f"{name}.wav")
    text = "path\tscore\nwav/a.wav\t0.5\nwav/b.wav\tnan\nwav/c.wav\t-inf\n"
    spec = corpus(tmp_path, text, columns={"score": {"column": "score", "type": "continuous"}})
    assert problems(spec) == [
        at(spec, 3) + "'score': 'nan' is not a finite number",
        at(spec, 4) + "'score': '-inf' is not a finite number",
    ]


def test_an_id_that_looks_like_an_augmented_copy_is_refused(tmp_path: Path) -> None:
    wav(tmp_path / "corpus" / "wav" / "a#aug1.wav")
    spec = corpus(tmp_path, HEADER + "wav/a#aug1.wav\tangry\tA\n")
    assert problems(spec) == [
        at(spec, 2) + "utterance id 'wav/a#aug1' ends like an augmented copy's ('#aug<k>'); "
        "rename the file"
    ]


# ----------------------------------------------------------------- feature sets, gain: config


def config_with(feature_sets: dict, **db) -> dict:
    return {
        "corpora": {"c": {"columns": {"emotion": "emotion", "speaker": "speaker"}}},
        "feature_sets": feature_sets,
        "databases": {
            "db": {
                "corpora": ["c"],
                "feature_set": next(iter(feature_sets)),
                "c_len": 10,
                "max_steps": 100,
                "tasks": ["emotion"],
                **db,
            }
        },
    }


def test_empty_mel_filters_are_an_error_with_the_largest_usable_n_mels() -> None:
    big = {"type": "logmel", "sample_rate": 16000, "n_mels": 200, "n_fft": 512}
    config = config_with({"big": big})
    assert check_config(config) == [
        "feature_sets.big: n_mels 200 with n_fft 512 gives 3 empty mel filters (bands 0, 25, "
        "50: constant features); use at most 192 mel bands or a larger n_fft/win"
    ]

    def empty(n_mels: int) -> int:  # the extractor's librosa call, defaults (slaney, no htk)
        fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels, fmin=0.0, fmax=8000.0)
        return int((fb.max(axis=1) == 0).sum())

    with pytest.warns(UserWarning, match="Empty filters"):
        assert (empty(200), empty(193)) == (3, 1)
    assert empty(192) == 0


@pytest.mark.parametrize(
    ("fset", "message"),
    [
        (
            {"type": "functionals", "win": 256, "n_mels": 128},
            "n_mels 128 with n_fft 256 gives ",
        ),
        (
            {"type": "mel", "fmin": 8000, "fmax": 4000},
            "fmin (8000 Hz) must be below fmax (4000 Hz)",
        ),
        (
            {"type": "logmel", "hop": "30ms"},
            "hop (480 samples) is longer than win (400): the samples between frames would never "
            "be analysed; use a hop of at most the window",
        ),
        (
            {"type": "pca_logspec", "n_components": 300},
            "n_components 300 is more than the 257 bins of an n_fft of 512; use at most that many",
        ),
        ({"type": "logspec", "top_db": 0}, "top_db must be positive"),
        ({"type": "logmel", "fmax": 9000}, "fmax 9000.0 Hz is above the Nyquist frequency"),
    ],
)
def test_impossible_feature_parameters_name_the_feature_set(fset: dict, message: str) -> None:
    steps = {"c_len": 1, "max_steps": 1} if fset["type"] == "functionals" else {}
    found = check_config(config_with({"f": {"sample_rate": 16000, **fset}}, fold_by=None, **steps))
    assert len(found) == 1 and found[0].startswith(f"feature_sets.f: {message}"), found


def test_gain_entries_that_cannot_work(tmp_path: Path) -> None:
    bad = tmp_path / "meta.gain.txt"
    bad.write_text("min gain:\tlow, max gain:\t1.0\n")
    gains = {
        "a": {"method": "minmax", "source": "fixed", "min": 0, "max": 1, "range": [0.5, 0.5]},
        "b": {"method": "minmax", "source": "file", "file": str(bad)},
        "c": {"method": "rms", "target": 0},
    }
    fsets = {k: {"type": "logmel", "sample_rate": 16000, "gain": g} for k, g in gains.items()}
    assert check_config(config_with(fsets, fold_by=None)) == [
        "feature_sets.a.gain: range: [0.5, 0.5] maps every sample to one value; use e.g. [0, 1]",
        f"feature_sets.b.gain: file: {bad}: not a gain file (min 'low' or max '1.0' is not a "
        "number; expected 'min gain:\\t<min>, max gain:\\t<max>')",
        "feature_sets.c.gain: target: the rms target must be a positive number, not 0",
    ]


def test_an_unknown_feature_set_is_reported_not_a_crash() -> None:
    config = config_with({"f": {"type": "logmel", "sample_rate": 16000}}, feature_set="nope")
    assert check_config(config) == [
        "databases.db.feature_set: unknown feature set 'nope' (known: f)"
    ]


# ----------------------------------------------------------------------------- fold feasibility


def fake_info(groups: list[str], n_folds: int | None, speakers: list[str] | None = None):
    """What split_fold reads of a database: folds as assign_folds makes them."""
    from deepser.database.folds import assign_folds

    assignment = assign_folds(groups, n_folds)
    return SimpleNamespace(
        n_rows=len(groups),
        fold=np.array([assignment[g] for g in groups]),
        speaker=np.array(speakers or groups, dtype=object),
        augmented=np.zeros(len(groups), bool),
        n_folds=max(assignment.values()) + 1,
    )


def test_one_speaker_and_impossible_fold_counts() -> None:
    assert fold_problems(["A"] * 4, None, None, False, "databases.db") == (
        [
            "databases.db: a speaker-independent evaluation needs at least 2 speakers; it has 1 "
            "('A') (set fold_by: null to build a database without folds)"
        ],
        [],
    )
    errors, _ = fold_problems(["A", "B", "C"], None, 4, False, "databases.db")
    assert errors == [
        "databases.db: n_folds is 4 but there are only 3 speakers (A, B, C); use n_folds: 3 or "
        "fewer, or null (one fold per speaker)"
    ]
    errors, _ = fold_problems(["A", "B", "C"], None, 1, False, "databases.db")
    assert errors == ["databases.db: n_folds is 1; use at least 2 (or null: one fold per speaker)"]


@pytest.mark.parametrize(
    ("groups", "n_folds", "speakers"),
    [
        (["A", "B", "A", "B"], None, None),  # 2 speakers, leave one out: 1 trains
        (["A", "B", "C", "A"], None, None),  # 3 speakers: 2 train, fine
        (["A", "B", "C", "D"], 2, None),  # 2 folds of 2: 2 train, fine
        (["A", "B", "C", "D", "A", "A"], 3, None),  # folds A | B, D | C: 2 train everywhere
        (["A"] * 5 + ["B", "C"], 2, None),  # folds A | B, C: the second trains on A alone
        (["s1", "s2", "s3", "s4"], 2, ["", "", "", ""]),  # no speaker column
    ],
)
def test_validation_feasibility_agrees_with_the_training_split(groups, n_folds, speakers) -> None:
    errors, _ = fold_problems(groups, None, n_folds, True, "databases.db", speakers=speakers)
    info = fake_info(groups, n_folds, speakers)
    failing = []
    for k in range(info.n_folds):
        try:
            split_fold(info, k, 0.25, seed=1)
        except ValueError as exc:
            assert "a validation split needs at least two training speakers" in str(exc)
            failing.append(k)
    assert bool(errors) == bool(failing)
    for k in failing:
        assert f"fold {k} (tests " in errors[0] and "set validation_fraction: 0" in errors[0]
    assert fold_problems(groups, None, n_folds, False, "databases.db")[0] == []


def test_a_class_of_one_speaker_or_one_fold_is_a_warning() -> None:
    groups = ["A", "A", "B", "B", "C", "C", "D"]
    labels = {"emotion": ["x", "y", "x", "z", "x", "", "x"], "gender": list("ffmmffm")}
    errors, warnings = fold_problems(groups, labels, None, True, "databases.db")
    assert errors == []
    assert warnings == [
        "databases.db: class 'y' of task emotion occurs in speaker A only: the fold that tests A "
        "never saw 'y' in training",
        "databases.db: class 'z' of task emotion occurs in speaker B only: the fold that tests B "
        "never saw 'z' in training",
    ]
    _, warnings = fold_problems(["A", "B", "C", "D"], {"g": list("mfmf")}, 2, False, "db")
    assert len(warnings) == 2 and warnings[0].startswith("db: class 'f' of task g occurs in fold ")


def test_inner_folds_agree_with_the_training_split() -> None:
    for groups, needs_val in [(list("ABC"), False), (list("ABC"), True), (list("ABCDE"), True)]:
        errors = inner_fold_problems(groups, None, 3, needs_val, "fusions.f")
        info = fake_info(groups, None)
        failing = False
        for k in range(info.n_folds):
            try:
                for j in range(len(inner_speakers(info, k, 3))):
                    split_fold(info, k, 0.25 if needs_val else 0.0, 1, inner=(3, j))
            except ValueError:
                failing = True
        assert bool(errors) == failing, (groups, needs_val, errors)


def test_which_experiments_need_a_validation_split() -> None:
    assert needs_validation_split({})  # validation_fraction 0.25 by default
    assert needs_validation_split({"training": {"validation_fraction": 0.1, "patience": 3}})
    assert not needs_validation_split({"training": {"validation_fraction": 0}})
