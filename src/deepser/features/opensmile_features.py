"""openSMILE functionals (eGeMAPS, ComParE 2016, ...) as the optional ``opensmile`` feature type.

openSMILE is free for research and education only (audEERING's research licence; commercial use
needs their licence), so it is an optional extra, never a dependency:
``pip install 'deepser[opensmile]'``. The feature type gives one vector per utterance, like
``functionals`` (use ``c_len: 1``, ``max_steps: 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from deepser.errors import FeatureError

FEATURE_SETS = ("eGeMAPSv02", "ComParE_2016", "GeMAPSv01b", "emobase")


@cache
def _smile(feature_set: str):
    try:
        import opensmile
    except ImportError:
        raise FeatureError(
            "the opensmile feature type needs the optional openSMILE package (free for research "
            "only): pip install 'deepser[opensmile]'"
        ) from None
    return opensmile.Smile(
        feature_set=opensmile.FeatureSet[feature_set],
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def opensmile_functionals(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """(1, dims) openSMILE functionals of waveform ``y`` at ``spec["sample_rate"]``."""
    smile = _smile(str(spec["opensmile_set"]))
    frame = smile.process_signal(np.asarray(y, np.float32), int(spec["sample_rate"]))
    return np.nan_to_num(frame.to_numpy(np.float32)[:1], nan=0.0, posinf=0.0, neginf=0.0)


def prepare(spec: Mapping[str, Any]) -> None:
    """Start openSMILE and run it once. openSMILE's native library aborts the process
    (``malloc(): invalid size``) when it first runs after TensorFlow has loaded; once started,
    it keeps working beside TensorFlow. A process that loads a model calls this first."""
    opensmile_functionals(np.zeros(int(spec["sample_rate"]) // 10, np.float32), spec)


def dims(feature_set: str) -> int:
    """Values per utterance of an openSMILE feature set."""
    return len(_smile(feature_set).feature_names)
