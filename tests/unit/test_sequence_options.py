"""Options of the sequence networks: log-mel deltas, per-utterance normalisation, feature blocks
as input channels, mixup with soft targets, and the weight average (EMA)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from deepser.features.registry import extract, resolve_spec
from deepser.features.spectral import with_deltas
from deepser.models import FEATURES, N_VALID
from deepser.models.custom_layers import UtteranceNorm
from deepser.models.registry import build_model
from deepser.training.batches import mixup
from deepser.training.loop import compile_model, swap_average
from deepser.training.losses import SparseFocalLoss, task_loss
from deepser.training.settings import TRAINING_DEFAULTS

TASKS = [{"name": "emotion", "type": "categorical", "classes": ["a", "b", "c"], "loss_weight": 1}]
T, C, D = 5, 4, 6  # windows, frames per window, feature dimensions (3 blocks of 2)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_logmel_deltas_follow_the_static_features() -> None:
    base = {"type": "logmel", "sample_rate": 16000, "n_mels": 24}
    assert "deltas" not in resolve_spec(base)  # absent when 0: older specs stay equal
    spec = resolve_spec({**base, "deltas": 2})
    assert spec["deltas"] == 2 and spec["delta_width"] == 9
    y = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    static = extract(y, resolve_spec(base))
    full = extract(y, spec)
    assert full.shape == (static.shape[0], 3 * 24) and full.dtype == np.float32
    np.testing.assert_array_equal(full[:, :24], static)
    ramp = np.arange(20, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    d = with_deltas(ramp, 2)
    np.testing.assert_allclose(d[:, 3:6], 1.0, atol=1e-5)  # slope of a ramp
    np.testing.assert_allclose(d[:, 6:], 0.0, atol=1e-5)
    assert with_deltas(ramp[:2], 1).shape == (2, 6)  # too short for a window: zero deltas
    with pytest.raises(ValueError, match="deltas"):
        resolve_spec({**base, "deltas": 3})


def test_logmel_top_db_floors_digital_silence() -> None:
    base = {"type": "logmel", "sample_rate": 16000, "n_mels": 24}
    assert "top_db" not in resolve_spec(base)  # absent when unset: older specs stay equal
    spec = resolve_spec({**base, "top_db": 80})
    assert spec["top_db"] == 80.0
    y = np.random.default_rng(2).standard_normal(8000).astype(np.float32) * 0.1
    y = np.concatenate([y, np.zeros(4000, np.float32)])  # zero padding: -100 dB unfloored
    assert extract(y, resolve_spec(base)).min() < -99
    floored = extract(y, spec)
    np.testing.assert_allclose(floored.min(), floored.max() - 80.0, rtol=1e-5)
    with pytest.raises(ValueError, match="top_db"):
        resolve_spec({**base, "top_db": 0})


def test_utterance_norm_standardises_valid_frames_only(rng) -> None:
    x = rng.normal(3.0, 2.0, (2, T, C, D, 1)).astype(np.float32)
    mask = np.array([[True] * T, [True, True, True, False, False]])
    for mode in ("mean", "meanvar"):
        y = np.asarray(UtteranceNorm(mode)(x, mask))
        for i, n in enumerate((T, 3)):
            valid = y[i, :n].reshape(-1, D)
            np.testing.assert_allclose(valid.mean(0), 0.0, atol=1e-4)
            if mode == "meanvar":
                np.testing.assert_allclose(valid.std(0), 1.0, atol=1e-3)
            else:
                ref = x[i, :n].reshape(-1, D)
                np.testing.assert_allclose(valid, ref - ref.mean(0), atol=1e-4)
        assert not y[1, 3:].any()
    with pytest.raises(ValueError, match="mode"):
        UtteranceNorm("max")


@pytest.mark.parametrize(
    ("architecture", "hparams"),
    [
        ("lstm", {"rnn_units": 4, "utterance_norm": "meanvar", "pooling": "attention"}),
        ("cnn_lstm", {"feature_channels": 3, "conv_filters": [4], "rnn_units": 4}),
        ("cnn2d", {"feature_channels": 3, "conv_filters": [4], "utterance_norm": "mean"}),
        ("cnn3d", {"feature_channels": 3, "conv_filters": [4], "utterance_norm": "mean"}),
    ],
)
def test_new_options_save_and_reload_with_identical_outputs(
    tmp_path: Path, rng, architecture: str, hparams: dict
) -> None:
    layout = "3d" if architecture == "cnn3d" else "2d"
    row = (1, T, C, D) if layout == "3d" else (T, 1, C, D)
    mean, var = np.zeros(D, np.float32), np.ones(D, np.float32)
    model = build_model(architecture, row, layout, TASKS, mean, var, **hparams)
    inputs = {
        FEATURES: rng.standard_normal((3, *row)).astype(np.float32),
        N_VALID: np.array([T, 3, 1], np.int32),
    }
    if hparams.get("feature_channels") == 3:
        assert model.get_layer("feature_channels").output.shape[-2:] == (D // 3, 3)
    before = model.predict_on_batch(inputs)["emotion"]
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(loaded.predict_on_batch(inputs)["emotion"], before, atol=1e-6)
    # padding windows never matter, with per-utterance statistics too
    changed = {**inputs, FEATURES: inputs[FEATURES].copy()}
    if layout == "3d":
        changed[FEATURES][1, :, 3:] = 99.0
    else:
        changed[FEATURES][1, 3:] = 99.0
    np.testing.assert_allclose(model.predict_on_batch(changed)["emotion"], before, atol=1e-5)


def test_feature_channels_must_divide_the_dimensions() -> None:
    mean, var = np.zeros(D, np.float32), np.ones(D, np.float32)
    with pytest.raises(ValueError, match="divisible"):
        build_model("cnn2d", (T, 1, C, D), "2d", TASKS, mean, var, feature_channels=4)


def test_mixup_mixes_features_labels_and_weights_alike(rng) -> None:
    n = 8
    feat = rng.standard_normal((n, T, 1, C, D)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32)
    tasks = [*TASKS, {"name": "arousal", "type": "continuous"}]
    inputs = {FEATURES: feat, N_VALID: np.arange(1, n + 1, dtype=np.int32) % T + 1}
    targets = {"emotion": labels, "arousal": rng.standard_normal((n, 1)).astype(np.float32)}
    weights = {"emotion": np.array([1, 2, 3, 1, 2, 3, 1, 2], np.float32), "arousal": np.ones(n)}
    x, y, w = mixup(inputs, targets, weights, tasks, np.random.default_rng(5), alpha=0.4)
    soft = y["emotion"]
    assert soft.shape == (n, 3)
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-6)
    draw = np.random.default_rng(5)  # the same draws: lam per example, then the partners
    lam = draw.beta(0.4, 0.4, n)
    lam = np.maximum(lam, 1 - lam)
    perm = draw.permutation(n)
    assert (lam >= 0.5).all()  # each example keeps its own identity
    for i in range(n):
        k, j = lam[i], perm[i]
        np.testing.assert_allclose(x[FEATURES][i], k * feat[i] + (1 - k) * feat[j], atol=1e-5)
        expected = np.eye(3)[labels[i]] * k + np.eye(3)[labels[j]] * (1 - k)
        np.testing.assert_allclose(soft[i], expected, atol=1e-5)
        np.testing.assert_allclose(
            w["emotion"][i], k * weights["emotion"][i] + (1 - k) * weights["emotion"][j], rtol=1e-5
        )
        np.testing.assert_allclose(
            y["arousal"][i], k * targets["arousal"][i] + (1 - k) * targets["arousal"][j], rtol=1e-5
        )
        assert x[N_VALID][i] == max(inputs[N_VALID][i], inputs[N_VALID][j])


def test_soft_targets_give_the_mixture_of_the_losses(rng) -> None:
    probs = rng.dirichlet(np.ones(3), 6).astype(np.float32)
    a, b = np.array([0, 1, 2, 0, 1, 2]), np.array([1, 1, 0, 2, 2, 0])
    lam = rng.uniform(0.5, 1, 6).astype(np.float32)
    soft = lam[:, None] * np.eye(3)[a] + (1 - lam[:, None]) * np.eye(3)[b]
    loss = task_loss(TASKS[0], {**TRAINING_DEFAULTS, "mixup": 0.2})
    assert isinstance(loss, SparseFocalLoss)
    mixed = np.asarray(loss.call(soft.astype(np.float32), probs))
    ce = -np.log(probs)
    np.testing.assert_allclose(mixed, lam * ce[np.arange(6), a] + (1 - lam) * ce[np.arange(6), b])
    sparse = np.asarray(loss.call(a.reshape(-1, 1), probs))  # validation batches stay sparse
    np.testing.assert_allclose(sparse, ce[np.arange(6), a], rtol=1e-6)
    alpha = SparseFocalLoss(3, gamma=0.0, alpha=[1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        np.asarray(alpha.call(soft.astype(np.float32), probs)),
        (soft * ce).sum(1) * (soft @ np.array([1.0, 2.0, 3.0])),
        rtol=1e-5,
    )


def test_weight_average_swaps_in_and_out(rng) -> None:
    mean, var = np.zeros(D, np.float32), np.ones(D, np.float32)
    model = build_model("lstm", (T, 1, C, D), "2d", TASKS, mean, var, rnn_units=4)
    compile_model(model, TASKS, {**TRAINING_DEFAULTS, "ema": 0.9})
    inputs = {
        FEATURES: rng.standard_normal((8, T, 1, C, D)).astype(np.float32),
        N_VALID: np.full(8, T, np.int32),
    }
    for _ in range(3):
        model.train_on_batch(inputs, {"emotion": rng.integers(0, 3, 8).astype(np.int32)})
    trained = [w.copy() for w in model.get_weights()]
    swap_average(model)
    averaged = model.get_weights()
    assert any(not np.allclose(p, q) for p, q in zip(trained, averaged, strict=True))
    swap_average(model)
    for p, q in zip(trained, model.get_weights(), strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("validation_fraction", [0.0, 0.34])
def test_training_with_mixup_and_weight_average_runs_end_to_end(
    tmp_path: Path, validation_fraction: float
) -> None:
    from deepser.models.saving import load_model
    from deepser.training.train import train

    from ..helpers import skewed_db

    db = skewed_db(tmp_path / "skew.h5")
    experiment = {
        "model": {"architecture": "lstm", "rnn_units": 4, "dense_units": 0},
        "training": {
            "epochs": 2,
            "validation_fraction": validation_fraction,
            "mixup": 0.4,
            "ema": 0.9,
            "seed": 3,
        },
    }
    record = train(db, experiment, 0, tmp_path / "out")
    assert record.epochs_run == 2
    model = load_model(tmp_path / "out" / "model.keras")
    assert model.count_params() == record.n_parameters
