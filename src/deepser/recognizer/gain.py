"""Gain normalisation of segments before feature extraction (``--gain bundle|auto|MIN,MAX``).

- ``bundle`` (default): the normalisation the model was trained with, from ``bundle.json``.
- ``MIN,MAX``: fixed min-max bounds (the original's ``-g_min/-g_max``), in the float waveform
  domain, mapped to the bundle's min-max target range ([0, 1], the original's, if the bundle
  does not use min-max).
- ``auto``: the original recogniser's running calibration. Start speaking a few *practice*
  utterances at various loudness: every accepted segment widens the running minimum and maximum
  sample values (they never shrink), and each segment is normalised with the extremes known
  after it was seen. Normalisation therefore depends on what was heard before, as in the
  original recogniser.

Every mode ends in :func:`deepser.corpus.gain.apply_gain`, the function the workflow uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deepser.bundle import Bundle
from deepser.corpus.gain import apply_gain
from deepser.errors import UsageError

DEFAULT_RANGE = (0.0, 1.0)


def target_range(gain: Mapping[str, Any]) -> tuple[float, float]:
    """Min-max target range of a gain spec ([0, 1] when it is not min-max)."""
    if gain.get("method") == "minmax" and "range" in gain:
        lo, hi = gain["range"]
        return float(lo), float(hi)
    return DEFAULT_RANGE


class GainControl:
    """Normalisation of one segment; subclasses may learn from the segments they see."""

    name = "bundle"

    def __init__(self, gain: Mapping[str, Any]) -> None:
        self.gain = dict(gain)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        return apply_gain(y, self.gain)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.gain.items())


class FixedGain(GainControl):
    """Fixed min-max bounds given on the command line."""

    name = "fixed"

    def __init__(self, lo: float, hi: float, out_range: tuple[float, float]) -> None:
        if not hi > lo:
            raise UsageError(f"--gain MIN,MAX needs MAX > MIN, got {lo},{hi}")
        super().__init__({"method": "minmax", "min": lo, "max": hi, "range": list(out_range)})


class AutoGain(GainControl):
    """The original's running calibration: extremes only widen; ``practice`` segments calibrate."""

    name = "auto"

    def __init__(self, out_range: tuple[float, float], practice: int = 3) -> None:
        super().__init__(
            {"method": "minmax", "min": np.inf, "max": -np.inf, "range": list(out_range)}
        )
        self.practice = int(practice)
        self.n_seen = 0

    @property
    def calibrating(self) -> bool:
        return self.n_seen < self.practice

    def observe(self, y: np.ndarray) -> bool:
        """Widen the extremes with segment ``y``; True if they changed."""
        self.n_seen += 1
        if not y.size:
            return False
        lo, hi = float(np.min(y)), float(np.max(y))
        changed = lo < self.gain["min"] or hi > self.gain["max"]
        self.gain["min"] = min(self.gain["min"], lo)
        self.gain["max"] = max(self.gain["max"], hi)
        return changed

    def __call__(self, y: np.ndarray) -> np.ndarray:
        self.observe(y)
        if not self.gain["max"] > self.gain["min"]:  # digital silence so far: nothing to scale
            return np.asarray(y, np.float32)
        return apply_gain(y, self.gain)

    def status(self) -> str:
        """One status line for stderr."""
        bounds = f"min {self.gain['min']:.4f}, max {self.gain['max']:.4f}"
        if self.calibrating:
            return (
                f"gain auto: calibrating {self.n_seen}/{self.practice} ({bounds}): speak a few "
                "practice utterances, softly and loudly"
            )
        return f"gain auto: {bounds} after {self.n_seen} segment(s); extremes keep widening"


def parse_gain_mode(mode: str) -> str | tuple[float, float]:
    """``--gain MODE``: 'bundle', 'auto', or finite (MIN, MAX) with MAX > MIN; else
    :class:`UsageError` (a bad command line)."""
    mode = mode.strip()
    if mode in ("bundle", "auto"):
        return mode
    try:
        lo, hi = (float(p) for p in mode.split(","))
    except ValueError:
        raise UsageError(
            f"--gain {mode!r}: use 'bundle', 'auto' or two numbers 'MIN,MAX' (e.g. -0.9,0.9)"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise UsageError(f"--gain {mode!r}: MIN and MAX must be finite numbers")
    if not hi > lo:
        raise UsageError(f"--gain MIN,MAX needs MAX > MIN, got {lo:g},{hi:g}")
    return lo, hi


def make_gain(mode: str, bundle: Bundle, practice: int = 3) -> tuple[GainControl, list]:
    """Build the gain control for ``--gain MODE``; returns it and a list of warnings."""
    base, warning = bundle.gain, bundle.gain_warning
    warnings = [warning] if warning else []
    parsed = parse_gain_mode(mode)
    if parsed == "bundle":
        return GainControl(base), warnings
    if base.get("method") not in ("minmax", None):
        warnings.append(
            f"the model was trained with gain {base.get('method')!r}, not min-max; --gain "
            f"{mode.strip()} maps audio to {list(target_range(base))}, which it has not seen"
        )
    if parsed == "auto":
        return AutoGain(target_range(base), practice), warnings
    lo, hi = parsed
    return FixedGain(lo, hi, target_range(base)), warnings
