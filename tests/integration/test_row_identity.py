"""A row is (corpus, utt_id) from the database to the summary: an aggregated database whose two
corpora list the same files (so every utt_id occurs twice) trains, evaluates and summarises,
each copy predicted exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from deepser.corpus.demo import synthesize_corpus
from deepser.evaluation.predictions import read_predictions
from deepser.training.record import read_training

from ..helpers import run_stages


def test_corpora_sharing_paths_are_told_apart_end_to_end(tmp_path: Path) -> None:
    meta = synthesize_corpus(tmp_path / "data", seed=2, n_speakers=4, utterances_per_emotion=1)
    columns = {"emotion": "emotion", "speaker": "speaker"}
    out = run_stages(
        tmp_path,
        {
            "a": {"meta": str(meta), "columns": columns},
            "b": {"meta": str(meta), "columns": columns},
        },
        {"type": "logmel", "sample_rate": 16000, "n_mels": 16},
        {"corpora": ["a", "b"], "c_len": 10, "max_steps": 50, "tasks": ["emotion"], "n_folds": 2},
        {
            "exp": {
                "database": "db",
                "final_epochs": 1,
                "model": {"architecture": "dnn", "window_units": [8], "dense_layers": 0},
                "training": {"epochs": 1, "validation_fraction": 0, "batch_size": 8},
            }
        },
    )
    with h5py.File(out["db"]) as h5:
        utt = list(h5["utt_id"].asstr()[()])
        corpus = list(h5["corpus"].asstr()[()])
    assert len(utt) == 32 and len(set(utt)) == 16  # each path in both corpora
    assert len(set(zip(corpus, utt, strict=True))) == 32
    tasks = read_training(out["exp"] / "fold-0/training.json").tasks
    tables = [read_predictions(out["exp"] / f"fold-{k}/predictions.csv", tasks) for k in range(2)]
    keys = [(c, u) for t in tables for c, u in zip(t["corpus"], t["utt_id"], strict=True)]
    assert sorted(keys) == sorted(zip(corpus, utt, strict=True))  # every row exactly once
    summary = json.loads((out["exp"] / "metrics.json").read_text())
    assert np.sum(summary["tasks"]["emotion"]["pooled"]["confusion"]) == 32
    assert (out["exp"] / "report.html").is_file()
    bundle = json.loads(((out["exp"] / "final") / "bundle.json").read_text())
    assert set(bundle["gains"]) == {"a", "b"} and bundle["data"]["corpora"] == ["a", "b"]
