"""Audio degradations for robustness: noise at an SNR, telephone, Vorbis, gain, room."""

from __future__ import annotations

import numpy as np
import pytest

from deepser.corpus.degrade import (
    DEFAULT_CONDITIONS,
    Condition,
    condition_problems,
    degrade,
    parse_condition,
    utterance_seed,
)

SR = 16000
BURSTS = [(0.2, 0.5), (0.7, 1.1), (1.3, 1.8)]  # seconds; on 20 ms frame boundaries


def speech_like(sr: int = SR, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonic bursts (f0 glide, 10 ms ramps) separated by near-silence (-70 dBFS noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(150 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / sr
    voice = sum(0.3 / k * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 15))
    envelope = np.zeros_like(t)
    for a, b in BURSTS:
        ramp = np.clip(np.minimum(t - a, b - t) / 0.01, 0, 1)
        envelope = np.maximum(envelope, ramp)
    y = voice * envelope + 10 ** (-70 / 20) * rng.standard_normal(t.size)
    return y.astype(np.float32)


def bursts_mask(n: int, sr: int = SR) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for a, b in BURSTS:
        mask[round(a * sr) : round(b * sr)] = True
    return mask


def measured_snr(y: np.ndarray, out: np.ndarray) -> float:
    active = bursts_mask(y.size)
    noise = out.astype(np.float64) - y
    return float(10 * np.log10(np.mean(y[active] ** 2.0) / np.mean(noise[active] ** 2)))


def band_energy(y: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / sr)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


@pytest.mark.parametrize("snr", [10.0, 0.0])
def test_noise_snr_is_measured_over_the_active_part(snr: float) -> None:
    y = speech_like()
    out = degrade(y, SR, f"snr{snr:g}dB", seed=3)
    assert measured_snr(y, out) == pytest.approx(snr, abs=0.5)
    # over the whole signal the pauses count too: the SNR would read lower
    whole = 10 * np.log10(np.mean(y.astype(float) ** 2) / np.mean((out - y.astype(float)) ** 2))
    assert whole < snr - 1


def test_leading_silence_does_not_change_the_noise_level() -> None:
    y = speech_like()
    padded = np.concatenate([np.zeros(SR, dtype=np.float32), y, np.zeros(SR, dtype=np.float32)])
    noise = degrade(y, SR, "snr10dB", seed=1) - y
    noise_padded = degrade(padded, SR, "snr10dB", seed=1) - padded
    ratio_db = 10 * np.log10(np.mean(noise_padded**2.0) / np.mean(noise**2.0))
    assert abs(ratio_db) < 0.5


def test_noise_is_pink_and_deterministic() -> None:
    y = speech_like()
    a = degrade(y, SR, "snr10dB", seed=5)
    assert np.array_equal(a, degrade(y, SR, "snr10dB", seed=5))
    b = degrade(y, SR, "snr10dB", seed=6)
    noise_a, noise_b = a - y, b - y
    assert np.corrcoef(noise_a, noise_b)[0, 1] < 0.1
    # 1/f: equal power per octave (white noise would have 10 dB more in 1-2 kHz than 100-200 Hz)
    low, high = band_energy(noise_a, 100, 200), band_energy(noise_a, 1000, 2000)
    assert abs(10 * np.log10(high / low)) < 1.5


def test_noise_on_silence_leaves_it_unchanged() -> None:
    out = degrade(np.zeros(SR, dtype=np.float32), SR, "snr0dB", seed=0)
    assert out.dtype == np.float32 and np.all(out == 0)


def test_telephone_keeps_only_the_telephone_band() -> None:
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)  # broadband
    out = degrade(y, SR, "telephone")
    drop = {
        band: 10 * np.log10(band_energy(y, *band) / band_energy(out, *band))
        for band in [(4000, 8000), (0, 200), (800, 3000)]
    }
    assert drop[(4000, 8000)] > 30
    assert drop[(0, 200)] > 15
    assert abs(drop[(800, 3000)]) < 1.5  # the pass band is kept (mu-law adds little noise)


def test_telephone_quantises_to_mu_law_levels() -> None:
    y = speech_like(sr=8000)  # at 8 kHz no resampling: the mu-law grid shows in the output
    out = degrade(y, 8000, "telephone").astype(np.float64)
    code = np.sign(out) * np.log1p(255 * np.abs(out)) / np.log1p(255)
    steps = (code + 1) * 127.5
    assert np.abs(steps - np.round(steps)).max() < 1e-3
    assert np.unique(np.round(steps)).size <= 256


def test_vorbis_round_trip() -> None:
    t = np.arange(2 * SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)).astype(np.float32)
    out = degrade(y, SR, "vorbis")
    assert out.shape == y.shape and out.dtype == np.float32
    assert np.corrcoef(y, out)[0, 1] > 0.9
    assert not np.array_equal(out, y)
    # a lower quality loses more
    low = degrade(y, SR, "vorbis-q0")
    assert np.mean((low - y) ** 2) > np.mean((out - y) ** 2)


