"""Real (small) trainings on synthetic databases: each way of handling class imbalance raises
the minority class's recall, speaker-level normalisation is recorded and evaluated, per-task
loss weights weigh the losses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepser.training.train import train

from ..helpers import SYN_D as D
from ..helpers import skewed_db
from ..helpers import synthetic_db as write_db
from ..unit.test_training_options import TINY


def minority_recall(tmp: Path, db: Path, name: str, training: dict) -> float:
    exp = {
        "database": "x",
        "tasks": {"emotion": 1.0},
        "model": TINY,
        "training": {
            "epochs": 12,
            "batch_size": 32,
            "learning_rate": 0.01,
            "validation_fraction": 0,
            "class_weights": False,
            "seed": 2,
            **training,
        },
    }
    out = tmp / name
    train(db, exp, 0, out, threads=1)
    from deepser.evaluation.fold import evaluate_fold

    metrics = evaluate_fold(
        db, out / "model.keras", out / "training.json", 0, out / "p.csv", out / "m.json"
    )
    confusion = np.asarray(metrics["tasks"]["emotion"]["confusion"])
    return confusion[1, 1] / confusion[1].sum()


@pytest.fixture(scope="module")
def recalls(tmp_path_factory) -> dict[str, float]:
    tmp = tmp_path_factory.mktemp("skew")
    db = skewed_db(tmp / "skew.h5")
    settings = {
        "none": {},
        "class_weights": {"class_weights": True},
        "focal": {"loss": "focal", "focal_gamma": 2.0, "focal_alpha": [0.1, 0.9]},
        "over": {"sampling": "over"},
        "under": {"sampling": "under", "epochs": 40},
    }
    return {name: minority_recall(tmp, db, name, s) for name, s in settings.items()}


@pytest.mark.parametrize("method", ["class_weights", "focal", "over", "under"])
def test_each_imbalance_method_raises_minority_recall(recalls: dict, method: str) -> None:
    assert recalls["none"] < 0.5, recalls  # the skew makes the plain model ignore the minority
    assert recalls[method] >= recalls["none"] + 0.2, recalls


def test_speaker_normalised_training_is_recorded_and_evaluated(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 80
    speakers = [f"s{i % 4}" for i in range(n)]
    # the test speaker's own spectral offset looks like the other class's signature
    shift = np.zeros(D, np.float32)
    shift[:2] = [-3.0, 3.0]
    offsets = {"s0": 0.0, "s1": 0.0, "s2": 0.0, "s3": shift}
    db = write_db(
        tmp_path / "off.h5",
        rng.integers(0, 2, n),
        speakers,
        np.arange(n) % 4,
        offsets=offsets,
        separation=3.0,
    )
    from deepser.evaluation.fold import evaluate_fold

    ua = {}
    for method in ("global", "speaker"):
        exp = {
            "database": "x",
            "normalisation": method,
            "model": TINY,
            "training": {"epochs": 15, "validation_fraction": 0, "seed": 1, "learning_rate": 0.01},
        }
        out = tmp_path / method
        record = train(db, exp, 3, out, threads=1)
        assert record.normalisation == method
        m = evaluate_fold(
            db, out / "model.keras", out / "training.json", 3, out / "p.csv", out / "m.json"
        )
        ua[method] = m["tasks"]["emotion"]["ua"]
    assert ua["speaker"] > ua["global"] + 0.15, ua


def test_per_task_loss_weights_are_applied(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 64
    db = write_db(
        tmp_path / "mt.h5",
        rng.integers(0, 3, n),
        [f"s{i % 4}" for i in range(n)],
        np.arange(n) % 4,
        aux=rng.integers(0, 2, n),
    )
    for weights in ({"emotion": 1.0, "gender": 0.0}, {"emotion": 0.3, "gender": 2.0}):
        exp = {
            "database": "x",
            "tasks": weights,
            "model": TINY,
            "auxiliary": ["gender"],
            "training": {"epochs": 2, "validation_fraction": 0, "seed": 1},
        }
        out = tmp_path / f"w{weights['gender']}"
        record = train(db, exp, 0, out, threads=1)
        assert [t["loss_weight"] for t in record.tasks] == list(weights.values())
        history = pd.read_csv(out / "history.csv")
        expected = (
            weights["emotion"] * history["emotion_loss"]
            + weights["gender"] * history["gender_loss"]
        )
        np.testing.assert_allclose(history["loss"], expected, rtol=1e-3)
        saved = json.loads((out / "training.json").read_text())
        assert saved["auxiliary"] == ["gender"]
