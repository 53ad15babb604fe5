"""Deterministic audio degradations, to measure a model's robustness on transformed test audio.

A condition is named by a short string (a file name and a Snakemake wildcard value, so only
``[A-Za-z0-9.+-]``):

- ``snr{X}dB`` (``snr10dB``, ``snr-5dB``): additive pink (1/f power) Gaussian noise at X dB SNR.
  The signal power is that of its *active* part: 20 ms frames whose energy is within 40 dB of
  the loudest frame, so leading, trailing and pause silence does not lower the speech level; the
  noise is scaled on the same samples. Pink noise (flat from 0 to 20 Hz, then -3 dB per octave)
  masks speech across its whole band; white noise at 16 kHz puts half its power above 4 kHz,
  where speech has little.
  A silent input (no frame above zero) has no level to set an SNR against: it is returned as is.
- ``telephone``: a narrow-band (G.711-like) channel: resampled to 8 kHz (soxr), band-passed to
  300-3400 Hz (4th-order Butterworth, applied forwards and backwards: zero phase), mu-law
  (mu = 255) companded and quantised to 8 bits (the continuous law, not G.711's segments; the
  input saturates at +-1), then resampled back to the input rate.
- ``vorbis`` / ``vorbis-q{Q}``: a round trip through Ogg Vorbis, encoded in memory by libsndfile;
  Q in [0, 1] is the Vorbis quality (libsndfile's default 0.4 for plain ``vorbis``; soundfile's
  ``compression_level`` is 1 - Q). The decoded signal is cut or zero-padded to the input length.
- ``gain{+X|-X}dB`` (``gain-20dB``, ``gain+20dB``): level changed by X dB, then clipped to
  [-1, 1], as a 16-bit recording saturates.
- ``rt60-{X}s`` (``rt60-0.5s``): a synthetic room: an impulse response with a unit direct path
  and, after a 5 ms pre-delay, a Gaussian noise tail whose amplitude decays 60 dB in X seconds
  (1.5 X long, with the direct path's energy: 0 dB direct-to-reverberant ratio); convolved,
  cut to the input length and rescaled to the input's RMS.

Every output is float32 mono with the input's length. Only ``gain`` and ``telephone`` clip:
noise, reverberation and the codec may take samples beyond [-1, 1] (float audio, kept). The
random conditions (noise, room) draw from ``seed``; :func:`utterance_seed` gives each utterance
its own, the same in every process.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_CONDITIONS: tuple[str, ...] = (
    "snr20dB",
    "snr10dB",
    "snr0dB",
    "telephone",
    "vorbis",
    "gain-20dB",
    "gain+20dB",
    "rt60-0.5s",
)
FORMS = (
    "snr{X}dB (e.g. snr10dB, snr-5dB), telephone, vorbis, vorbis-q{Q} (Q from 0 to 1, "
    "e.g. vorbis-q0.2), gain{+X|-X}dB (e.g. gain-20dB, gain+6dB), rt60-{X}s (0 < X <= 10, "
    "e.g. rt60-0.5s)"
)
GATE_DB = 40.0  # active frames: energy within this many dB of the loudest frame
FRAME_S = 0.02  # frame length of the energy gate
PINK_FLOOR_HZ = 20.0  # the noise spectrum is flat below this frequency
TELEPHONE_SR = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
MU = 255.0
VORBIS_DEFAULT_QUALITY = 0.4  # libsndfile's default
RT60_MAX_S = 10.0
PRE_DELAY_S = 0.005

_NUM = r"\d+(?:\.\d+)?"
_PATTERNS = {
    "snr": re.compile(rf"snr(?P<v>[+-]?{_NUM})dB"),
    "gain": re.compile(rf"gain(?P<v>[+-]{_NUM})dB"),
    "rt60": re.compile(rf"rt60-(?P<v>{_NUM})s"),
    "vorbis": re.compile(rf"vorbis(?:-q(?P<v>{_NUM}))?"),
    "telephone": re.compile("telephone"),
}


@dataclass(frozen=True)
class Condition:
    """A parsed condition: ``kind`` (snr, telephone, vorbis, gain, rt60) and its value (dB,
    seconds or Vorbis quality; None for telephone and plain vorbis)."""

    name: str
    kind: str
    value: float | None

    def describe(self) -> str:
        """Human text, e.g. "pink noise at 10 dB SNR"."""
        v = self.value
        if self.kind == "snr":
            return f"pink noise at {v:g} dB SNR"
        if self.kind == "gain":
            return f"gain of {v:+g} dB, clipped to [-1, 1]"
        if self.kind == "rt60":
            return f"synthetic room reverberation, RT60 {v:g} s"
        if self.kind == "vorbis":
            q = VORBIS_DEFAULT_QUALITY if v is None else v
            return f"Ogg Vorbis round trip at quality {q:g}"
        return "telephone channel: 8 kHz, 300-3400 Hz, 8-bit mu-law"


def _bad(name: object, why: str = "is not a condition") -> str:
    return f"{name!r} {why} (forms: {FORMS})"


def parse_condition(name: str) -> Condition:
    """The :class:`Condition` named ``name``; ValueError naming it and the accepted forms."""
    if not isinstance(name, str):
        raise ValueError(_bad(name, "is not a condition name (a string)"))
    for kind, pattern in _PATTERNS.items():
        match = pattern.fullmatch(name)
        if match is None:
            continue
        text = match.groupdict().get("v")
        value = None if text is None else float(text)
        if kind == "rt60" and not 0 < value <= RT60_MAX_S:
            raise ValueError(_bad(name, f"has an RT60 outside (0, {RT60_MAX_S:g}] s"))
        if kind == "vorbis" and value is not None and not 0 <= value <= 1:
            raise ValueError(_bad(name, "has a Vorbis quality outside [0, 1]"))
        return Condition(name, kind, value)
    raise ValueError(_bad(name))


def condition_problems(names: Sequence, where: str = "robustness.conditions") -> list[str]:
    """Config check: one message per bad or repeated entry of ``names`` (located by ``where``);
    two names for the same condition (``snr10dB``, ``snr10.0dB``) count as a repeat."""
    if isinstance(names, str | bytes) or not isinstance(names, Sequence):
        return [f"{where}: a list of condition names, not {names!r} (forms: {FORMS})"]
    problems = []
    seen: dict[tuple[str, float | None], int] = {}
    for i, name in enumerate(names):
        try:
            cond = parse_condition(name)
        except ValueError as exc:
            problems.append(f"{where}[{i}]: {exc}")
            continue
        key = (cond.kind, cond.value)
        if cond.kind == "vorbis" and cond.value is None:
            key = ("vorbis", VORBIS_DEFAULT_QUALITY)
        if key in seen:
            first = seen[key]
            problems.append(f"{where}[{i}]: {name!r} repeats {where}[{first}] ({names[first]!r})")
        else:
            seen[key] = i
    return problems


def utterance_seed(utt_id: str, seed: int) -> int:
    """A seed for one utterance from its id and the run's seed (SHA-256, so the same in every
    process and Python version); in [0, 2**63)."""
    digest = hashlib.sha256(f"{int(seed)}\0{utt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ------------------------------------------------------------------------------ the conditions


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded to ``n`` samples."""
    return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def active_mask(y: np.ndarray, sample_rate: int, gate_db: float = GATE_DB) -> np.ndarray:
    """Samples of the frames (``FRAME_S``) whose mean energy is within ``gate_db`` of the
    loudest frame's; all False for a silent signal."""
    frame = max(1, round(FRAME_S * sample_rate))
    starts = np.arange(0, y.size, frame)
    lengths = np.diff(np.append(starts, y.size))
    energy = np.add.reduceat(np.square(y, dtype=np.float64), starts) / lengths
    peak = energy.max(initial=0.0)
    if peak <= 0:
        return np.zeros(y.size, dtype=bool)
    return np.repeat(energy >= peak * 10 ** (-gate_db / 10), lengths)


