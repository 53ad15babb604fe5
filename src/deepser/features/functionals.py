"""Utterance-level functionals: statistics of frame-level descriptors, one vector per utterance.

The descriptors (LLDs) are log-mel bands, MFCCs, log energy, spectral centroid, bandwidth,
roll-off, flatness and contrast, zero-crossing rate, and their deltas; the fundamental frequency
on voiced frames comes from the tracker the spec's ``f0_method`` names (:data:`F0_METHODS`):
``yin``, the fast YIN tracker of this module (:func:`yin_f0`), ``pyin``, librosa's probabilistic
YIN (some 40 times the cost of everything else together), or ``none`` (no F0 part). A spec
without ``f0_method`` (stored by deepser before the option existed) means ``pyin``, what its
models were trained on. Frames more than ``activity_db`` below the utterance's loudest frame are
left out, so leading or trailing silence and padding do not count. Every descriptor gets
:data:`STATISTICS`; log F0 and its frame-to-frame change get them too, and two ratios close the
vector (active frames, voiced among active frames; ``none`` has the first only).

The original toolkit had no functional feature sets ("time-series only"); with speaker-level
normalisation they are the strongest input on EmoDB (README, "EmoDB results").
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
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
F0_METHODS = ("yin", "pyin", "none")
STORED_F0_METHOD = "pyin"  # what a stored spec without ``f0_method`` was computed with
# The YIN tracker's voicing decision (:func:`yin_f0`): a frame is a voicing candidate when its
# aperiodicity (the cumulative mean normalised difference at the chosen period) is below
# YIN_VOICED; a run of candidates counts as voiced when it is YIN_MIN_RUN frames or longer and
# holds a frame below YIN_CLEAR (clearly periodic). YIN_TROUGH is YIN's absolute threshold.
YIN_TROUGH = 0.1
YIN_VOICED = 0.5
YIN_CLEAR = 0.2
YIN_MIN_RUN = 3
YIN_MEDIAN = 5  # frames of the running median that removes single-frame octave errors
YIN_FLOOR_DB = 60.0  # frames more than this below the loudest frame are unvoiced


def statistics(x: np.ndarray) -> np.ndarray:
    """:data:`STATISTICS` of each row of ``x`` (rows, frames) over its frames, flattened
    statistic-major: all rows' means, then all rows' standard deviations, ..."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] < 3:  # too few frames for shape statistics: repeat what there is
        x = np.repeat(x if x.shape[1] else np.zeros((x.shape[0], 1)), 3, axis=1)
    mean = x.mean(1)
    centred = x - mean[:, None]
    squared = centred * centred  # products, not ** 3 and ** 4: NumPy's pow is ~100x slower
    var = squared.mean(1)
    std = np.sqrt(var)
    safe = np.where(var > 1e-12 * np.maximum(mean**2, 1.0), var, np.nan)
    skew = np.nan_to_num((squared * centred).mean(1) / safe**1.5)
    kurt = np.nan_to_num((squared * squared).mean(1) / safe**2 - 3.0)
    t = np.arange(x.shape[1]) - (x.shape[1] - 1) / 2.0
    slope = centred @ t / (t @ t)
    ordered = np.sort(x, axis=1)
    p10, p25, p50, p75, p90 = (_percentile(ordered, q) for q in (10, 25, 50, 75, 90))
    stats = (mean, std, ordered[:, 0], ordered[:, -1], p10, p50, p90, p90 - p10, p75 - p25)
    return np.concatenate(stats + (skew, kurt, slope))


def _percentile(ordered: np.ndarray, q: float) -> np.ndarray:
    """The ``q``-th percentile of each row of the sorted ``ordered``: NumPy's default (linear)
    method, with its interpolation formula, from the sorted rows."""
    index = (ordered.shape[1] - 1) * q / 100.0
    lo = int(np.floor(index))
    hi = min(lo + 1, ordered.shape[1] - 1)
    frac = index - lo
    a, b = ordered[:, lo], ordered[:, hi]
    diff = b - a
    return b - diff * (1.0 - frac) if frac >= 0.5 else a + diff * frac


def f0_method(spec: Mapping[str, Any]) -> str:
    """The F0 tracker of a functionals spec; a stored spec without one means pYIN."""
    return str(spec.get("f0_method", STORED_F0_METHOD))


def contrast_bands(sample_rate: int) -> int:
    """Octave bands of spectral contrast below the Nyquist frequency: 6 from 12.8 kHz up."""
    bands = 1
    while bands < 6 and CONTRAST_FMIN * 2.0**bands < sample_rate / 2:
        bands += 1
    return bands


def pitch_frame_length(sample_rate: int) -> int:
    """F0 frame (YIN and pYIN): the power of two nearest above 64 ms (1024 samples at 16 kHz)."""
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
    if f0_method(spec) == "none":
        return [f"{n}.{s}" for group in groups for s in STATISTICS for n in group] + [
            "active_ratio"
        ]
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
        *spectral_shape(mag, sr, spec["n_fft"]),
        librosa.feature.spectral_contrast(
            S=mag, sr=sr, n_fft=spec["n_fft"], fmin=CONTRAST_FMIN, n_bands=bands
        ),
        zcr,
    ]
    return np.vstack(rows), energy_db


