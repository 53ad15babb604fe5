"""``deepser import-legacy`` then ``deepser recognize`` (as a user runs it, in a subprocess) on
the original laughter model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepser.cli import main as deepser
from deepser.legacy.keras2 import load_legacy_model
from deepser.legacy.presets import feature_spec

from ..helpers import EMODB, noise, voiced, write_wav
from ..unit.test_legacy import MEL, legacy_model, original_mel, original_windows

BIN = Path(sys.executable).parent


def test_cli_import_and_recognizer_end_to_end(tmp_path: Path, capsys) -> None:
    """``deepser import-legacy`` then ``deepser recognize`` on the laughter model; the
    recogniser's prediction for a whole file equals the original pipeline's (librosa mspec ->
    the original's windows -> the Keras-2 model), computed independently here."""
    from deepser.corpus.audio import load_audio
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.pipeline import Recognizer

    model = legacy_model(MEL)
    bundle = tmp_path / "laugh"
    code = deepser(
        ["import-legacy", str(model), "--features", "mspec", "--tasks", "laughter:c0,c1"]
        + ["--gain", "-1,1", "--out", str(bundle)]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert "input float32 [10, 1, 10, 80] (2d), features mel at 22050 Hz" in out.out
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["feature_spec"] == feature_spec("mspec")
    assert info["gain"]["min"] == -1.0 and info["legacy"]["keras_version"] == "2.1.5"

    sr = 16000
    parts = [noise(0.5, sr), voiced(1.3, sr) + noise(1.3, sr), noise(0.8, sr, seed=2)]
    parts += [voiced(0.9, sr, f0=200, seed=3) + noise(0.9, sr, seed=4), noise(0.6, sr, seed=5)]
    synthetic = write_wav(tmp_path / "two_bursts.wav", np.concatenate(parts), sr=sr)
    wavs = [synthetic]
    emodb_wav = EMODB / "wav" / "03a01Fa.wav"
    if emodb_wav.is_file():  # real speech too, when ../shared has EmoDB
        wavs.append(emodb_wav)
    log = tmp_path / "timeline.csv"
    proc = subprocess.run(
        [str(BIN / "deepser"), "recognize", "--model", str(bundle), "-q", "--log", str(log)]
        + ["--wav", *map(str, wavs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(log.open()))
    for row in rows:
        print({k: row[k] for k in ("file", "start_s", "end_s", "laughter", "laughter_p_c1")})
    assert list(rows[0])[:7] == [
        "file",
        "start_s",
        "end_s",
        "speech_ratio",
        "laughter",
        "laughter_p_c0",
        "laughter_p_c1",
    ]
    per_file = [sum(Path(row["file"]).name == wav.name for row in rows) for wav in wavs]
    assert per_file[0] == 2 and all(n >= 1 for n in per_file)  # each burst; EmoDB's speech
    for row in rows:
        p = float(row["laughter_p_c0"]), float(row["laughter_p_c1"])
        assert sum(p) == pytest.approx(1.0, abs=1e-5)
        assert row["laughter"] == ("c1" if p[1] > p[0] else "c0")

    engine = Engine.from_bundle(bundle)
    original = load_legacy_model(model)
    for wav in wavs:
        y = load_audio(wav, 22050)
        ours = Recognizer(engine).whole(y).outputs["laughter"]
        x = original_windows(original_mel(y, -1.0, 1.0))
        want = np.asarray(original.predict_on_batch(x[None]))[0]
        print(f"{wav.name}: recogniser {ours}, original pipeline {want}")
        assert np.abs(ours - want).max() < 1e-4, (wav.name, ours, want)
