"""Training options on small synthetic databases: losses, imbalance handling, speaker-level
normalisation, learning-rate schedules, SpecAugment, per-task loss weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepser.data import ChunkedBatches, SpeakerNorm, read_info, read_rows, split_fold
from deepser.h5db import DatabaseWriter
from deepser.training import TRAINING_DEFAULTS, LearningRate, resample_factors, train

T, C, D = 3, 2, 6  # windows, frames per window, feature dims


def write_db(
    path: Path,
    labels: np.ndarray,
    speakers: list[str],
    folds: np.ndarray,
    seed: int = 0,
    separation: float = 1.0,
    offsets: dict[str, float] | None = None,
    aux: np.ndarray | None = None,
) -> Path:
    """A database in this project's format: class k shifts dimension k by ``separation``; a
    speaker offset (``offsets``) shifts every dimension; rows sorted by fold."""
    rng = np.random.default_rng(seed)
    order = np.argsort(folds, kind="stable")
    n_tasks = 1 if aux is None else 2
    writer = DatabaseWriter(path, len(labels), (T, 1, C, D), n_tasks)
    bounds = []
    for i in order:
        feat = rng.standard_normal((T, 1, C, D)).astype(np.float32)
        feat[..., int(labels[i]) % D] += separation
        feat += (offsets or {}).get(speakers[i], 0.0)
        n_valid = 1 + int(rng.integers(0, T))
        feat[n_valid:] = 0.0
        label = [labels[i]] if aux is None else [labels[i], aux[i]]
        writer.append(
            feat, np.asarray(label, float), n_valid, int(folds[i]), f"u{i:04d}", speakers[i], "syn"
        )
    sorted_folds = folds[order]
    for k in range(int(folds.max()) + 1):
        idx = np.flatnonzero(sorted_folds == k)
        bounds.append((int(idx[0]), int(idx[-1]) + 1))
    n_classes = int(labels.max()) + 1
    tasks = [
        {"name": "emotion", "type": "categorical", "classes": [f"c{k}" for k in range(n_classes)]}
    ]
    if aux is not None:
        tasks.append({"name": "gender", "type": "categorical", "classes": ["f", "m"]})
    writer.finish(
        bounds,
        {
            "window_spec": {
                "c_len": C,
                "max_steps": T * C,
                "layout": "2d",
                "n_steps": T,
                "dims": D,
            },
            "tasks": tasks,
            "feature_spec": {"type": "logmel", "sample_rate": 16000},
            "gain": {"syn": {"method": "none"}},
            "corpora": ["syn"],
            "speakers": sorted(set(speakers)),
        },
    )
    return path


def skewed_db(path: Path) -> Path:
    """Two overlapping classes, 10 % minority, 4 speakers (folds)."""
    rng = np.random.default_rng(3)
    n = 480
    labels = (rng.random(n) < 0.1).astype(int)
    speakers = [f"s{i % 4}" for i in range(n)]
    folds = np.array([i % 4 for i in range(n)])
    return write_db(path, labels, speakers, folds, separation=0.35)


TINY = {
    "architecture": "cnn_lstm",
    "conv_filters": [4],
    "rnn_units": 4,
    "dense_units": 0,
    "dropout": 0.0,
}


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
    from deepser.evaluation import evaluate_fold

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


def test_focal_loss_matches_its_formula_for_many_classes(rng) -> None:
    from deepser.losses import SparseFocalLoss

    n, k = 16, 5
    probs = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    y = rng.integers(0, k, n)
    alpha = rng.uniform(0.5, 2.0, k)
    p_true = probs[np.arange(n), y]
    for gamma, a, smooth in (
        (0.0, None, 0.0),
        (2.0, None, 0.0),
        (1.5, alpha, 0.0),
        (2.0, 0.25, 0.1),
    ):
        got = np.asarray(SparseFocalLoss(k, gamma, a, smooth)(y, probs))
        target = np.eye(k)[y] * (1 - smooth) + smooth / k
        ce = -(target * np.log(probs)).sum(1)
        weight = 1.0 if a is None else (a if np.isscalar(a) else alpha[y])
        expected = np.mean(weight * (1 - p_true) ** gamma * ce)
        assert got == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="3 values for 5 classes"):
        SparseFocalLoss(k, alpha=[1, 1, 1])


def test_resampling_draws_balanced_epochs(tmp_path: Path) -> None:
    db = skewed_db(tmp_path / "skew.h5")
    info = read_info(db)
    split = split_fold(info, 0, 0.0, 0)
    labels = read_rows(db, split.train, [0]).label[:, 0]
    counts = np.bincount(labels.astype(int))
    tasks = [info.tasks[0]]
    for how, expected in (("over", counts.max()), ("under", counts.min())):
        factors = resample_factors(labels, 2, how)
        batches = ChunkedBatches(db, split.train, [0], tasks, 16, 0, resample=(0, factors))
        drawn = np.concatenate([t["emotion"] for _, t, _ in batches.epoch()])
        per_class = np.bincount(drawn, minlength=2)
        np.testing.assert_allclose(per_class, expected, rtol=0.35)
        assert abs(per_class[0] - per_class[1]) < 0.35 * expected


def test_speaker_normalisation_uses_each_speakers_own_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 60
    speakers = [f"s{i % 3}" for i in range(n)]
    offsets = {"s0": -5.0, "s1": 0.0, "s2": 7.0}
    db = write_db(
        tmp_path / "spk.h5", rng.integers(0, 2, n), speakers, np.arange(n) % 3, offsets=offsets
    )
    info = read_info(db)
    norm = SpeakerNorm(info)
    arrays = read_rows(db, np.arange(n), [0], norm)
    raw = read_rows(db, np.arange(n), [0])
    for spk in offsets:
        rows = info.speaker == spk
        frames = np.concatenate(
            [raw.feat[i, : raw.n_valid[i]].reshape(-1, D) for i in np.flatnonzero(rows)]
        )
        k = list(norm.speakers).index(spk)
        np.testing.assert_allclose(norm.mean[k], frames.mean(0), atol=1e-4)
        normed = np.concatenate(
            [arrays.feat[i, : arrays.n_valid[i]].reshape(-1, D) for i in np.flatnonzero(rows)]
        )
        np.testing.assert_allclose(normed.mean(0), 0.0, atol=1e-4)  # the offset is gone
        np.testing.assert_allclose(normed.std(0), 1.0, atol=1e-3)
    for i in range(n):  # padding windows stay zero
        assert not arrays.feat[i, arrays.n_valid[i] :].any()
    # no labels used: the same file with other labels gives the same statistics
    import shutil

    import h5py

    shutil.copy(db, tmp_path / "relabelled.h5")
    with h5py.File(tmp_path / "relabelled.h5", "r+") as h5:
        h5["label"][:, 0] = 1 - h5["label"][:, 0]
    np.testing.assert_array_equal(
        SpeakerNorm(read_info(tmp_path / "relabelled.h5")).mean, norm.mean
    )


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
    from deepser.evaluation import evaluate_fold

    ua = {}
    for method in ("global", "speaker"):
        exp = {
            "database": "x",
            "normalisation": method,
            "model": TINY,
            "training": {"epochs": 15, "validation_fraction": 0, "seed": 1, "learning_rate": 0.01},
        }
        out = tmp_path / method
        summary = train(db, exp, 3, out, threads=1)
        assert summary["normalisation"] == method
        m = evaluate_fold(
            db, out / "model.keras", out / "training.json", 3, out / "p.csv", out / "m.json"
        )
        ua[method] = m["tasks"]["emotion"]["ua"]
    assert ua["speaker"] > ua["global"] + 0.15, ua


def test_learning_rate_schedules() -> None:
    base = {**TRAINING_DEFAULTS, "learning_rate": 0.1, "lr_min": 0.0}
    cosine = LearningRate({**base, "lr_schedule": "cosine", "warmup_epochs": 2}, 12)
    rates = [cosine.at(e) for e in range(1, 13)]
    assert rates[0] < rates[1] < rates[2] == pytest.approx(0.1)  # warm-up then the peak
    assert all(a >= b for a, b in zip(rates[2:], rates[3:], strict=False))
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)
    expo = LearningRate({**base, "lr_schedule": "exponential", "lr_decay": 0.5}, 5)
    assert [expo.at(e) for e in (1, 2, 3)] == pytest.approx([0.1, 0.05, 0.025])
    plateau = LearningRate(
        {**base, "lr_schedule": "plateau", "lr_decay": 0.5, "plateau_patience": 2}, 10
    )
    for ua in (0.5, 0.6, 0.6, 0.6):
        plateau.observe(ua)
    assert plateau.at(5) == pytest.approx(0.05)
    constant = LearningRate({**base, "lr_schedule": "constant"}, 5)
    assert {constant.at(e) for e in range(1, 6)} == {0.1}


def test_spec_augment_masks_training_batches_only(tmp_path: Path, rng) -> None:
    from deepser.augment import spec_augment

    feat = rng.standard_normal((4, T, 1, C, D)).astype(np.float32) + 10
    n_valid = np.array([3, 2, 1, 3])
    cfg = {"freq_masks": 1, "freq_width": 2, "time_masks": 1, "time_width": 2}
    out = spec_augment(feat, n_valid, np.random.default_rng(0), cfg, fill=0.0)
    again = spec_augment(feat, n_valid, np.random.default_rng(0), cfg, fill=0.0)
    np.testing.assert_array_equal(out, again)  # seeded
    assert (out == 0).any() and not (feat == 0).any()  # masked with the fill value
    for i in range(4):  # only valid frames are touched
        np.testing.assert_array_equal(out[i, n_valid[i] :], feat[i, n_valid[i] :])
    db = skewed_db(tmp_path / "skew.h5")
    info = read_info(db)
    split = split_fold(info, 0, 0.0, 0)
    batches = ChunkedBatches(
        db,
        split.train,
        [0],
        [info.tasks[0]],
        8,
        0,
        augment={**cfg, "freq_width": D},
        augment_fill=-99.0,
    )
    inputs, _, _ = next(iter(batches.epoch()))
    assert (inputs["features"] == -99.0).any()
    arrays = read_rows(db, split.train[:8], [0])
    plain, _, _ = batches.batch(arrays, np.arange(8))  # validation / evaluation batches
    assert not (plain["features"] == -99.0).any()


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
        summary = train(db, exp, 0, out, threads=1)
        assert [t["loss_weight"] for t in summary["tasks"]] == list(weights.values())
        history = pd.read_csv(out / "history.csv")
        expected = (
            weights["emotion"] * history["emotion_loss"]
            + weights["gender"] * history["gender_loss"]
        )
        np.testing.assert_allclose(history["loss"], expected, rtol=1e-3)
        saved = json.loads((out / "training.json").read_text())
        assert saved["auxiliary"] == ["gender"]


def test_experiment_cross_checks_name_the_problem() -> None:
    from deepser.config import _experiment_problems, resolve_experiments

    def problems(**experiments) -> str:
        return "\n".join(_experiment_problems({"experiments": experiments}))

    base = {"database": "db", "model": {"rnn_units": 8}}
    assert problems(a=base, b={**base, "init_from": "a"}) == ""
    assert "'zz' is not another experiment" in problems(a={**base, "init_from": "zz"})
    assert "cycle" in problems(a={**base, "init_from": "b"}, b={**base, "init_from": "a"})
    assert "freeze: only meaningful with init_from" in problems(a={**base, "freeze": ["conv"]})
    assert "'gender' is not one of its tasks" in problems(
        a={**base, "tasks": {"emotion": 1}, "auxiliary": ["gender"]}
    )
    assert "set class_weights: false" in problems(a={**base, "training": {"sampling": "over"}})
    assert "set loss: focal" in problems(a={**base, "training": {"focal_alpha": 0.5}})
    resolved = resolve_experiments(
        {"experiments": {"a": base, "b": {"database": "db2", "init_from": "a"}}}
    )
    assert resolved["b"]["model"] == base["model"]  # a fine-tuned model keeps its source's sizes
