"""One ``deepser`` command: its subcommands, ``deepser-recognize`` as an alias, exit status 2 for
a bad command line (also a bad option value) and 1 with one line for a runtime error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepser.cli import main as deepser
from deepser.cli.recognize import main as recognize


def fake_bundle(folder: Path) -> Path:
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"")
    info = {"format_version": 1, "feature_spec": {"sample_rate": 16000}, "window_spec": {}}
    (folder / "bundle.json").write_text(json.dumps({**info, "tasks": []}))
    return folder


def test_help_lists_every_subcommand(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        deepser(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("recognize", "import-legacy", "convert-db", "demo-corpus", "card"):
        assert command in text


def test_recognize_is_a_subcommand_and_an_alias(capsys) -> None:
    for run in (lambda a: deepser(["recognize", *a]), recognize):
        with pytest.raises(SystemExit) as exit_:
            run(["--help"])
        assert exit_.value.code == 0
        assert "--min-speech-ms" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--speech-ratio", "2"], "speech ratio must be in [0, 1]"),
        (["--gain", "loud"], "--gain 'loud'"),
        (["--gain", "0.5,0.1"], "MAX > MIN"),
        (["--min-speech-ms", "ten"], "invalid int value"),
    ],
)
def test_a_bad_option_value_exits_2(tmp_path: Path, capsys, args, words) -> None:
    bundle = fake_bundle(tmp_path / "bundle")
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    for run, prog in (
        (recognize, "deepser-recognize"),
        (lambda a: deepser(["recognize", *a]), "deepser recognize"),
    ):
        with pytest.raises(SystemExit) as exit_:
            run(["--model", str(bundle), "--wav", str(wav), *args])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"{prog}: error:" in err and words in err and "Traceback" not in err


def test_a_runtime_error_exits_1_with_one_line(tmp_path: Path, capsys) -> None:
    code = deepser(["recognize", "--model", str(tmp_path / "none"), "--wav", "x.wav"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("deepser recognize: error: ") and "not a model bundle" in err[0]
    code = deepser(["convert-db", str(tmp_path / "none.h5"), "--tasks", "a:2:0", "--out", "o.h5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("deepser convert-db: error: ")
