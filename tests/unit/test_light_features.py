"""The recogniser's feature path without librosa or scipy (the light install): the mel
filters equal librosa's, and numpy's FFT gives the same log-mel features as scipy's."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

import deepser.features.spectral as spectral
from deepser.features.registry import extract, resolve_spec


@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmin, fmax",
    [
        (16000, 512, 40, 0.0, 8000.0),
        (22050, 512, 80, 0.0, 8000.0),
        (16000, 400, 64, 50.0, 7600.0),
        (8000, 256, 128, 20.0, 4000.0),
        (44100, 2048, 26, 300.0, 11000.0),
    ],
)
def test_mel_filters_equal_librosas(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
    ours = spectral.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).T
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_slaney_mel_scale_round_trips_and_matches_librosa() -> None:
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
    np.testing.assert_allclose(spectral.hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    np.testing.assert_allclose(spectral.mel_to_hz(spectral.hz_to_mel(hz)), hz, atol=1e-9)


def test_log_mel_with_numpys_fft_equals_scipys(monkeypatch) -> None:
    """Without scipy the FFT is numpy's: the features change by far less than the model's
    outputs are checked to (1e-4)."""
    spec = resolve_spec({"type": "logmel", "sample_rate": 16000})
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    with_scipy = extract(y, spec)
    monkeypatch.setattr(spectral, "_rfft", lambda: np.fft.rfft)
    with_numpy = extract(y, spec)
    assert np.abs(with_numpy - with_scipy).max() < 1e-3  # dB
