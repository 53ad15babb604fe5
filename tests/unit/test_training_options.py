"""Training options without a full training: the focal loss, re-sampling, per-speaker
statistics, learning-rate schedules, SpecAugment, config cross-checks (the trainings that show
their effect are in ``tests/integration/test_training_runs.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepser.database.normalise import SpeakerNorm
from deepser.database.store import read_info, read_rows
from deepser.training.batches import ChunkedBatches, resample_factors
from deepser.training.schedule import LearningRate
from deepser.training.settings import TRAINING_DEFAULTS
from deepser.training.split import split_fold

from ..helpers import SYN_C as C
from ..helpers import SYN_D as D
from ..helpers import SYN_T as T
from ..helpers import skewed_db
from ..helpers import synthetic_db as write_db

TINY = {
    "architecture": "cnn_lstm",
    "conv_filters": [4],
    "rnn_units": 4,
    "dense_units": 0,
    "dropout": 0.0,
}


def test_focal_loss_matches_its_formula_for_many_classes(rng) -> None:
    from deepser.training.losses import SparseFocalLoss

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
    from deepser.training.spec_augment import spec_augment

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


def test_experiment_cross_checks_name_the_problem() -> None:
    from deepser.workflow.config import _experiment_problems, resolve_experiments

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


def test_the_monitored_task_must_be_categorical() -> None:
    from deepser.training.settings import monitor_task

    tasks = [{"name": "score", "type": "continuous"}, {"name": "emotion", "classes": ["a", "b"]}]
    assert monitor_task(tasks, None)["name"] == "emotion"
    assert monitor_task(tasks[:1], None) is None  # nothing to stop early on
    for name in ("score", "nope"):
        with pytest.raises(ValueError, match=f"monitor: '{name}' is not a categorical task"):
            monitor_task(tasks, name)
