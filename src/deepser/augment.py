"""Data augmentation for the training fold only.

Two kinds:

- **Waveform copies** (feature-set option ``augment``): each utterance also gets ``copies``
  perturbed versions (speed, pitch, additive noise at a chosen SNR), extracted like the original
  and stored in the same shard as ``<utt_id>#aug<k>``. The database carries them next to their
  source; :func:`deepser.data.split_fold` gives them to the training set only (never to
  validation or test, and never for a speaker who is in the test or validation set).
- **SpecAugment-style masking** (experiment option ``training.spec_augment``): random frequency
  bands and runs of frames of each training example are set to the training mean, on the fly.

Both are seeded: the copies by the feature set's ``seed`` and the utterance id (so a shard gives
the same copies whichever job extracts it), the masks by the training seed.
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

SPEC_AUGMENT_DEFAULTS: dict[str, Any] = {
    "freq_masks": 2,
    "freq_width": 6,  # maximum width of a frequency mask, in feature dimensions
    "time_masks": 2,
    "time_width": 10,  # maximum width of a time mask, in frames
    "probability": 1.0,  # share of training examples that get masked
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


def spec_augment(
    feat: np.ndarray,
    n_valid: np.ndarray,
    rng: np.random.Generator,
    cfg: Mapping[str, Any],
    fill: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Mask a batch of time-major windows ``(N, T, 1, c_len, D)`` in place of a copy: per
    example, ``freq_masks`` bands of up to ``freq_width`` dims and ``time_masks`` runs of up to
    ``time_width`` frames (over the valid frames, across window borders) are set to ``fill``
    (the per-dimension training mean, i.e. zero after the model's normalisation)."""
    cfg = {**SPEC_AUGMENT_DEFAULTS, **cfg}
    out = np.array(feat, dtype=np.float32, copy=True)
    n, t, _, c_len, dims = out.shape
    frames = out.reshape(n, t * c_len, dims)  # a view: frames of consecutive windows
    fill = np.broadcast_to(np.asarray(fill, dtype=np.float32).reshape(-1), (dims,))
    for i in range(n):
        if rng.random() >= cfg["probability"]:
            continue
        n_frames = max(1, int(n_valid[i]) * c_len)
        for _ in range(int(cfg["freq_masks"])):
            width = int(rng.integers(0, min(cfg["freq_width"], dims) + 1))
            start = int(rng.integers(0, dims - width + 1))
            frames[i, :n_frames, start : start + width] = fill[start : start + width]
        for _ in range(int(cfg["time_masks"])):
            width = int(rng.integers(0, min(cfg["time_width"], n_frames) + 1))
            start = int(rng.integers(0, n_frames - width + 1))
            frames[i, start : start + width, :] = fill
    return out