def spectral_shape(mag: np.ndarray, sr: int, n_fft: int) -> list[np.ndarray]:
    """Spectral centroid, bandwidth and roll-off (kHz) and log flatness, each (1, frames), of
    the magnitude spectrogram ``mag`` (bins, frames): librosa.feature's spectral_centroid,
    _bandwidth, _rolloff and _flatness (defaults) with their formulas, in one pass (librosa's
    functions each check and normalise the spectrogram again)."""
    freq = np.fft.rfftfreq(n_fft, 1.0 / sr)[:, None]
    total = mag.sum(0, keepdims=True)
    weights = mag / np.where(total < np.finfo(mag.dtype).tiny, 1.0, total)
    centroid = np.sum(freq * weights, axis=0, keepdims=True)
    deviation = np.abs(freq - centroid)
    bandwidth = np.sum(weights * deviation**2, axis=0, keepdims=True) ** 0.5
    cumulative = np.cumsum(mag, axis=0)
    reached = cumulative >= 0.85 * cumulative[-1:]
    rolloff = freq[reached.argmax(0), 0][None]
    floored = np.maximum(1e-10, mag**2)
    flatness = np.exp(np.mean(np.log(floored), axis=0, keepdims=True)) / np.mean(
        floored, axis=0, keepdims=True
    )
    return [centroid / 1000.0, bandwidth / 1000.0, rolloff / 1000.0, np.log(flatness + 1e-10)]


