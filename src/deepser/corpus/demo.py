"""Deterministic synthesizer of a small speech-like emotional corpus (used by ``make demo``).

Each utterance is made by a source-filter model: a band-limited Rosenberg glottal pulse train
that follows an F0 contour (declination, per-syllable accents, drift, tremor, jitter, shimmer)
mixed with aspiration noise, shaped by a spectral-tilt filter and a cascade of four time-varying
2-pole formant resonators, plus frication noise and stop bursts for consonants.  Emotions are
expressed through prosody and voice quality (pitch level/range, syllable rate, loudness, tilt,
breathiness); speakers differ in F0, vocal-tract length, loudness, tempo and breathiness.

Layout written by :func:`synthesize_corpus`::

    out_dir/wav/<speaker>/<speaker>_<emotion>_<nn>.wav   (16-bit PCM, mono)
    out_dir/meta.tsv

Same arguments give byte-identical files; every utterance draws from its own
``numpy.random.default_rng`` seeded by (seed, speaker, emotion, utterance index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from deepser.corpus.degrade import degrade
from deepser.files import atomic_path, write_text

__all__ = ["EMOTIONS", "META_COLUMNS", "synthesize_corpus"]

EMOTIONS: tuple[str, ...] = ("angry", "happy", "neutral", "sad")

META_COLUMNS: tuple[str, ...] = (
    "path",
    "emotion",
    "speaker",
    "gender",
    "arousal",
    "valence",
    "arousal_score",
    "duration_s",
)

_NEUTRAL_RMS_DBFS = -24.0  # speech-region RMS of a neutral utterance of an average speaker
_NOISE_FLOOR_DBFS = -60.0
_MAX_TOTAL_S = 2.95
_MIN_TOTAL_S = 1.05
_HOP_S = 0.005  # formant-trajectory update interval


@dataclass(frozen=True)
class _Style:
    """Prosody and voice-quality settings of one emotion."""

    f0_mult: float  # pitch level relative to the speaker's base F0
    range_st: float  # accent excursion in semitones
    rate: float  # syllables per second
    gain_db: float  # loudness relative to neutral
    tilt: float  # one-pole low-pass coefficient on the source (higher: steeper tilt)
    open_quotient: float  # glottal open quotient (low: tense/pressed, high: lax/breathy)
    breath: float  # aspiration multiplier
    perturb: float  # jitter/shimmer multiplier
    formant_shift: float  # all formants (e.g. smiling raises them)
    f1_shift: float  # extra F1 factor (mouth opening)
    arousal: str
    valence: str
    arousal_mean: float


_STYLES: dict[str, _Style] = {
    # f0, range, rate, gain, tilt, OQ, breath, perturb, formants, F1, arousal, valence, mean
    "angry": _Style(1.15, 5.0, 5.2, 7, 0.12, 0.42, 0.5, 1.6, 1.02, 1.08, "high", "negative", 0.75),
    "happy": _Style(1.25, 6.5, 4.6, 4, 0.35, 0.55, 0.9, 1.0, 1.04, 1.03, "high", "positive", 0.55),
    "neutral": _Style(1.0, 2.5, 4.0, 0, 0.45, 0.60, 1.0, 1.0, 1.0, 1.0, "mid", "neutral", 0.0),
    "sad": _Style(0.9, 1.2, 3.2, -5, 0.72, 0.72, 2.0, 1.3, 0.98, 0.96, "low", "negative", -0.6),
}

# Vowel targets for an average adult tract: F1..F4 (Hz) and bandwidths B1..B4 (Hz).
_VOWELS = np.array(
    [
        [300, 2250, 2950, 3700, 55, 100, 140, 220],  # i
        [500, 1900, 2550, 3600, 65, 100, 140, 220],  # e
        [750, 1250, 2550, 3600, 80, 100, 150, 230],  # a
        [540, 900, 2500, 3500, 70, 90, 140, 220],  # o
        [330, 880, 2300, 3400, 60, 90, 130, 200],  # u
        [520, 1450, 2500, 3500, 70, 110, 150, 220],  # schwa
        [680, 1750, 2500, 3600, 80, 110, 150, 230],  # ae
    ],
    dtype=float,
)
_VOWEL_WEIGHTS = np.array([0.15, 0.15, 0.2, 0.12, 0.1, 0.16, 0.12])


@dataclass(frozen=True)
class _Consonant:
    kind: str  # "none", "fric", "stop", "asp", "nasal", "liquid"
    voicing: float  # voicing amplitude during the consonant
    band: tuple[float, float] | None  # frication / burst band (Hz)
    level_db: float  # frication level relative to the vowel level
    locus: tuple[float, float, float] | None  # F1..F3 locus (Hz)
    bw_mult: float = 1.0


_CONSONANTS: dict[str, _Consonant] = {
    "": _Consonant("none", 0.0, None, 0.0, None),
    "s": _Consonant("fric", 0.0, (3800, 7600), -12.0, (300, 1700, 2700)),
    "sh": _Consonant("fric", 0.0, (1900, 4800), -10.0, (300, 1900, 2500)),
    "f": _Consonant("fric", 0.0, (1000, 7000), -22.0, (300, 1000, 2400)),
    "z": _Consonant("fric", 0.3, (3800, 7600), -16.0, (300, 1700, 2700)),
    "h": _Consonant("asp", 0.0, None, -8.0, None),
    "p": _Consonant("stop", 0.0, (400, 2500), -10.0, (300, 900, 2300)),
    "t": _Consonant("stop", 0.0, (2800, 7000), -8.0, (300, 1700, 2700)),
    "k": _Consonant("stop", 0.0, (1400, 3800), -8.0, (300, 2000, 2500)),
    "d": _Consonant("stop", 0.15, (2800, 7000), -14.0, (300, 1700, 2700)),
    "m": _Consonant("nasal", 0.3, None, 0.0, (280, 1000, 2300), 1.8),
    "n": _Consonant("nasal", 0.3, None, 0.0, (280, 1600, 2600), 1.8),
    "l": _Consonant("liquid", 0.45, None, 0.0, (360, 1250, 2800), 1.3),
}
_CONS_NAMES = tuple(_CONSONANTS)
_CONS_WEIGHTS = np.array(
    [0.1, 0.1, 0.06, 0.05, 0.05, 0.07, 0.08, 0.11, 0.1, 0.06, 0.08, 0.08, 0.06]
)


@dataclass(frozen=True)
class _Speaker:
    name: str
    gender: str
    f0: float
    vtl: float  # formant scale factor (short tract > 1)
    loud_db: float
    tempo: float
    breath: float
    tilt: float
    oq: float
    range_factor: float
    jitter: float
    shimmer: float


def _speaker(seed: int, index: int, width: int) -> _Speaker:
    """Draw speaker traits; even indices are female, odd ones male."""
    rng = np.random.default_rng([seed, 1, index])
    female = index % 2 == 0
    return _Speaker(
        name=f"spk{index + 1:0{width}d}",
        gender="female" if female else "male",
        f0=float(rng.uniform(180, 240) if female else rng.uniform(95, 135)),
        vtl=float(rng.uniform(1.02, 1.15) if female else rng.uniform(0.85, 0.98)),
        loud_db=float(rng.uniform(-3, 3)),
        tempo=float(rng.uniform(0.9, 1.1)),
        breath=float(rng.uniform(0.07, 0.14) if female else rng.uniform(0.04, 0.09)),
        tilt=float(rng.uniform(-0.08, 0.08)),
        oq=float(rng.uniform(-0.05, 0.05)),
        range_factor=float(rng.uniform(0.8, 1.25)),
        jitter=float(rng.uniform(0.004, 0.01)),
        shimmer=float(rng.uniform(0.03, 0.07)),
    )


@lru_cache(maxsize=64)
def _band_sos(lo: float, hi: float, sr: int) -> np.ndarray:
    hi = min(hi, 0.47 * sr)
    lo = min(lo, 0.5 * hi)
    return signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")


def _ramp(n: int, attack: int, decay: int) -> np.ndarray:
    """Envelope of length n with raised-cosine attack and decay (samples)."""
    env = np.ones(n)
    attack = max(1, min(attack, n // 2))
    decay = max(1, min(decay, n - attack))
    env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    env[n - decay :] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(decay) + 1) / decay)
    return env


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _rosenberg(frac: np.ndarray, oq: float) -> np.ndarray:
    """Rosenberg glottal flow over one normalised period (frac in [0, 1))."""
    tp, tn = 0.6 * oq, 0.4 * oq
    rise = 0.5 - 0.5 * np.cos(np.pi * frac / tp)
    fall = np.cos(0.5 * np.pi * np.clip(frac - tp, 0.0, tn) / tn)
    return np.where(frac < tp, rise, np.where(frac < tp + tn, fall, 0.0))


def _soft_limit(x: np.ndarray, knee: float = 0.6, ceiling: float = 0.95) -> np.ndarray:
    """Leave |x| <= knee untouched and squash larger values smoothly below ceiling."""
    a = np.abs(x)
    over = a > knee
    if not over.any():
        return x
    y = x.copy()
    span = ceiling - knee
    y[over] = np.sign(x[over]) * (knee + span * np.tanh((a[over] - knee) / span))
    return y


def _utterance(
    spk: _Speaker, emotion: str, rng: np.random.Generator, sr: int
) -> tuple[np.ndarray, float]:
    """Synthesize one utterance; return (float waveform, arousal score)."""
    st = _STYLES[emotion]

    # --- per-utterance prosodic variation -------------------------------------------------
    rate_dev = float(rng.normal(0.0, 0.1))
    range_dev = float(rng.normal(0.0, 0.3))
    gain_dev = float(rng.normal(0.0, 2.0))
    rate = st.rate * spk.tempo * math.exp(rate_dev)
    f0_base = spk.f0 * st.f0_mult * math.exp(rng.normal(0.0, 0.06))
    range_st = st.range_st * spk.range_factor * math.exp(range_dev)
    tilt = float(np.clip(st.tilt + spk.tilt + rng.normal(0.0, 0.04), 0.0, 0.9))
    oq = float(np.clip(st.open_quotient + spk.oq + rng.normal(0.0, 0.03), 0.3, 0.85))
    breath = spk.breath * st.breath * math.exp(rng.normal(0.0, 0.2))
    level_db = _NEUTRAL_RMS_DBFS + st.gain_db + spk.loud_db + gain_dev
    z = (0.5 * gain_dev / 2.0 + 0.3 * rate_dev / 0.1 + 0.2 * range_dev / 0.3) / 0.62
    arousal = float(np.clip(st.arousal_mean + 0.12 * z + rng.normal(0.0, 0.03), -1.0, 1.0))

    # --- timing plan ----------------------------------------------------------------------
    pre, post = (float(v) for v in rng.uniform(0.15, 0.4, 2))
    budget = _MAX_TOTAL_S - pre - post - 0.02
    target = min(float(rng.uniform(0.8, 2.0)), budget)
    n_syl = round(target * rate)
    n_syl = int(np.clip(n_syl, math.ceil(0.7 * rate), math.floor(budget * rate / 1.2)))
    durs = rng.lognormal(0.0, 0.22, n_syl)
    durs[-1] *= 1.35  # phrase-final lengthening
    durs *= n_syl / rate / durs.sum()
    pause_after, pause = -1, 0.0
    if n_syl >= 6 and rng.random() < 0.35:
        pause_after = int(rng.integers(2, n_syl - 3))
        pause = float(rng.uniform(0.08, 0.2))
    speech = durs.sum() + pause
    if speech > budget:
        durs *= (budget - pause) / durs.sum()
        speech = budget
    total = pre + speech + post + 0.02
    if total < _MIN_TOTAL_S:
        extra = (_MIN_TOTAL_S - total) / 2
        pre, post = min(0.4, pre + extra), min(0.4, post + extra)

    cons = rng.choice(len(_CONS_NAMES), size=n_syl, p=_CONS_WEIGHTS / _CONS_WEIGHTS.sum())
    vows = rng.choice(len(_VOWELS), size=n_syl, p=_VOWEL_WEIGHTS / _VOWEL_WEIGHTS.sum())
    cons_frac = rng.uniform(0.28, 0.42, n_syl)
    accented = rng.random(n_syl) < 0.45
    accented[0] |= rng.random() < 0.6
    syl_gain = 10 ** ((2.5 * accented + rng.normal(0.0, 1.0, n_syl)) / 20)
    syl_gain[-1] *= 10 ** (-3 / 20)

    ns = int(round((speech + 0.02) * sr))
    t = np.arange(ns) / sr
    voice = np.zeros(ns)  # voicing amplitude
    asp = np.zeros(ns)  # extra aspiration ("h" and stop release) through the tract
    fric: list[tuple[int, int, _Consonant, float, str]] = []  # frication segments
    key_t: list[float] = []
    key_f: list[np.ndarray] = []
    st_contour = np.zeros(ns)  # F0 contour in semitones relative to f0_base
    ms = sr // 1000

    pos = 0.0
    for i in range(n_syl):
        c = _CONSONANTS[_CONS_NAMES[cons[i]]]
        v = _VOWELS[vows[i]]
        d = float(durs[i])
        cd = 0.0 if c.kind == "none" else d * float(cons_frac[i])
        c0, v0, v1 = pos, pos + cd, pos + d
        i0, i1, i2 = int(c0 * sr), int(v0 * sr), min(int(v1 * sr), ns)
        g = float(syl_gain[i])
        # consonant
        if c.kind != "none" and i1 > i0:
            n_c = i1 - i0
            if c.voicing > 0:
                voice[i0:i1] += c.voicing * g * _ramp(n_c, 8 * ms, 8 * ms)
            if c.kind == "fric":
                fric.append((i0, i1, c, g, "fric"))
            elif c.kind == "asp":
                asp[i0:i1] += 10 ** (c.level_db / 20) * 3.0 * g * _ramp(n_c, 10 * ms, 5 * ms)
            elif c.kind == "stop":
                rel = i0 + int(0.6 * n_c)
                fric.append((rel, i1, c, g, "burst"))
                if c.voicing == 0 and i1 > rel:
                    asp[rel:i1] += 1.2 * g * _ramp(i1 - rel, 2 * ms, 5 * ms)
            if c.locus is not None:
                locus = np.concatenate([0.6 * np.asarray(c.locus) + 0.4 * v[:3], v[3:4], v[4:]])
                locus[4:] *= c.bw_mult
                key_t.append(c0 + 0.5 * cd)
                key_f.append(locus)
        # vowel
        n_v = i2 - i1
        if n_v > 0:
            voice[i1:i2] += g * _ramp(n_v, 20 * ms, 50 * ms)
        vd = v1 - v0
        key_t += [v0 + 0.35 * vd, v1 - 0.1 * vd]
        key_f += [v, v]
        # pitch accent (or a small bump) centred near the vowel
        amp = range_st * (rng.uniform(0.4, 1.0) if accented[i] else rng.uniform(0.0, 0.25))
        centre = v0 + 0.5 * vd + rng.uniform(-0.2, 0.2) * vd
        lo, hi = max(0, int((centre - 2 * d) * sr)), min(ns, int((centre + 2 * d) * sr))
        st_contour[lo:hi] += amp * np.exp(-0.5 * ((t[lo:hi] - centre) / (0.4 * d)) ** 2)
        pos = v1 + (pause if i == pause_after else 0.0)

    # --- F0 contour -----------------------------------------------------------------------
    dur = ns / sr
    st_contour += rng.uniform(1.5, 3.5) * (0.5 - t / dur)  # declination
    last0 = pos - float(durs[-1])
    final = np.clip((t - last0) / max(float(durs[-1]), 1e-3), 0.0, 1.0)
    final = final * final * (3 - 2 * final)
    st_contour += final * (-0.4 * range_st if rng.random() < 0.8 else 0.5 * range_st)
    n_ctrl = int(dur * 20) + 2
    st_contour += np.interp(t, np.arange(n_ctrl) / 20, rng.normal(0.0, 0.3, n_ctrl))
    st_contour += 0.15 * np.sin(2 * np.pi * rng.uniform(4, 6) * t + rng.uniform(0, 2 * np.pi))
    f0 = np.clip(f0_base * 2 ** (st_contour / 12), 55.0, 480.0)

    # --- glottal source at 2x rate, band-limited by decimation ------------------------------
    fs2 = 2 * sr
    f0_2 = np.repeat(f0, 2)
    cyc0 = np.floor(np.cumsum(f0_2 / fs2)).astype(np.int64)
    n_cyc = int(cyc0[-1]) + 2
    perturb = st.perturb
    jit = np.clip(1 + spk.jitter * perturb * rng.standard_normal(n_cyc), 0.9, 1.1)
    phase = np.cumsum(f0_2 * jit[cyc0] / fs2) + rng.random()
    cyc = np.floor(phase).astype(np.int64)
    frac = phase - cyc
    flow = _rosenberg(frac, oq)
    shim = np.clip(1 + spk.shimmer * perturb * rng.standard_normal(int(cyc[-1]) + 2), 0.5, 1.5)
    dflow = np.diff(flow, prepend=flow[0]) * shim[cyc]
    src = signal.resample_poly(dflow, 1, 2)[:ns]
    open_phase = (frac[::2] < oq)[:ns].astype(float)
    src = signal.lfilter([1 - tilt], [1, -tilt], src)
    voiced = voice > 0.5
    src /= max(_rms(src[voiced]), 1e-12)

    noise = signal.lfilter([1.0, -0.7], [1.0], rng.standard_normal(ns))
    noise /= max(_rms(noise), 1e-12)
    excitation = src * voice + noise * (breath * voice * (0.5 + 0.5 * open_phase) + asp)

    # --- time-varying cascade of 2-pole formant resonators --------------------------------
    hop = max(1, int(round(_HOP_S * sr)))
    n_blk = -(-ns // hop)
    tb = (np.arange(n_blk) + 0.5) * hop / sr
    kt = np.asarray(key_t)
    kf = np.asarray(key_f)
    order = np.argsort(kt, kind="stable")
    traj = np.stack([np.interp(tb, kt[order], kf[order, j]) for j in range(8)], axis=1)
    freqs = traj[:, :4] * spk.vtl * st.formant_shift * math.exp(rng.normal(0.0, 0.02))
    freqs[:, 0] *= st.f1_shift
    freqs = np.minimum(freqs, 0.46 * sr)
    bws = traj[:, 4:]
    cc = -np.exp(-2 * np.pi * bws / sr)
    bb = 2 * np.exp(-np.pi * bws / sr) * np.cos(2 * np.pi * freqs / sr)
    sos = np.zeros((n_blk, 4, 6))
    sos[:, :, 0] = 1 - bb - cc
    sos[:, :, 3] = 1.0
    sos[:, :, 4] = -bb
    sos[:, :, 5] = -cc
    out = np.empty(ns)
    zi = np.zeros((4, 2))
    for b in range(n_blk):
        sl = slice(b * hop, min((b + 1) * hop, ns))
        out[sl], zi = signal.sosfilt(sos[b], excitation[sl], zi=zi)

    # --- frication and bursts ---------------------------------------------------------------
    ref = max(_rms(out[voiced]), 1e-12)
    for i0, i1, c, g, kind in fric:
        n_f = i1 - i0
        if n_f <= 2 or c.band is None:
            continue
        pad = 10 * ms
        seg = signal.sosfilt(_band_sos(*c.band, sr), rng.standard_normal(n_f + pad))[pad:]
        seg /= max(_rms(seg), 1e-12)
        if kind == "fric":
            env = _ramp(n_f, 15 * ms, 10 * ms)
        else:
            env = np.exp(-np.arange(n_f) / (6.0 * ms)) * 2.0
        out[i0:i1] += seg * env * g * ref * 10 ** (c.level_db / 20)

    # --- level, limiter, noise floor ---------------------------------------------------------
    out *= 10 ** (level_db / 20) / max(_rms(out), 1e-12)
    out = _soft_limit(out)
    n_pre, n_post = int(round(pre * sr)), int(round(post * sr))
    floor = signal.lfilter([1.0], [1.0, -0.6], rng.standard_normal(n_pre + ns + n_post))
    floor *= 10 ** ((_NOISE_FLOOR_DBFS + rng.normal(0.0, 1.0)) / 20) / max(_rms(floor), 1e-12)
    floor[n_pre : n_pre + ns] += out
    return floor, arousal


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16)


def _write_wav(path: Path, pcm: np.ndarray, sr: int) -> None:
    with atomic_path(path) as tmp:
        sf.write(tmp, pcm, sr, subtype="PCM_16", format="WAV")


def synthesize_corpus(
    out_dir: str | Path,
    *,
    seed: int = 7,
    n_speakers: int = 8,
    utterances_per_emotion: int = 10,
    sample_rate: int = 16000,
    room: str | None = None,
) -> Path:
    """Write out_dir/wav/<speaker>/<speaker>_<emotion>_<nn>.wav (16-bit PCM mono) and
    out_dir/meta.tsv; return the meta path. ``room``: a room condition of
    :mod:`deepser.corpus.degrade` (e.g. ``rt60-0.3s``) every utterance is recorded in.

    Speakers alternate female/male (``spk01`` female, ``spk02`` male, ...).  The output is
    byte-identical for identical arguments.
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if n_speakers < 1 or utterances_per_emotion < 1:
        raise ValueError("n_speakers and utterances_per_emotion must be >= 1")
    if sample_rate < 8000:
        raise ValueError("sample_rate must be >= 8000")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spk_w = max(2, len(str(n_speakers)))
    utt_w = max(2, len(str(utterances_per_emotion)))
    rows: list[tuple[str, ...]] = []
    for s in range(n_speakers):
        spk = _speaker(seed, s, spk_w)
        spk_dir = out / "wav" / spk.name
        spk_dir.mkdir(parents=True, exist_ok=True)
        for e, emotion in enumerate(EMOTIONS):
            style = _STYLES[emotion]
            for u in range(utterances_per_emotion):
                rng = np.random.default_rng([seed, 2, s, e, u])
                wave, arousal = _utterance(spk, emotion, rng, sample_rate)
                if room is not None:
                    wave = degrade(wave, sample_rate, room, seed=int(rng.integers(2**31)))
                pcm = _to_pcm16(wave)
                name = f"{spk.name}_{emotion}_{u + 1:0{utt_w}d}.wav"
                _write_wav(spk_dir / name, pcm, sample_rate)
                rows.append(
                    (
                        f"wav/{spk.name}/{name}",
                        emotion,
                        spk.name,
                        spk.gender,
                        style.arousal,
                        style.valence,
                        f"{arousal:.3f}",
                        f"{pcm.size / sample_rate:.3f}",
                    )
                )
    rows.sort(key=lambda r: r[0])
    text = "".join("\t".join(r) + "\n" for r in [META_COLUMNS, *rows])
    meta = out / "meta.tsv"
    write_text(meta, text)
    return meta
