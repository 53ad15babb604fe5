"""Functionals end to end in one process: demo corpus -> functionals -> a database of
one-window rows -> a speaker-normalised network per fold -> summary -> bundle; then the
recogniser summarises a whole file into one vector, and ``--enrol`` starts its statistics."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pandas as pd
import pytest

from deepser.corpus.demo import synthesize_corpus
from deepser.features.functionals import feature_names
from deepser.features.registry import extract, resolve_spec

from ..helpers import run_stages, write_wav

SR = 16000
FEATURES = {"type": "functionals", "sample_rate": SR, "n_mels": 24}


def spec(**overrides) -> dict:
    return resolve_spec({**FEATURES, **overrides})


def test_functionals_train_and_the_recogniser_uses_them(tmp_path: Path, capsys) -> None:
    meta = synthesize_corpus(tmp_path / "data/demo", seed=5, n_speakers=3, utterances_per_emotion=3)
    out = run_stages(
        tmp_path,
        {"demo": {"meta": str(meta), "columns": {"emotion": "emotion", "speaker": "speaker"}}},
        FEATURES,
        {"corpora": ["demo"], "c_len": 1, "max_steps": 1, "tasks": ["emotion"]},
        {
            "exp": {
                "database": "db",
                "normalisation": "speaker",
                "final_epochs": 3,
                "model": {"architecture": "dnn", "window_units": [32], "dense_layers": 0},
                "training": {"epochs": 3, "validation_fraction": 0, "batch_size": 8},
            }
        },
    )
    with h5py.File(out["db"]) as h5:
        feat = h5["feat"][()]
        assert feat.shape[1:] == (1, 1, 1, len(feature_names(spec())))
        assert (h5["n_valid"][()] == 1).all() and np.isfinite(feat).all()
    metrics = json.loads((out["exp"] / "metrics.json").read_text())
    ua = metrics["tasks"]["emotion"]["ua"]["per_fold"]
    assert len(ua) == 3 and all(0.0 <= u <= 1.0 for u in ua)

    from deepser.cli.recognize import main

    meta = pd.read_csv(tmp_path / "data/demo/meta.tsv", sep="\t", dtype=str).head(4)
    files = [str(tmp_path / "data/demo" / p) for p in meta["path"]]
    bundle = str(out["exp"] / "final")
    code = main(["--model", bundle, "--whole-file", "--format", "jsonl", "-q", "--wav", *files])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == files
    for r in rows:
        probs = [v for k, v in r.items() if k.startswith("emotion_p_")]
        assert len(probs) == 4 and sum(probs) == pytest.approx(1.0, abs=1e-5)

    # --enrol: three recordings of the speaker start the running statistics; the fourth file
    # is then standardised with the statistics of all four vectors (computed here directly)
    from deepser.corpus.audio import load_audio

    code = main(["--model", bundle, "--whole-file", "--format", "jsonl", "-q",
                 "--enrol", *files[:3], "--wav", files[3]])  # fmt: skip
    assert code == 0
    row = json.loads(capsys.readouterr().out)
    vectors = np.concatenate([extract(load_audio(f, SR), spec()) for f in files])
    mean, var = vectors.astype(np.float64).mean(0), vectors.astype(np.float64).var(0)
    z = ((vectors[3] - mean) / np.sqrt(np.maximum(var, 1e-12))).astype(np.float32)
    model = keras.saving.load_model(Path(bundle) / "model.keras")
    want = model.predict_on_batch(
        {"features": z[None, None, None, None], "n_valid": np.array([1], np.int32)}
    )
    want = np.asarray(want["emotion"] if isinstance(want, dict) else want)[0]
    classes = sorted(k for k in row if k.startswith("emotion_p_"))
    info = json.loads((Path(bundle) / "bundle.json").read_text())
    got = [row[f"emotion_p_{c}"] for c in info["tasks"][0]["classes"]]
    assert len(got) == len(classes)
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert np.ptp(got) > 1e-3  # not the uniform output of an unenrolled first segment

    # a recording too short for one frame is a one-line error naming it; --gain auto is refused
    short = write_wav(tmp_path / "short.wav", np.zeros(100, np.float32))
    assert main(["--model", bundle, "--enrol", str(short), "--wav", files[0]]) == 1
    assert f"{short}: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", bundle, "--gain", "auto", "--enrol", files[0], "--wav", files[0]])
    assert "not --gain auto" in capsys.readouterr().err