@lru_cache(maxsize=8)
def _delta_filters(order: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Savitzky-Golay filters of :func:`deltas` (``order``-th derivative, polynomial order
    ``order``): the centre one and those of the first and last ``width // 2`` frames."""
    from scipy.signal import savgol_coeffs

    half = width // 2

    def coeffs(pos: int) -> np.ndarray:
        return savgol_coeffs(width, order, deriv=order, pos=pos, use="dot")

    return (
        coeffs(half),
        np.stack([coeffs(p) for p in range(half)]),
        np.stack([coeffs(p) for p in range(half + 1, width)]),
    )


def deltas(x: np.ndarray, order: int, width: int = 5) -> np.ndarray:
    """librosa.feature.delta(x, order=order, width=width, mode="interp") of ``x`` (rows,
    frames), at least ``width`` frames: the same Savitzky-Golay filter (scipy.signal's
    savgol_filter, interp edges: polynomials fitted to the first and last ``width`` frames) as
    precomputed filters, without a least-squares fit per call."""
    centre, first, last = _delta_filters(order, width)
    half = width // 2
    x = np.asarray(x)
    windows = np.lib.stride_tricks.sliding_window_view(x, width, axis=1)  # (rows, n-w+1, w)
    out = np.empty(x.shape, dtype=np.result_type(x.dtype, np.float32))
    out[:, half : x.shape[1] - half] = windows @ centre
    out[:, :half] = x[:, :width] @ first.T
    out[:, x.shape[1] - half :] = x[:, -width:] @ last.T
    return out


def log_f0(y: np.ndarray, n_frames: int, spec: Mapping[str, Any]) -> np.ndarray:
    """Log F0 per frame by the spec's ``f0_method``, NaN where unvoiced; ``n_frames`` long."""
    method = f0_method(spec)
    if method == "yin":
        f0 = yin_f0(
            y,
            spec["sample_rate"],
            fmin=spec["f0_min"],
            fmax=spec["f0_max"],
            frame_length=pitch_frame_length(spec["sample_rate"]),
            hop_length=spec["hop_length"],
        )
        out = np.full(n_frames, np.nan)
        m = min(n_frames, len(f0))
        out[:m] = np.log(f0[:m])
        return out
    if method == "pyin":
        return _pyin_log_f0(y, n_frames, spec)
    if method == "none":
        return np.full(n_frames, np.nan)
    raise ValueError(f"unknown f0_method {method!r}; known: {', '.join(F0_METHODS)}")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in the 1-D boolean ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def yin_f0(
    y: np.ndarray,
    sr: int,
    *,
    fmin: float,
    fmax: float,
    frame_length: int,
    hop_length: int,
) -> np.ndarray:
    """F0 in Hz per frame by YIN, NaN where unvoiced: frame ``t`` is centred on sample
    ``t * hop_length`` (zero padding), ``1 + len(y) // hop_length`` frames.

    The difference function of each frame comes from its autocorrelation (one real FFT per
    frame, float32); the period is YIN's first trough of the cumulative mean normalised
    difference below :data:`YIN_TROUGH` (else its global minimum), refined by parabolic
    interpolation. The value there is the frame's aperiodicity: the voicing decision (see
    :data:`YIN_VOICED`) takes runs of aperiodic-enough frames that hold a clearly periodic one,
    and leaves out quiet frames (:data:`YIN_FLOOR_DB`); a running median over voiced frames
    removes single-frame octave jumps.
    """
    import scipy.fft

    y = np.asarray(y, dtype=np.float32)
    pad = frame_length // 2
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (pad, pad)), frame_length)
    frames = frames[::hop_length][: 1 + len(y) // hop_length]
    n = frames.shape[0]
    min_period = max(1, int(np.floor(sr / fmax)))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 2)
    n_fft = scipy.fft.next_fast_len(frame_length + max_period + 1, real=True)
    spectrum = scipy.fft.rfft(frames, n_fft, axis=1)
    acf = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n_fft, axis=1)[:, : max_period + 1]
    squares = frames * frames
    head = np.cumsum(squares[:, :max_period], axis=1)  # y[0:k] energy, k = 1..max_period
    tail = np.cumsum(squares[:, : -max_period - 1 : -1], axis=1)  # y[N-k:N] energy
    # d(k) = sum_{j < N-k} (y[j] - y[j+k])^2, k = 1..max_period
    diff = acf[:, 1:]
    np.subtract(acf[:, :1], diff, out=diff)
    diff *= 2.0
    diff -= head
    diff -= tail
    np.maximum(diff, 0.0, out=diff)
    mean = np.cumsum(diff, axis=1)
    mean /= np.arange(1, max_period + 1, dtype=np.float32)
    mean += np.finfo(np.float32).tiny
    cmnd = diff[:, min_period - 1 :] / mean[:, min_period - 1 :]  # min..max period

    # YIN's absolute threshold: the first trough below YIN_TROUGH, else the global minimum
    trough = np.zeros(cmnd.shape, dtype=bool)
    trough[:, 1:-1] = (cmnd[:, 1:-1] < cmnd[:, :-2]) & (cmnd[:, 1:-1] <= cmnd[:, 2:])
    trough[:, 0] = cmnd[:, 0] < cmnd[:, 1]
    below = trough & (cmnd < YIN_TROUGH)
    best = np.where(below.any(1), below.argmax(1), cmnd.argmin(1))
    rows = np.arange(n)
    aperiodicity = cmnd[rows, best]
    # parabolic interpolation around an inner minimum
    inner = np.clip(best, 1, cmnd.shape[1] - 2)
    a, b, c = cmnd[rows, inner - 1], cmnd[rows, inner], cmnd[rows, inner + 1]
    curvature = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature > 0, 0.5 * (a - c) / curvature, 0.0)
    shift = np.where((inner == best) & (np.abs(shift) <= 1.0), shift, 0.0)
    f0 = sr / (min_period + best + shift)

    power_db = 10.0 * np.log10(np.maximum(squares.mean(1, dtype=np.float64), 1e-10))
    loud = (power_db > -100.0) & (power_db > power_db.max() - YIN_FLOOR_DB)
    candidate = loud & (aperiodicity < YIN_VOICED) & (f0 >= fmin) & (f0 <= fmax)
    voiced = np.zeros(n, dtype=bool)
    for start, stop in _runs(candidate):
        if stop - start >= YIN_MIN_RUN and (aperiodicity[start:stop] < YIN_CLEAR).any():
            voiced[start:stop] = True
    log_f0 = np.where(voiced, np.log(f0), np.nan)
    if YIN_MEDIAN > 1 and voiced.any():  # the median of the voiced frames in each window
        half = YIN_MEDIAN // 2
        windows = np.lib.stride_tricks.sliding_window_view(
            np.pad(log_f0, half, constant_values=np.nan), YIN_MEDIAN
        )[voiced]
        ordered = np.sort(windows, axis=1)  # NaN (unvoiced) last
        count = YIN_MEDIAN - np.isnan(ordered).sum(1)
        rows = np.arange(len(ordered))
        upper = ordered[rows, count // 2]
        log_f0[voiced] = np.where(count % 2, upper, 0.5 * (ordered[rows, count // 2 - 1] + upper))
    return np.exp(log_f0)


def _pyin_log_f0(y: np.ndarray, n_frames: int, spec: Mapping[str, Any]) -> np.ndarray:
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
    groups = [lld[:, active]]
    for order in range(1, spec["deltas"] + 1):
        if lld.shape[1] >= 5:
            delta = deltas(lld, order)
        else:
            delta = librosa.feature.delta(lld, order=order, width=5, mode="nearest")
        groups.append(delta[:, active])
    # the statistics of all groups at once, then group-major as feature_names orders them
    stats = statistics(np.vstack(groups)).reshape(len(STATISTICS), len(groups), len(lld))
    parts = [stats.transpose(1, 0, 2).ravel()]
    if f0_method(spec) == "none":
        parts.append(np.array([active.mean()]))
        return np.nan_to_num(np.concatenate(parts)).astype(np.float32)[None]
    f0 = log_f0(y, lld.shape[1], spec)[active]
    voiced = f0[np.isfinite(f0)]
    if len(voiced) < 3:  # (almost) nothing voiced: a neutral 120 Hz contour
        voiced = np.full(3, np.log(120.0))
    parts += [statistics(voiced[None]), statistics(np.diff(voiced)[None])]
    parts.append(np.array([active.mean(), np.isfinite(f0).mean()]))
    return np.nan_to_num(np.concatenate(parts)).astype(np.float32)[None]
