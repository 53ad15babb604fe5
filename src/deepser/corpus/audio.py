"""Audio loading: any soundfile-readable file -> mono float32 at a chosen sample rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from deepser.errors import AudioError


def check_audio(path: str | Path) -> tuple[int, int]:
    """Read only the header; return (frames, sample rate) or raise :class:`AudioError`."""
    if not Path(path).is_file():
        raise AudioError(path, "file not found")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError with the reason
        raise AudioError(path, f"unreadable audio ({exc})") from None
    if info.frames <= 0:
        raise AudioError(path, "contains no samples")
    return int(info.frames), int(info.samplerate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Mix (frames, channels) down to (frames,) by averaging the channels."""
    if data.ndim == 1:
        return data
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); a no-op at equal rates."""
    if orig_sr == target_sr:
        return y
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Load ``path`` as mono float32 in [-1, 1] at ``sample_rate`` (integer and float formats)."""
    if not Path(path).is_file():
        raise AudioError(path, "file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "contains no samples")
    return np.ascontiguousarray(resample(to_mono(data), sr, sample_rate), dtype=np.float32)