def test_gain() -> None:
    y = speech_like()
    quiet = degrade(y, SR, "gain-20dB")
    rms = np.sqrt(np.mean(y.astype(float) ** 2))
    assert np.sqrt(np.mean(quiet.astype(float) ** 2)) == pytest.approx(0.1 * rms, rel=0.01)
    loud = degrade(y, SR, "gain+20dB")
    assert loud.max() == 1.0 and loud.min() == -1.0
    assert np.mean(np.abs(loud) == 1.0) > 0.1  # saturated, not rescaled


def test_room_keeps_rms_and_decays_at_the_rt60() -> None:
    y = speech_like()
    out = degrade(y, SR, "rt60-0.5s", seed=2)
    rms = np.sqrt(np.mean(y.astype(float) ** 2))
    assert np.sqrt(np.mean(out.astype(float) ** 2)) == pytest.approx(rms, rel=0.01)
    assert np.corrcoef(y, out)[0, 1] < 0.95  # reverberant, not a copy

    impulse = np.zeros(2 * SR, dtype=np.float32)
    impulse[0] = 1.0
    h = degrade(impulse, SR, "rt60-0.5s", seed=2).astype(np.float64)
    edc = np.cumsum((h**2)[::-1])[::-1]  # Schroeder backward integral
    edc_db = 10 * np.log10(edc / edc[0] + 1e-30)
    fit = (edc_db <= -5) & (edc_db >= -35)  # T30: past the direct path
    slope = np.polyfit(np.flatnonzero(fit) / SR, edc_db[fit], 1)[0]  # dB per second
    assert -60 / slope == pytest.approx(0.5, rel=0.25)
    assert not np.array_equal(h, degrade(impulse, SR, "rt60-0.5s", seed=3))


@pytest.mark.parametrize("sr", [8000, 16000, 44100])
def test_every_default_condition_gives_float32_of_the_same_length(sr: int) -> None:
    y = speech_like(sr=sr, seconds=0.6)
    for name in DEFAULT_CONDITIONS:
        out = degrade(y, sr, name, seed=1)
        assert out.dtype == np.float32 and out.shape == y.shape, name
        assert np.all(np.isfinite(out)), name
        assert not np.array_equal(out, y), name
        silent = degrade(np.zeros_like(y), sr, name, seed=1)
        assert silent.shape == y.shape and np.all(np.isfinite(silent)), name


def test_parse_condition() -> None:
    assert parse_condition("snr-5dB") == Condition("snr-5dB", "snr", -5.0)
    assert parse_condition("gain+20dB").value == 20.0
    assert parse_condition("rt60-0.5s") == Condition("rt60-0.5s", "rt60", 0.5)
    assert parse_condition("vorbis").value is None
    assert parse_condition("vorbis-q0.2").value == 0.2
    assert parse_condition("telephone").kind == "telephone"
    assert parse_condition("snr10dB").describe() == "pink noise at 10 dB SNR"
    for name in ["snr", "gain20", "gain20dB", "foo", "rt60-0s", "vorbis-q2", "snr10", ""]:
        with pytest.raises(ValueError, match=rf"'{name}'.*forms: snr\{{X\}}dB"):
            parse_condition(name)


def test_condition_problems() -> None:
    assert condition_problems(list(DEFAULT_CONDITIONS)) == []
    problems = condition_problems(["snr10dB", "telephone", "snr10", "snr10.0dB", "telephone"])
    assert len(problems) == 3
    assert problems[0].startswith("robustness.conditions[2]: 'snr10' is not a condition (forms:")
    assert "robustness.conditions[3]" in problems[1] and "repeats" in problems[1]
    assert "robustness.conditions[4]: 'telephone' repeats robustness.conditions[1]" in problems[2]
    assert condition_problems("snr10dB")[0].startswith("robustness.conditions: a list")


def test_utterance_seed_is_stable() -> None:
    assert utterance_seed("spk01_anger_01", 0) == 7040505379440695714
    assert utterance_seed("spk01_anger_01", 1) != utterance_seed("spk01_anger_01", 0)
    assert utterance_seed("spk01_anger_02", 0) != utterance_seed("spk01_anger_01", 0)
