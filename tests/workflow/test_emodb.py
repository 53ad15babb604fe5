"""EmoDB (../shared/corpora/emodb) through the data stage with both of its meta files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ..helpers import require_emodb, run_workflow

pytestmark = [pytest.mark.slow, pytest.mark.emodb]
EMOTIONS = ["angry", "bored", "disgust", "fearful", "happy", "neutral", "sad"]


def test_both_meta_formats_give_the_same_database(tmp_path: Path) -> None:
    emodb = require_emodb()
    config = {
        "corpora": {
            "named": {
                "meta": str(emodb / "meta.tsv"),
                "format": "named",
                "columns": {"emotion": "emotion", "speaker": "speaker", "gender": "gender"},
            },
            "seed": {
                "meta": str(emodb / "meta.seed.txt"),
                "format": "original",
                "audio_column": 0,
                "columns": {
                    "emotion": {"column": 1, "classes": EMOTIONS},
                    "speaker": 2,
                    "gender": {"column": 4, "classes": ["male", "female"]},
                },
            },
        },
        "feature_sets": {"logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 40}},
        "databases": {
            name: {
                "corpora": [name],
                "feature_set": "logmel",
                "c_len": 10,
                "max_steps": 200,
                "tasks": ["emotion", "gender"],
                "fold_by": "speaker",
            }
            for name in ("named", "seed")
        },
    }
    run_workflow(tmp_path, config)
    with (
        h5py.File(tmp_path / "results/db/named.h5") as a,
        h5py.File(tmp_path / "results/db/seed.h5") as b,
    ):
        assert a["feat"].shape == b["feat"].shape == (535, 20, 1, 10, 40)
        assert [t["classes"] for t in json.loads(a.attrs["tasks"])] == [
            EMOTIONS,
            ["female", "male"],
        ]
        assert json.loads(b.attrs["tasks"])[0]["classes"] == EMOTIONS
        ua, ub = list(a["utt_id"].asstr()), list(b["utt_id"].asstr())
        assert sorted(ua) == sorted(ub) and len(set(ua)) == 535  # './wav/x' and 'wav/x' agree
        order = np.argsort(ub)[np.argsort(np.argsort(ua))]
        np.testing.assert_array_equal(a["label"][:, 0], b["label"][()][order, 0])
        np.testing.assert_array_equal(a["feat"][:50], b["feat"][()][order[:50]])
        # 10 leave-one-speaker-out folds, one speaker each, the same in both
        assert len(a["start_indice"]) == len(b["start_indice"]) == 10
        speakers_a = np.array(list(a["speaker"].asstr()))
        for s, e in zip(a["start_indice"], a["end_indice"], strict=True):
            assert len(set(speakers_a[s:e])) == 1
        assert sorted(set(speakers_a)) == [
            "03",
            "08",
            "09",
            "10",
            "11",
            "12",
            "13",
            "14",
            "15",
            "16",
        ]


def test_a_demo_model_on_emodb_drops_and_counts_the_classes_the_demo_lacks(
    tmp_path: Path,
) -> None:
    emodb = require_emodb()
    config = {
        "demo_corpus": {
            "dir": "data/demo",
            "seed": 3,
            "n_speakers": 4,
            "utterances_per_emotion": 3,
        },
        "corpora": {
            "demo": {"meta": "data/demo/meta.tsv", "n_shards": 1},
            "emodb": {"meta": str(emodb / "meta.tsv"), "n_shards": 2},
        },
        "feature_sets": {"logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 24}},
        "databases": {
            "db": {
                "corpora": ["demo"],
                "feature_set": "logmel",
                "c_len": 10,
                "max_steps": 150,
                "tasks": ["emotion"],
                "n_folds": 2,
                "baseline": False,
            }
        },
        "experiments": {
            "demo": {
                "database": "db",
                "model": {"conv_filters": [4], "rnn_units": 8, "dense_units": 8},
                "training": {"epochs": 2, "validation_fraction": 0.34},
            }
        },
        "evaluation": {"bootstrap": 200},
        "cross_corpus": {  # the four classes both corpora have
            "demo_on_emodb": {
                "experiment": "demo",
                "corpus": "emodb",
                "labels": {e: e for e in ["angry", "happy", "neutral", "sad"]},
            }
        },
    }
    for corpus in config["corpora"].values():
        corpus["columns"] = {"emotion": "emotion", "speaker": "speaker", "gender": "gender"}
    config["cross_corpus"]["demo_on_emodb"]["labels"] = {
        "emotion": config["cross_corpus"]["demo_on_emodb"]["labels"]
    }
    run_workflow(tmp_path, config)
    found = json.loads((tmp_path / "results/cross_corpus/demo_on_emodb/metrics.json").read_text())
    emotion = found["tasks"]["emotion"]
    assert emotion["dropped"] == {"bored": 81, "disgust": 46, "fearful": 69}
    assert (emotion["n"], emotion["n_dropped"], emotion["n_total"]) == (339, 196, 535)
    assert found["speakers"] == 10 and emotion["intervals"]["ua"]["n_groups"] == 10
    assert len(emotion["ua"]["per_model"]) == 2
    with h5py.File(tmp_path / "results/db/db-on-emodb.h5") as db:
        assert db["feat"].shape == (535, 15, 1, 10, 24)  # the experiment's windows and features
    report = (tmp_path / "results/experiments/demo/report.html").read_text()
    assert '<section id="cross-corpus">' in report and "bored 81" in report
