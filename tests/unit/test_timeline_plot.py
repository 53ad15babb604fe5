"""The recogniser's timeline picture: the level beneath is measured on the file itself, the
picture and page are written whole, and --plot's mistakes are command-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepser.cli import main as deepser
from deepser.recognizer.timeline_plot import energy_envelope, write_timeline_plot

TASKS = [
    {"name": "emotion", "type": "categorical", "classes": ["angry", "sad"]},
    {"name": "score", "type": "continuous"},
]
ROWS = [
    {"start_s": 0.1, "end_s": 0.9, "speech_ratio": 1.0, "emotion": "angry", "emotion_p_angry": 0.8,
     "emotion_p_sad": 0.2, "score": 0.3},
    {"start_s": 1.1, "end_s": 1.9, "speech_ratio": 0.9, "emotion": "uncertain",
     "emotion_p_angry": 0.45, "emotion_p_sad": 0.55, "score": -0.1},
]  # fmt: skip


def stereo_file(path: Path, sr: int = 16000) -> Path:
    """1 s of silence, then 1 s of a tone at -20 dBFS RMS in both channels."""
    t = np.arange(sr) / sr
    tone = 0.1 * np.sqrt(2) * np.sin(2 * np.pi * 300 * t)
    y = np.concatenate([np.zeros(sr), tone])
    sf.write(path, np.stack([y, y], axis=1), sr, subtype="FLOAT")
    return path


def test_the_level_is_measured_per_10_ms_on_the_mono_mix(tmp_path: Path) -> None:
    times, db = energy_envelope(stereo_file(tmp_path / "a.wav"))
    assert len(times) == len(db) == 200 and times[1] == pytest.approx(0.01)
    assert np.all(db[:100] == -100.0)  # silence: the floor
    assert db[101:].mean() == pytest.approx(-20.0, abs=0.2)


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_the_picture_and_page_are_written(tmp_path: Path, suffix: str) -> None:
    audio = stereo_file(tmp_path / "a.wav")
    out = write_timeline_plot(tmp_path / "deep" / f"t{suffix}", ROWS, TASKS, audio, title="a")
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        text = data.decode()
        assert text.count("<tr><td>") == 2 and "uncertain" in text and "base64," in text
    with pytest.raises(ValueError, match=r"\.png or \.html"):
        write_timeline_plot(tmp_path / "t.pdf", ROWS, TASKS, audio)


def fake_bundle(folder: Path) -> Path:
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"")
    spec = {"format_version": 1, "feature_spec": {"sample_rate": 16000}, "window_spec": {}}
    (folder / "bundle.json").write_text(json.dumps({**spec, "tasks": []}))
    return folder


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--plot", "t.pdf"], "give a .png or .html file name"),
        (["--plot", "t.png", "--meta", "meta.tsv"], "exactly one --wav FILE"),
    ],
)
def test_plot_mistakes_exit_2(tmp_path: Path, capsys, extra: list, words: str) -> None:
    bundle = fake_bundle(tmp_path / "b")
    audio = stereo_file(tmp_path / "a.wav")
    with pytest.raises(SystemExit) as exit_:
        deepser(["recognize", "--model", str(bundle), "--wav", str(audio), *extra])
    assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_plot_into_a_folder_exits_1_before_the_model_loads(tmp_path: Path, capsys) -> None:
    bundle = fake_bundle(tmp_path / "b")  # model.keras is empty: loading it would fail later
    audio = stereo_file(tmp_path / "a.wav")
    (tmp_path / "t.png").mkdir()
    code = deepser(["recognize", "--model", str(bundle), "--wav", str(audio), "--plot",
                    str(tmp_path / "t.png")])  # fmt: skip
    assert code == 1 and "is a folder (--plot needs a file name)" in capsys.readouterr().err
