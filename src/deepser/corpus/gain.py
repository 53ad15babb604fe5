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

from deepser.errors import DamagedFileError, rerun_recovery
from deepser.files import read_json

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


STAT_KEYS = ("n_utterances", "n_samples", "min", "max", "sum", "sum_sq")


def read_stat_files(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The shards' gain statistics files; a damaged one raises
    :class:`~deepser.errors.DamagedFileError` naming it and how to recover."""
    parts = []
    for path in paths:
        recover = rerun_recovery(path, "computes this shard's statistics again")
        try:
            part = read_json(path)
        except DamagedFileError as exc:
            raise DamagedFileError(f"gain statistics {exc}. {recover}", path) from None
        if not isinstance(part, dict) or not set(STAT_KEYS) <= set(part):
            raise DamagedFileError(
                f"gain statistics {path}: not a statistics file (needs {', '.join(STAT_KEYS)}). "
                f"{recover}",
                path,
            )
        parts.append(part)
    return parts


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
    """Read the original toolkit's ``<meta>.gain.txt`` (``min gain:\\t-1.05, max gain:\\t1.1``).

    A missing or unreadable file, or one without two numbers, raises :class:`ValueError`
    naming the file."""
    expected = "expected 'min gain:\\t<min>, max gain:\\t<max>'"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: gain file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a gain file ({exc}; {expected})") from None
    match = _GAIN_TXT.search(text)
    if not match:
        raise ValueError(f"{path}: not a gain file ({expected})")
    try:
        return float(match["min"].rstrip(",")), float(match["max"])
    except ValueError:
        raise ValueError(
            f"{path}: not a gain file (min {match['min']!r} or max {match['max']!r} is not a "
            f"number; {expected})"
        ) from None


def gain_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem of a feature set's ``gain`` entry that shows before any audio is read
    (each message starts with the key it concerns, relative to the entry): an unknown method,
    fixed bounds missing or not increasing, a gain file missing, unreadable or with bounds not
    increasing, a target range of zero width (constant output) or a target level that is not
    positive. The corpus statistics (``source: corpus``) are checked when they are merged."""
    method = config.get("method", "none")
    if method not in GAIN_METHODS:
        return [f"method: unknown gain method {method!r}; known: {', '.join(GAIN_METHODS)}"]
    problems: list[str] = []
    if method in ("peak", "rms"):
        target = config.get("target")
        if target is not None and not (np.isfinite(float(target)) and float(target) > 0):
            problems.append(f"target: the {method} target must be a positive number, not {target}")
        return problems
    if method != "minmax":
        return problems
    source = config.get("source", "corpus")
    bounds = None
    if source == "fixed":
        if not {"min", "max"} <= set(config):
            problems.append("source 'fixed' needs min and max")
        else:
            bounds = float(config["min"]), float(config["max"])
            if not bounds[1] > bounds[0]:
                problems.append("max must be greater than min")
                bounds = None
    elif source == "file":
        file = config.get("file")
        if not file:
            problems.append("file: source 'file' needs the gain file (file: <meta>.gain.txt)")
        elif not Path(file).is_file():
            problems.append(f"gain file {file!r} not found")
        else:
            try:
                bounds = read_gain_txt(file)
            except ValueError as exc:
                problems.append(f"file: {exc}")
            else:
                if not bounds[1] > bounds[0]:
                    problems.append(
                        f"file: {file}: max gain {bounds[1]} must be greater than min gain "
                        f"{bounds[0]}"
                    )
    if bounds is not None and not all(np.isfinite(bounds)):
        problems.append(f"the bounds must be finite numbers, not {bounds[0]} and {bounds[1]}")
    lo, hi = (float(v) for v in config.get("range", [0.0, 1.0]))
    if hi == lo:
        problems.append(f"range: [{lo}, {hi}] maps every sample to one value; use e.g. [0, 1]")
    return problems


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
