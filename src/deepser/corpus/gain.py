"""Gain statistics (map over shards, reduce to one file) and waveform gain normalisation.

Methods:
- ``none``: the waveform as read.
- ``minmax``: the original toolkit's global normalisation ``lo + (x - min) (hi - lo) / (max - min)``
  with corpus statistics (``source: corpus``), fixed bounds (``fixed``) or the original's
  ``*.gain.txt`` (``file``); like the original, to [0, 1] by default and without clipping.
- ``peak`` / ``rms``: per-utterance scaling to a target peak (default 1.0) or RMS (default 0.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

GAIN_METHODS = ("none", "minmax", "peak", "rms")
_GAIN_TXT = re.compile(r"min gain:\s*(?P<min>\S+?),\s*max gain:\s*(?P<max>\S+)")


def shard_stats(signals: Iterable[np.ndarray]) -> dict[str, float | int]:
    """Sufficient statistics of the samples of several signals (one shard)."""
    stats: dict[str, float | int] = {
        "n_utterances": 0,
        "n_samples": 0,
        "min": float("inf"),
        "max": float("-inf"),
        "sum": 0.0,
        "sum_sq": 0.0,
    }
    for y in signals:
        y64 = np.asarray(y, dtype=np.float64)
        stats["n_utterances"] += 1
        stats["n_samples"] += int(y64.size)
        stats["min"] = min(stats["min"], float(y64.min()))
        stats["max"] = max(stats["max"], float(y64.max()))
        stats["sum"] += float(y64.sum())
        stats["sum_sq"] += float(np.dot(y64, y64))
    return stats


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, float | int]:
    """Combine shard statistics; adds the corpus mean and RMS."""
    merged = shard_stats([])
    for part in parts:
        if not part["n_samples"]:
            continue
        merged["n_utterances"] += int(part["n_utterances"])
        merged["n_samples"] += int(part["n_samples"])
        merged["min"] = min(merged["min"], float(part["min"]))
        merged["max"] = max(merged["max"], float(part["max"]))
        merged["sum"] += float(part["sum"])
        merged["sum_sq"] += float(part["sum_sq"])
    if not merged["n_samples"]:
        raise ValueError("no audio samples to compute gain statistics from")
    merged["mean"] = merged["sum"] / merged["n_samples"]
    merged["rms"] = float(np.sqrt(merged["sum_sq"] / merged["n_samples"]))
    return merged


def read_gain_txt(path: str | Path) -> tuple[float, float]:
    """Read the original toolkit's ``<meta>.gain.txt`` (``min gain:\\t-1.05, max gain:\\t1.1``)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    match = _GAIN_TXT.search(text)
    if not match:
        raise ValueError(
            f"{path}: not a gain file (expected 'min gain:\\t<min>, max gain:\\t<max>')"
        )
    return float(match["min"]), float(match["max"])


def resolve_gain(config: Mapping[str, Any], corpus_stats: Mapping[str, Any] | None) -> dict:
    """The explicit gain normalisation (method and the statistics it uses) for the bundle."""
    method = config.get("method", "none")
    if method not in GAIN_METHODS:
        raise ValueError(f"unknown gain method {method!r}; known: {', '.join(GAIN_METHODS)}")
    if method == "none":
        return {"method": "none"}
    if method in ("peak", "rms"):
        return {
            "method": method,
            "target": float(config.get("target", 1.0 if method == "peak" else 0.1)),
        }
    source = config.get("source", "corpus")
    if source == "fixed":
        if "min" not in config or "max" not in config:
            raise ValueError("gain source 'fixed' needs both 'min' and 'max'")
        lo, hi = float(config["min"]), float(config["max"])
    elif source == "file":
        lo, hi = read_gain_txt(config["file"])
    else:
        if corpus_stats is None:
            raise ValueError("gain source 'corpus' needs the merged corpus statistics")
        lo, hi = float(corpus_stats["min"]), float(corpus_stats["max"])
    if not hi > lo:  # the original took a bound of 0.0 for 'unset' and ignored it; we do not
        raise ValueError(f"gain bounds need max > min, got min={lo}, max={hi}")
    target = [float(v) for v in config.get("range", [0.0, 1.0])]
    return {"method": "minmax", "source": source, "min": lo, "max": hi, "range": target}


def apply_gain(y: np.ndarray, gain: Mapping[str, Any]) -> np.ndarray:
    """Normalise waveform ``y`` as the resolved ``gain`` says (float32, no clipping)."""
    method = gain["method"]
    if method == "none":
        return y
    if method == "minmax":
        lo, hi = gain["range"]
        scale = (hi - lo) / (gain["max"] - gain["min"])
        return ((y - gain["min"]) * scale + lo).astype(np.float32)
    if method == "peak":
        level = float(np.max(np.abs(y))) if y.size else 0.0
    else:
        level = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if level == 0.0:
        return y
    return (y * (gain["target"] / level)).astype(np.float32)
