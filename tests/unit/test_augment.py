"""Waveform augmentation: speed, pitch, noise at a chosen SNR; seeded copies; ids."""

from __future__ import annotations

import numpy as np
import pytest

from deepser.features.augment import (
    add_noise,
    augmented_id,
    change_speed,
    copy_rng,
    is_augmented,
    perturb,
    shift_pitch,
    source_id,
    waveform_config,
)

from ..helpers import tone

SR = 16000


def dominant_hz(y: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sr)[spectrum.argmax()])


def test_speed_changes_duration_and_pitch_together() -> None:
    y = tone(1.0, SR, 300.0)
    fast = change_speed(y, SR, 1.25)
    assert fast.size == pytest.approx(y.size / 1.25, rel=0.01)
    assert dominant_hz(fast) == pytest.approx(300 * 1.25, rel=0.02)


def test_pitch_shift_keeps_duration() -> None:
    y = tone(1.0, SR, 300.0)
    up = shift_pitch(y, SR, 12.0)  # one octave
    assert up.size == y.size
    assert dominant_hz(up) == pytest.approx(600, rel=0.03)


@pytest.mark.parametrize("snr", [0.0, 10.0, 30.0])
def test_noise_is_added_at_the_requested_snr(snr: float) -> None:
    y = tone(2.0, SR, 200.0)
    noisy = add_noise(y, snr, np.random.default_rng(0))
    noise = noisy - y
    measured = 10 * np.log10(np.mean(y**2) / np.mean(noise**2))
    assert measured == pytest.approx(snr, abs=0.2)


def test_copies_are_seeded_by_utterance_and_copy() -> None:
    cfg = waveform_config({"speed": [0.9, 1.1], "noise_snr_db": [10, 20], "seed": 4})
    y = tone(0.5, SR, 220.0)
    a = perturb(y, SR, cfg, copy_rng("spk1/utt1", 1, 4))
    b = perturb(y, SR, cfg, copy_rng("spk1/utt1", 1, 4))
    c = perturb(y, SR, cfg, copy_rng("spk1/utt1", 2, 4))
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_augmented_ids_round_trip() -> None:
    ids = ["a/b", augmented_id("a/b", 1), augmented_id("x#aug", 12), "aug3"]
    assert is_augmented(ids).tolist() == [False, True, True, False]
    assert source_id(ids[1]) == "a/b" and source_id(ids[2]) == "x#aug"


def test_config_errors_are_clear() -> None:
    assert waveform_config(None) is None
    with pytest.raises(ValueError, match="at least one of"):
        waveform_config({"copies": 2})
    with pytest.raises(ValueError, match=r"augment\.speed"):
        waveform_config({"speed": [1.2, 0.8]})
