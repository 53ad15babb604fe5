"""Spectral primitives shared by the feature types: framing, the analysis window, the power
spectrogram, mel filters and decibels (numerically equal to librosa's, float32 throughout)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from deepser.errors import FeatureError

AMIN = 1e-10  # power floor before the logarithm (librosa's power_to_db default)


def frames(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Windowed frames (n_frames, n_fft) of ``y`` as librosa.stft frames them."""
    n_fft, hop = spec["n_fft"], spec["hop_length"]
    if spec["center"]:
        y = np.pad(y, n_fft // 2, mode=spec["pad_mode"])
    if len(y) < n_fft:
        raise FeatureError(f"{len(y)} samples are fewer than one frame of {n_fft}")
    framed = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    return framed * window(spec["win_length"], n_fft)


@lru_cache(maxsize=16)
def window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded (centred) to ``n_fft``."""
    n = np.arange(win_length)
    win = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)).astype(np.float32)
    left = (n_fft - win_length) // 2
    return np.pad(win, (left, n_fft - win_length - left))


@lru_cache(maxsize=1)
def _rfft() -> Any:
    """scipy's real FFT, which keeps float32 (complex64) and is ~5x faster than numpy's here;
    numpy's in the light runtime install (deepser[runtime], no scipy). Imported on first use:
    scipy.fft takes 0.2 s to import, which every workflow invocation would pay for."""
    try:
        from scipy.fft import rfft
    except ImportError:
        from numpy.fft import rfft
    return rfft


def power_spectrogram(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """|STFT|^2 as (frames, 1 + n_fft // 2) float32."""
    spectrum = _rfft()(frames(np.asarray(y, dtype=np.float32), spec), axis=1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32)


@lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-style, area-normalised mel filters, transposed: (bins, mels). The formulas of
    ``librosa.filters.mel`` (Slaney's mel scale: linear below 1 kHz, logarithmic above),
    computed with numpy alone so that the recogniser needs no librosa."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None].astype(np.float32)
    return np.ascontiguousarray(weights.T, dtype=np.float32)


_F_SP = 200.0 / 3  # Slaney's mel scale: 3 mels per 200 Hz below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0  # ... and logarithmic above


def hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    mels = hz / _F_SP
    above = hz >= _MIN_LOG_HZ
    safe = np.where(above, hz, _MIN_LOG_HZ)
    return np.where(above, _MIN_LOG_MEL + np.log(safe / _MIN_LOG_HZ) / _LOGSTEP, mels)


def mel_to_hz(mels: float | np.ndarray) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    above = mels >= _MIN_LOG_MEL
    return np.where(above, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL)), _F_SP * mels)


def empty_mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> list[int]:
    """The mel bands of :func:`mel_filterbank` whose filter is all zero: no FFT bin falls inside
    the band (too many bands for ``n_fft``), so the feature is constant."""
    import warnings

    with warnings.catch_warnings():  # librosa's "Empty filters detected": we report them
        warnings.simplefilter("ignore", UserWarning)
        fb = mel_filterbank(int(sr), int(n_fft), int(n_mels), float(fmin), float(fmax))
    return np.flatnonzero(fb.max(axis=0) <= 0.0).tolist()


def max_mel_bands(sr: int, n_fft: int, fmin: float, fmax: float, upper: int) -> int:
    """The largest number of mel bands below ``upper`` without an empty filter (0: none), by
    bisection (empty filters appear as the bands get more numerous) checked by a step down."""
    lo, hi = 0, int(upper) - 1  # invariant: lo has no empty filter (0 trivially)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if empty_mel_filters(sr, n_fft, mid, fmin, fmax):
            hi = mid - 1
        else:
            lo = mid
    while lo > 0 and empty_mel_filters(sr, n_fft, lo, fmin, fmax):
        lo -= 1
    return lo


def to_db(power: np.ndarray, top_db: float | None = None) -> np.ndarray:
    """Power in dB (floored at :data:`AMIN`; optionally ``top_db`` below the maximum)."""
    db = 10.0 * np.log10(np.maximum(power, AMIN))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db.astype(np.float32)


DELTA_WIDTH = 9  # frames in the regression window of the delta features (librosa's default)


def with_deltas(feat: np.ndarray, order: int, width: int = DELTA_WIDTH) -> np.ndarray:
    """``feat`` (frames, D) followed by its first ``order`` delta features (librosa.feature.delta,
    ``width`` frames, edges by interpolation) along the dimension axis: (frames, D x (1 + order)),
    static first, then delta, then delta-delta. Fewer frames than ``width``: a narrower window
    (odd, at least 3); a single frame has zero deltas."""
    if order == 0:
        return feat
    import librosa

    n = feat.shape[0]
    width = min(width, n if n % 2 else n - 1)
    parts = [feat]
    for k in range(1, order + 1):
        if width < 3:
            parts.append(np.zeros_like(feat))
        else:
            parts.append(librosa.feature.delta(feat, width=width, order=k, axis=0, mode="interp"))
    return np.concatenate(parts, axis=1).astype(np.float32)
