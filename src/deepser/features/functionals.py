"""Utterance-level functionals: statistics of frame-level descriptors, one vector per utterance.

The descriptors (LLDs) are log-mel bands, MFCCs, log energy, spectral centroid, bandwidth,
roll-off, flatness and contrast, zero-crossing rate, and their deltas; the fundamental frequency
comes from probabilistic YIN on voiced frames. Frames more than ``activity_db`` below the
utterance's loudest frame are left out, so leading or trailing silence and padding do not count.
Every descriptor gets :data:`STATISTICS`; log F0 and its frame-to-frame change get them too, and
two ratios close the vector (active frames, voiced among active frames).

The original toolkit had no functional feature sets ("time-series only"); with speaker-level
normalisation they are the strongest input on EmoDB (README, "EmoDB results").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deepser.features.spectral import mel_filterbank, to_db

STATISTICS = (
    "mean",
    "std",
    "min",
    "max",
    "p10",
    "p50",
    "p90",
    "p90-p10",
    "p75-p25",
    "skewness",
    "kurtosis",
    "slope",
)
CONTRAST_FMIN = 200.0  # librosa's spectral contrast: octave bands from 200 Hz
SCALAR_LLDS = ("log_energy", "centroid_khz", "bandwidth_khz", "rolloff_khz", "log_flatness")


def statistics(x: np.ndarray) -> np.ndarray:
    """:data:`STATISTICS` of each row of ``x`` (rows, frames) over its frames, flattened
    statistic-major: all rows' means, then all rows' standard deviations, ..."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] < 3:  # too few frames for shape statistics: repeat what there is
        x = np.repeat(x if x.shape[1] else np.zeros((x.shape[0], 1)), 3, axis=1)
    mean = x.mean(1)
    centred = x - mean[:, None]
    var = (centred**2).mean(1)
    std = np.sqrt(var)
    safe = np.where(var > 1e-12 * np.maximum(mean**2, 1.0), var, np.nan)
    skew = np.nan_to_num((centred**3).mean(1) / safe**1.5)
    kurt = np.nan_to_num((centred**4).mean(1) / safe**2 - 3.0)
    t = np.arange(x.shape[1]) - (x.shape[1] - 1) / 2.0
    slope = centred @ t / (t @ t)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90], axis=1)
    stats = (mean, std, x.min(1), x.max(1), p10, p50, p90, p90 - p10, p75 - p25, skew, kurt, slope)
    return np.concatenate(stats)


def contrast_bands(sample_rate: int) -> int:
    """Octave bands of spectral contrast below the Nyquist frequency: 6 from 12.8 kHz up."""
    bands = 1
    while bands < 6 and CONTRAST_FMIN * 2.0**bands < sample_rate / 2:
        bands += 1
    return bands


def pitch_frame_length(sample_rate: int) -> int:
    """pYIN frame: the power of two nearest above 64 ms (1024 samples at 16 kHz)."""
    return 1 << int(np.ceil(np.log2(0.064 * sample_rate)))


def descriptor_names(spec: Mapping[str, Any]) -> list[str]:
    """Names of the frame-level descriptors, in the order of :func:`descriptors` rows."""
    return (
        [f"logmel{k}" for k in range(spec["n_mels"])]
        + [f"mfcc{k}" for k in range(spec["n_mfcc"])]
        + list(SCALAR_LLDS)
        + [f"contrast{k}" for k in range(contrast_bands(spec["sample_rate"]) + 1)]
        + ["zcr"]
    )


def feature_names(spec: Mapping[str, Any]) -> list[str]:
    """The name of every dimension of the functionals vector (e.g. ``mfcc3_d1.p90``)."""
    llds = descriptor_names(spec)
    groups = [llds] + [[f"{n}_d{k}" for n in llds] for k in range(1, spec["deltas"] + 1)]
    groups += [["log_f0"], ["log_f0_change"]]
    names = [f"{n}.{s}" for group in groups for s in STATISTICS for n in group]
    return names + ["active_ratio", "voiced_ratio"]


def descriptors(
    y: np.ndarray, power: np.ndarray, spec: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-level descriptors (rows, frames) and the frame energy in dB, from ``power``
    (frames, bins), the power spectrogram of ``y``."""
    import librosa

    sr = spec["sample_rate"]
    bands = contrast_bands(sr)
    fb = mel_filterbank(sr, spec["n_fft"], spec["n_mels"], spec["fmin"], spec["fmax"])
    log_mel = to_db(power @ fb).T  # (mels, frames)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=spec["n_mfcc"])
    mag = np.sqrt(power.T)
    energy_db = to_db(power.mean(1))
    n = power.shape[0]
    # centred frames of win_length: frame t is centred on sample t * hop, as the STFT's
    zcr = librosa.feature.zero_crossing_rate(
        y, frame_length=spec["win_length"], hop_length=spec["hop_length"], center=True
    )[:, :n]
    zcr = np.pad(zcr, ((0, 0), (0, n - zcr.shape[1])), mode="edge")
    rows = [
        log_mel,
        mfcc,
        energy_db[None] * (np.log(10.0) / 10.0),  # natural log of the mean power
        librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=spec["n_fft"]) / 1000.0,
        librosa.feature.spectral_bandwidth(S=mag, sr=sr, n_fft=spec["n_fft"]) / 1000.0,
        librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=spec["n_fft"]) / 1000.0,
        np.log(librosa.feature.spectral_flatness(S=mag) + 1e-10),
        librosa.feature.spectral_contrast(
            S=mag, sr=sr, n_fft=spec["n_fft"], fmin=CONTRAST_FMIN, n_bands=bands
        ),
        zcr,
    ]
    return np.vstack(rows), energy_db


def log_f0(y: np.ndarray, n_frames: int, spec: Mapping[str, Any]) -> np.ndarray:
    """Log F0 per frame by probabilistic YIN, NaN where unvoiced; ``n_frames`` long."""
    import librosa

    f0, voiced, _ = librosa.pyin(
        np.asarray(y, dtype=np.float32),
        fmin=spec["f0_min"],
        fmax=spec["f0_max"],
        sr=spec["sample_rate"],
        frame_length=pitch_frame_length(spec["sample_rate"]),
        hop_length=spec["hop_length"],
    )
    out = np.full(n_frames, np.nan)
    m = min(n_frames, len(f0))
    out[:m] = np.where(voiced[:m], np.log(f0[:m]), np.nan)
    return out


def functionals(y: np.ndarray, power: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """The functionals vector of waveform ``y`` as one (1, dims) float32 row (see the module)."""
    import librosa

    lld, energy_db = descriptors(y, power, spec)
    active = energy_db > energy_db.max() - spec["activity_db"]
    parts = [statistics(lld[:, active])]
    for order in range(1, spec["deltas"] + 1):
        mode = "interp" if lld.shape[1] >= 5 else "nearest"
        delta = librosa.feature.delta(lld, order=order, width=5, mode=mode)
        parts.append(statistics(delta[:, active]))
    f0 = log_f0(y, lld.shape[1], spec)[active]
    voiced = f0[np.isfinite(f0)]
    if len(voiced) < 3:  # (almost) nothing voiced: a neutral 120 Hz contour
        voiced = np.full(3, np.log(120.0))
    parts += [statistics(voiced[None]), statistics(np.diff(voiced)[None])]
    parts.append(np.array([active.mean(), np.isfinite(f0).mean()]))
    return np.nan_to_num(np.concatenate(parts)).astype(np.float32)[None]
