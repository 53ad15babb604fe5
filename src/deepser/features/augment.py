"""Waveform augmentation (feature-set option ``augment``), for the training fold only.

Each utterance also gets ``copies`` perturbed versions (speed, pitch, additive noise at a chosen
SNR), extracted like the original and stored in the same shard as ``<utt_id>#aug<k>``. The
database carries them next to their source; :func:`deepser.training.split.split_fold` gives them
to the training set only (never to validation or test, and never for a speaker who is in the test
or validation set). The copies are seeded by the feature set's ``seed`` and the utterance id, so
a shard gives the same copies whichever job extracts it. (SpecAugment-style masking of training
batches is :mod:`deepser.training.spec_augment`.)
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

AUG_SUFFIX = "#aug"
_AUG_RE = re.compile(r"#aug\d+$")

WAVEFORM_DEFAULTS: dict[str, Any] = {
    "copies": 1,
    "speed": None,  # [low, high] factor, e.g. [0.9, 1.1]
    "pitch_semitones": None,  # [low, high], e.g. [-2, 2]
    "noise_snr_db": None,  # [low, high] in dB, e.g. [10, 30]
    "seed": 0,
}


def augmented_id(utt_id: str, copy: int) -> str:
    """The utterance id of copy ``copy`` (1-based) of ``utt_id``."""
    return f"{utt_id}{AUG_SUFFIX}{copy}"


def is_augmented(utt_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Boolean mask: which utterance ids are augmented copies."""
    return np.array([bool(_AUG_RE.search(str(u))) for u in utt_ids], dtype=bool)


def source_id(utt_id: str) -> str:
    """The original utterance id of a (possibly augmented) id."""
    return _AUG_RE.sub("", utt_id)


def waveform_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Complete a feature set's ``augment`` config with defaults (None: no augmentation)."""
    if not config:
        return None
    cfg = {**WAVEFORM_DEFAULTS, **config}
    if not any(cfg[k] for k in ("speed", "pitch_semitones", "noise_snr_db")):
        raise ValueError("augment: set at least one of speed, pitch_semitones, noise_snr_db")
    for key in ("speed", "pitch_semitones", "noise_snr_db"):
        if cfg[key] is not None and (len(cfg[key]) != 2 or cfg[key][0] > cfg[key][1]):
            raise ValueError(f"augment.{key}: expected [low, high], got {cfg[key]!r}")
    return cfg


def copy_rng(utt_id: str, copy: int, seed: int) -> np.random.Generator:
    """A generator that depends only on the seed, the utterance and the copy number."""
    return np.random.default_rng([seed, zlib.crc32(utt_id.encode()), copy])


def change_speed(y: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play ``y`` ``factor`` times faster (tempo and pitch together, like Kaldi's speed
    perturbation): resample to ``sr / factor`` and read it back at ``sr``."""
    import soxr

    if abs(factor - 1.0) < 1e-6:
        return y
    return soxr.resample(y, sr, sr / factor, quality="HQ").astype(np.float32)


def shift_pitch(y: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift the pitch by ``semitones`` keeping the duration (librosa's phase vocoder)."""
    import librosa

    if abs(semitones) < 1e-6:
        return y
    return librosa.effects.pitch_shift(y, sr=sr, n_steps=float(semitones)).astype(np.float32)


def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise at ``snr_db`` relative to the signal's mean power."""
    power = float(np.mean(np.square(y, dtype=np.float64)))
    if power <= 0:
        return y
    noise = rng.standard_normal(y.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return (y + noise).astype(np.float32)


def perturb(y: np.ndarray, sr: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """One perturbed copy of ``y``: speed, then pitch, then noise, each drawn uniformly from
    its configured range (a range left unset is not applied)."""
    if cfg.get("speed"):
        y = change_speed(y, sr, float(rng.uniform(*cfg["speed"])))
    if cfg.get("pitch_semitones"):
        y = shift_pitch(y, sr, float(rng.uniform(*cfg["pitch_semitones"])))
    if cfg.get("noise_snr_db"):
        y = add_noise(y, float(rng.uniform(*cfg["noise_snr_db"])), rng)
    return y
