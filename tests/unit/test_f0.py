"""The F0 trackers of the functionals (``f0_method``): the fast YIN tracker on signals of known
pitch, silence and noise; which tracker a spec means, stored specs without the option included;
the ``none`` method's shorter vector; the faster statistics and deltas equal to the references."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from deepser.features.functionals import (
    F0_METHODS,
    STATISTICS,
    deltas,
    f0_method,
    feature_names,
    log_f0,
    pitch_frame_length,
    spectral_shape,
    yin_f0,
)
from deepser.features.registry import extract, resolve_spec
from deepser.features.spectral import power_spectrogram

from ..helpers import noise, tone, voiced

SR = 16000


def spec(**overrides) -> dict:
    return resolve_spec({"type": "functionals", "sample_rate": SR, **overrides})


def track(y: np.ndarray, sr: int = SR) -> np.ndarray:
    return yin_f0(
        y, sr, fmin=60.0, fmax=600.0, frame_length=pitch_frame_length(sr), hop_length=sr // 100
    )


@pytest.mark.parametrize("f0", [85.0, 140.0, 220.0, 410.0])
def test_yin_finds_the_f0_of_a_harmonic_tone(f0: float) -> None:
    f = track(tone(1.0, SR, freq=f0))
    assert len(f) == 1 + SR // 160
    inner = f[10:-10]  # away from the zero padding at the ends
    assert np.isfinite(inner).mean() > 0.95
    assert np.nanmedian(inner) == pytest.approx(f0, rel=0.02)
    assert np.nanmax(np.abs(inner / f0 - 1)) < 0.05


def test_yin_follows_a_glide_at_another_sample_rate() -> None:
    y = voiced(1.0, sr=8000, f0=180.0)  # 180 Hz * (1 +- 0.1), 3 Hz vibrato
    f = track(y, sr=8000)
    inner = f[10:-10]
    assert np.isfinite(inner).mean() > 0.9
    assert 160 < np.nanmin(inner) and np.nanmax(inner) < 200
    assert np.nanmean(np.log(inner)) == pytest.approx(np.log(180.0), abs=0.03)


def test_yin_marks_silence_and_noise_unvoiced() -> None:
    assert np.isnan(track(np.zeros(SR, dtype=np.float32))).all()
    assert np.isnan(track(noise(1.0, level=0.1))).mean() > 0.95
    # a tone between silence and noise: voiced in the tone only
    y = np.concatenate([np.zeros(SR // 2), tone(0.5, SR, freq=200.0), noise(0.5, level=0.05)])
    f = track(y.astype(np.float32))
    assert np.isnan(f[:40]).all()
    assert np.isfinite(f[55:95]).all()
    assert np.isnan(f[110:]).mean() > 0.9


def test_spec_f0_method_default_and_stored_specs() -> None:
    new = spec()
    assert new["f0_method"] == "yin" and f0_method(new) == "yin"
    assert spec(f0_method="pyin")["f0_method"] == "pyin"
    # a spec stored before the option existed (databases, bundles) means pYIN
    old = {k: v for k, v in new.items() if k != "f0_method"}
    assert f0_method(old) == "pyin"
    with pytest.raises(ValueError, match="f0_method must be one of"):
        spec(f0_method="crepe")
    assert set(F0_METHODS) == {"yin", "pyin", "none"}


def test_stored_spec_without_f0_method_computes_pyin() -> None:
    y = voiced(0.6, f0=150.0)
    old = {k: v for k, v in spec().items() if k != "f0_method"}
    np.testing.assert_array_equal(extract(y, old), extract(y, spec(f0_method="pyin")))
    n = power_spectrogram(y, old).shape[0]
    f0, flag, _ = librosa.pyin(y, fmin=60.0, fmax=600.0, sr=SR, frame_length=1024, hop_length=160)
    want = np.where(flag, np.log(f0), np.nan)[:n]
    np.testing.assert_array_equal(log_f0(y, n, old), want)


def test_yin_and_pyin_agree_on_a_voiced_signal() -> None:
    y = voiced(1.0, f0=150.0)
    values = {
        m: dict(
            zip(feature_names(spec(f0_method=m)), extract(y, spec(f0_method=m))[0], strict=True)
        )
        for m in ("yin", "pyin")
    }
    assert values["yin"]["log_f0.mean"] == pytest.approx(values["pyin"]["log_f0.mean"], abs=0.02)
    assert values["yin"]["voiced_ratio"] > 0.9 and values["pyin"]["voiced_ratio"] > 0.9
    same = [n for n in values["yin"] if "f0" not in n and n != "voiced_ratio"]
    assert all(values["yin"][n] == values["pyin"][n] for n in same)


def test_none_leaves_out_the_f0_part() -> None:
    s = spec(f0_method="none")
    names = feature_names(s)
    assert not any("f0" in n or n == "voiced_ratio" for n in names)
    assert len(names) == len(feature_names(spec())) - 2 * len(STATISTICS) - 1
    y = voiced(0.5)
    vector = extract(y, s)
    assert vector.shape == (1, len(names))
    full = dict(zip(feature_names(spec()), extract(y, spec())[0], strict=True))
    np.testing.assert_array_equal(vector[0], [full[n] for n in names])


def test_fast_deltas_and_spectral_shape_equal_librosa(rng: np.random.Generator) -> None:
    x = rng.standard_normal((7, 40)).astype(np.float32)
    for order in (1, 2):
        want = librosa.feature.delta(x, order=order, width=5, mode="interp")
        np.testing.assert_allclose(deltas(x, order), want, rtol=1e-5, atol=1e-5)
    mag = np.abs(rng.standard_normal((257, 30))).astype(np.float32)
    mag[:, 3] = 0.0  # a silent frame
    want = [
        librosa.feature.spectral_centroid(S=mag, sr=SR, n_fft=512) / 1000.0,
        librosa.feature.spectral_bandwidth(S=mag, sr=SR, n_fft=512) / 1000.0,
        librosa.feature.spectral_rolloff(S=mag, sr=SR, n_fft=512) / 1000.0,
        np.log(librosa.feature.spectral_flatness(S=mag) + 1e-10),
    ]
    for got, ref in zip(spectral_shape(mag, SR, 512), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
