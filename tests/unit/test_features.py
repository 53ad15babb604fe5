"""Each feature type against a direct librosa computation; lengths; too-short audio."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from sklearn.decomposition import PCA

from deepser.errors import FeatureError
from deepser.features.registry import extract, min_samples, parse_length, resolve_spec

from ..helpers import tone

SR = 16000


@pytest.fixture
def y() -> np.ndarray:
    return tone(1.3, SR) * np.linspace(0.2, 1.0, int(1.3 * SR), dtype=np.float32)


def test_parse_length() -> None:
    assert parse_length("25ms", 16000) == 400
    assert parse_length("10ms", 22050) == 220
    assert parse_length("0.5s", 16000) == 8000
    assert parse_length(512, 16000) == 512
    assert parse_length("512", 16000) == 512
    with pytest.raises(ValueError, match="cannot read the length"):
        parse_length("25 msec", 16000)


def test_resolve_spec_is_explicit() -> None:
    spec = resolve_spec({"type": "logmel", "sample_rate": 16000})
    assert spec == {
        "type": "logmel",
        "sample_rate": 16000,
        "win_length": 400,
        "hop_length": 160,
        "n_fft": 512,
        "window": "hann",
        "center": True,
        "pad_mode": "constant",
        "n_mels": 40,
        "fmin": 0.0,
        "fmax": 8000.0,
    }
    with pytest.raises(ValueError, match="Nyquist"):
        resolve_spec({"type": "mel", "sample_rate": 8000, "fmax": 8000})
    with pytest.raises(ValueError, match="longer than n_fft"):
        resolve_spec({"type": "logspec", "sample_rate": 16000, "win": 600, "n_fft": 512})


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_logmel_matches_librosa(y: np.ndarray, pad_mode: str) -> None:
    spec = resolve_spec({"type": "logmel", "sample_rate": SR, "n_mels": 64, "pad_mode": pad_mode})
    ours = extract(y, spec)
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=SR,
        n_fft=512,
        hop_length=160,
        win_length=400,
        window="hann",
        center=True,
        pad_mode=pad_mode,
        power=2.0,
        n_mels=64,
        fmin=0.0,
        fmax=8000.0,
    )
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == ref.shape == (1 + len(y) // 160, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_original_mel_matches_librosa(y: np.ndarray) -> None:
    # The original's mel: linear power, n_fft 512, hop 512, 80 bands, fmax 8 kHz, reflect padding.
    spec = resolve_spec({"type": "mel", "sample_rate": 22050, "pad_mode": "reflect"})
    ours = extract(y, spec)
    ref = librosa.feature.melspectrogram(
        y=y, sr=22050, n_fft=512, hop_length=512, n_mels=80, fmax=8000, pad_mode="reflect"
    ).T
    assert ours.shape == ref.shape and ours.shape[1] == 80
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=1e-6 * ref.max())


def test_logspec_matches_librosa(y: np.ndarray) -> None:
    spec = resolve_spec({"type": "logspec", "sample_rate": SR, "top_db": 80})
    ours = extract(y, spec)
    power = np.abs(librosa.stft(y, n_fft=512, hop_length=128)) ** 2
    ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80).T
    assert ours.shape == ref.shape == (1 + len(y) // 128, 257)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_pca_logspec_matches_sklearn(y: np.ndarray) -> None:
    spec = resolve_spec({"type": "pca_logspec", "sample_rate": SR, "n_components": 20})
    ours = extract(y, spec)
    power = np.abs(librosa.stft(y, n_fft=512, hop_length=128)) ** 2
    logspec = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).T
    ref = PCA(n_components=20, whiten=True).fit_transform(logspec)
    assert ours.shape == ref.shape == (logspec.shape[0], 20)
    # whitened: unit variance per component; equal to sklearn's up to float32 rounding
    np.testing.assert_allclose(ours.std(axis=0, ddof=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), atol=5e-3)


def test_raw_is_the_waveform(y: np.ndarray) -> None:
    feat = extract(y, resolve_spec({"type": "raw", "sample_rate": SR}))
    assert feat.shape == (len(y), 1)
    np.testing.assert_array_equal(feat[:, 0], y)


@pytest.mark.parametrize("ftype", ["logmel", "mel", "logspec", "pca_logspec"])
def test_too_short_audio_is_an_error_not_an_empty_feature(ftype: str) -> None:
    spec = resolve_spec({"type": ftype, "sample_rate": SR})
    with pytest.raises(FeatureError):
        extract(np.zeros(min_samples(spec) - 1, dtype=np.float32), spec)
    with pytest.raises(FeatureError):
        extract(np.zeros(0, dtype=np.float32), resolve_spec({"type": "raw", "sample_rate": SR}))


def test_pca_needs_enough_frames() -> None:
    spec = resolve_spec({"type": "pca_logspec", "sample_rate": SR})  # 60 components
    with pytest.raises(FeatureError, match="fewer than n_components"):
        extract(tone(0.3, SR), spec)  # about 38 frames
