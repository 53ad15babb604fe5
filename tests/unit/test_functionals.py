"""Utterance-level functionals: the statistics against NumPy/SciPy, the descriptors against
librosa, F0 on a signal of known pitch, silence left out; then the whole workflow on them
(database rows of one window, a network, the bundle) and the recogniser on a file."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from scipy import stats

from deepser.features.functionals import STATISTICS, feature_names, statistics
from deepser.features.registry import extract, resolve_spec

from ..helpers import noise, voiced

SR = 16000


def spec(**overrides) -> dict:
    return resolve_spec({"type": "functionals", "sample_rate": SR, **overrides})


def named(vector: np.ndarray, s: dict) -> dict[str, float]:
    names = feature_names(s)
    assert vector.shape == (1, len(names))
    return dict(zip(names, vector[0].astype(float), strict=True))


def test_statistics_match_numpy_and_scipy(rng: np.random.Generator) -> None:
    x = rng.gamma(2.0, size=(3, 50)) + np.linspace(0, 1, 50)
    got = statistics(x).reshape(len(STATISTICS), 3)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90], axis=1)
    want = [
        x.mean(1),
        x.std(1),
        x.min(1),
        x.max(1),
        p10,
        p50,
        p90,
        p90 - p10,
        p75 - p25,
        stats.skew(x, axis=1),
        stats.kurtosis(x, axis=1),
        [np.polyfit(np.arange(50), row, 1)[0] for row in x],
    ]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-9, atol=1e-12)
    # constant rows have no shape: skewness and kurtosis 0, not NaN
    flat = statistics(np.full((2, 10), 3.0)).reshape(len(STATISTICS), 2)
    assert np.isfinite(flat).all() and (flat[STATISTICS.index("skewness")] == 0).all()


def test_descriptors_match_librosa_and_f0_is_the_signals() -> None:
    y = voiced(1.2, f0=180.0)
    s = spec()
    values = named(extract(y, s), s)
    assert len(values) == (40 + 20 + 5 + 7 + 1) * 3 * len(STATISTICS) + 2 * len(STATISTICS) + 2
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=SR,
        n_fft=512,
        hop_length=160,
        win_length=400,
        center=True,
        pad_mode="constant",
        n_mels=40,
    )
    log_mel = librosa.power_to_db(mel, amin=1e-10, top_db=None)
    energy = 10 * np.log10(
        np.maximum(
            np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400)) ** 2, 1e-10
        ).mean(0)
    )
    active = energy > energy.max() - 40
    for band in (0, 7, 39):
        assert values[f"logmel{band}.mean"] == pytest.approx(log_mel[band, active].mean(), abs=1e-2)
        assert values[f"logmel{band}.max"] == pytest.approx(log_mel[band, active].max(), abs=1e-2)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=20)
    assert values["mfcc1.p50"] == pytest.approx(np.median(mfcc[1, active]), abs=1e-2)
    # the glide is 180 Hz * (1 +- 0.1): the voiced log-F0 mean is log(180) within a few percent
    assert values["log_f0.mean"] == pytest.approx(np.log(180.0), abs=0.03)
    assert 0.03 < values["log_f0.std"] < 0.1
    assert values["voiced_ratio"] > 0.8 and values["active_ratio"] > 0.9


def test_descriptor_frames_line_up_with_the_stft() -> None:
    """Silence then a 3 kHz tone: energy and zero-crossing rate rise in the same frame."""
    from deepser.features.functionals import descriptor_names, descriptors
    from deepser.features.spectral import power_spectrogram

    t = np.arange(SR) / SR
    y = np.where(t >= 0.5, 0.5 * np.sin(2 * np.pi * 3000 * t), 0.0).astype(np.float32)
    s = spec()
    lld, energy_db = descriptors(y, power_spectrogram(y, s), s)
    zcr = lld[descriptor_names(s).index("zcr")]
    assert lld.shape[1] == len(energy_db) == 1 + len(y) // 160
    onset = int(np.argmax(energy_db > -60))
    assert int(np.argmax(zcr > 0)) == onset == 49  # the frame centred 10 ms before 0.5 s
    ref = librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=160)[0]
    np.testing.assert_allclose(zcr, ref)


@pytest.mark.parametrize("sr", [8000, 11025, 22050])
def test_other_sample_rates_give_the_named_vector(sr: int) -> None:
    s = resolve_spec({"type": "functionals", "sample_rate": sr})
    vector = extract(voiced(0.8, sr=sr), s)
    assert vector.shape == (1, len(feature_names(s))) and np.isfinite(vector).all()
    # librosa's octave contrast bands from 200 Hz must stay below the Nyquist frequency
    assert sum(n.startswith("contrast") for n in feature_names(s)) // 36 == (7 if sr > 12800 else 6)


def test_silence_around_speech_is_left_out() -> None:
    s = spec()
    speech = voiced(1.0, f0=150.0)
    padded = np.concatenate([noise(0.8), speech, noise(0.8)])
    a, b = named(extract(speech, s), s), named(extract(padded, s), s)
    assert b["active_ratio"] < 0.6 < a["active_ratio"]
    for key in ("logmel5.mean", "mfcc2.mean", "log_energy.max", "log_f0.mean", "log_f0.p50"):
        assert b[key] == pytest.approx(a[key], abs=0.05 * max(1.0, abs(a[key])))


def test_functionals_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="f0_min < f0_max"):
        spec(f0_min=300, f0_max=200)
    with pytest.raises(ValueError, match="n_mfcc must be between 1 and n_mels"):
        spec(n_mfcc=60)
    with pytest.raises(ValueError, match="deltas must be"):
        spec(deltas=3)
    with pytest.raises(ValueError, match="activity_db must be positive"):
        spec(activity_db=0)
    s = spec(deltas=0, n_mfcc=13, n_mels=24)
    assert extract(voiced(0.5), s).shape == (1, len(feature_names(s)))
    assert len(feature_names(s)) == (24 + 13 + 5 + 7 + 1 + 2) * len(STATISTICS) + 2