def pink_noise(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with 1/f power above ``PINK_FLOOR_HZ`` (flat below, no DC), unit RMS
    (white for a single sample, which has no band but DC)."""
    white = rng.standard_normal(n)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    shape = 1 / np.sqrt(np.maximum(freqs, PINK_FLOOR_HZ))
    shape[0] = 0.0
    noise = np.fft.irfft(np.fft.rfft(white) * shape, n)
    rms = np.sqrt(np.mean(noise**2))
    return noise / rms if rms > 0 else white


def _add_noise(y: np.ndarray, sample_rate: int, snr_db: float, seed: int) -> np.ndarray:
    active = active_mask(y, sample_rate)
    if not active.any():
        return y
    noise = pink_noise(y.size, sample_rate, np.random.default_rng(seed))
    signal_power = np.mean(y[active] ** 2)
    noise_power = np.mean(noise[active] ** 2)
    if noise_power <= 0:
        return y
    return y + noise * np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))


def _telephone(y: np.ndarray, sample_rate: int) -> np.ndarray:
    import soxr
    from scipy.signal import butter, sosfiltfilt

    narrow = soxr.resample(y, sample_rate, TELEPHONE_SR, quality="HQ")
    sos = butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=TELEPHONE_SR, output="sos")
    if narrow.size > 3 * 2 * sos.shape[0]:  # sosfiltfilt's padding needs this many samples
        narrow = sosfiltfilt(sos, narrow)
    x = np.clip(narrow, -1.0, 1.0)
    code = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)  # mu-law, in [-1, 1]
    code = np.round((code + 1) * 127.5) / 127.5 - 1  # 256 levels
    x = np.sign(code) * np.expm1(np.abs(code) * np.log1p(MU)) / MU
    return _fit(soxr.resample(x, TELEPHONE_SR, sample_rate, quality="HQ"), y.size)


def _vorbis(y: np.ndarray, sample_rate: int, quality: float | None) -> np.ndarray:
    import soundfile as sf

    q = VORBIS_DEFAULT_QUALITY if quality is None else quality
    buffer = io.BytesIO()
    data = y.astype(np.float32)
    sf.write(buffer, data, sample_rate, format="OGG", subtype="VORBIS", compression_level=1 - q)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=False)
    return _fit(decoded, y.size)


def room_impulse_response(rt60_s: float, sample_rate: int, seed: int) -> np.ndarray:
    """A unit direct path, then (after ``PRE_DELAY_S``) a Gaussian tail decaying 60 dB in
    ``rt60_s``, 1.5 ``rt60_s`` long, with the direct path's energy."""
    rng = np.random.default_rng(seed)
    delay = max(1, round(PRE_DELAY_S * sample_rate))
    t = np.arange(max(1, round(1.5 * rt60_s * sample_rate))) / sample_rate
    tail = rng.standard_normal(t.size) * np.exp(-3 * np.log(10) * t / rt60_s)
    tail /= np.sqrt(np.sum(tail**2))
    rir = np.zeros(delay + t.size)
    rir[0] = 1.0
    rir[delay:] = tail
    return rir


def _reverberate(y: np.ndarray, sample_rate: int, rt60_s: float, seed: int) -> np.ndarray:
    from scipy.signal import fftconvolve

    rms_in = np.sqrt(np.mean(y**2))
    if rms_in == 0:
        return y
    out = fftconvolve(y, room_impulse_response(rt60_s, sample_rate, seed))[: y.size]
    rms_out = np.sqrt(np.mean(out**2))
    return out * (rms_in / rms_out) if rms_out > 0 else out


def degrade(
    y: np.ndarray, sample_rate: int, condition: str | Condition, seed: int = 0
) -> np.ndarray:
    """``y`` (mono, float in [-1, 1]) through ``condition``: float32, same length, finite.
    ``seed`` (>= 0) draws the noise and the room; the other conditions ignore it."""
    cond = condition if isinstance(condition, Condition) else parse_condition(condition)
    x = np.asarray(y, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"degrade needs a mono signal (1-D), not shape {x.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, not {sample_rate}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    if x.size == 0:
        return x.astype(np.float32)
    if cond.kind == "snr":
        out = _add_noise(x, sample_rate, cond.value, seed)
    elif cond.kind == "gain":
        out = np.clip(x * 10 ** (cond.value / 20), -1.0, 1.0)
    elif cond.kind == "rt60":
        out = _reverberate(x, sample_rate, cond.value, seed)
    elif cond.kind == "vorbis":
        out = _vorbis(x, sample_rate, cond.value)
    elif cond.kind == "telephone":
        out = _telephone(x, sample_rate)
    else:
        raise ValueError(_bad(cond.name))
    return np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=-1.0).astype(np.float32)
