"""The feature-type registry: pure functions from a mono waveform to a (frames, dims) float32
array.

Every feature type is one entry of :data:`FEATURE_TYPES`; :func:`resolve_spec` turns a (partial)
feature-set config into an explicit spec (every parameter, the sample rate included) that is stored
next to the features, in databases and in model bundles, so the recogniser computes the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from deepser.errors import FeatureError
from deepser.features.functionals import F0_METHODS, functionals
from deepser.features.opensmile_features import FEATURE_SETS as OPENSMILE_SETS
from deepser.features.opensmile_features import opensmile_functionals
from deepser.features.opensmile_features import prepare as prepare_opensmile
from deepser.features.spectral import (
    DELTA_WIDTH,
    empty_mel_filters,
    max_mel_bands,
    mel_filterbank,
    power_spectrogram,
    to_db,
    with_deltas,
)

FEATURE_TYPES = ("logmel", "mel", "logspec", "pca_logspec", "raw", "functionals", "opensmile")
# one vector per utterance (databases with c_len 1 and max_steps 1)
UTTERANCE_TYPES = ("functionals", "opensmile")

# Defaults per feature type; the original toolkit's settings are those of `mel` and `logspec`
# (n_fft 512, hop 512 or 128, 80 mel bands up to 8 kHz, at 22 050 Hz), but the sample rate is
# always explicit here: the original left it to librosa's 22 050 Hz default without recording it.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "logmel": {"win": "25ms", "hop": "10ms", "n_mels": 40, "fmin": 0.0, "fmax": None, "deltas": 0},
    "mel": {"win": 512, "hop": 512, "n_mels": 80, "fmin": 0.0, "fmax": 8000.0},
    "logspec": {"win": 512, "hop": 128, "top_db": None},
    "pca_logspec": {"win": 512, "hop": 128, "top_db": None, "n_components": 60},
    "raw": {},
    "opensmile": {"opensmile_set": "eGeMAPSv02"},
    "functionals": {
        "win": "25ms",
        "hop": "10ms",
        "n_mels": 40,
        "fmin": 0.0,
        "fmax": None,
        "n_mfcc": 20,
        "deltas": 2,
        "f0_min": 60.0,
        "f0_max": 600.0,
        "f0_method": "yin",  # a stored spec without it means "pyin" (functionals.f0_method)
        "activity_db": 40.0,
    },
}
_LENGTH = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s)?$")


def parse_length(value: str | int, sample_rate: int) -> int:
    """Return a length in samples from ``"25ms"``, ``"0.025s"`` or a sample count."""
    if isinstance(value, int | np.integer):
        return int(value)
    match = _LENGTH.match(str(value).strip())
    if not match:
        raise ValueError(f"cannot read the length {value!r}: use e.g. '25ms', '0.025s' or 400")
    num, unit = float(match["num"]), match["unit"]
    if unit == "ms":
        return int(round(num * sample_rate / 1000.0))
    if unit == "s":
        return int(round(num * sample_rate))
    return int(num)


def resolve_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the explicit feature spec (all parameters, lengths in samples) for a feature set."""
    ftype = config["type"]
    if ftype not in FEATURE_TYPES:
        raise ValueError(f"unknown feature type {ftype!r}; known: {', '.join(FEATURE_TYPES)}")
    sr = int(config["sample_rate"])
    merged = {**_DEFAULTS[ftype], **{k: v for k, v in config.items() if k != "gain"}}
    spec: dict[str, Any] = {"type": ftype, "sample_rate": sr}
    if ftype == "opensmile":  # openSMILE frames the signal itself
        if merged["opensmile_set"] not in OPENSMILE_SETS:
            raise ValueError(f"opensmile_set must be one of {', '.join(OPENSMILE_SETS)}")
        spec["opensmile_set"] = str(merged["opensmile_set"])
        return spec
    if ftype != "raw":
        win = parse_length(merged["win"], sr)
        hop = parse_length(merged["hop"], sr)
        n_fft = int(merged.get("n_fft") or 1 << max(win - 1, 1).bit_length())
        if win > n_fft:
            raise ValueError(f"win ({win} samples) is longer than n_fft ({n_fft})")
        if hop < 1:
            raise ValueError("hop must be at least one sample")
        spec.update(
            win_length=win,
            hop_length=hop,
            n_fft=n_fft,
            window="hann",
            center=bool(merged.get("center", True)),
            pad_mode=str(merged.get("pad_mode", "constant")),
        )
    if ftype in ("logmel", "mel", "functionals"):
        fmax = merged.get("fmax")
        fmax = float(sr / 2 if fmax is None else fmax)
        if fmax > sr / 2:
            raise ValueError(f"fmax {fmax} Hz is above the Nyquist frequency {sr / 2} Hz")
        spec.update(n_mels=int(merged["n_mels"]), fmin=float(merged["fmin"]), fmax=fmax)
    if ftype == "logmel" and merged.get("top_db") is not None:  # absent from the spec when None
        if not float(merged["top_db"]) > 0:
            raise ValueError("top_db must be positive (dB below the utterance's loudest bin)")
        spec["top_db"] = float(merged["top_db"])
    if ftype == "logmel" and int(merged["deltas"]):  # absent from the spec when 0
        if int(merged["deltas"]) not in (1, 2):
            raise ValueError("deltas must be 0, 1 or 2")
        spec.update(deltas=int(merged["deltas"]), delta_width=DELTA_WIDTH)
    if ftype in ("logspec", "pca_logspec"):
        top_db = merged.get("top_db")
        spec["top_db"] = None if top_db is None else float(top_db)
    if ftype == "pca_logspec":
        spec["n_components"] = int(merged["n_components"])
    if ftype == "functionals":
        if not 0 < float(merged["f0_min"]) < float(merged["f0_max"]) < sr / 2:
            raise ValueError("need 0 < f0_min < f0_max < sample_rate / 2 for functionals")
        if not 1 <= int(merged["n_mfcc"]) <= spec["n_mels"]:
            raise ValueError(f"n_mfcc must be between 1 and n_mels ({spec['n_mels']})")
        if int(merged["deltas"]) not in (0, 1, 2):
            raise ValueError("deltas must be 0, 1 or 2")
        if not float(merged["activity_db"]) > 0:
            raise ValueError("activity_db must be positive (frames within it of the loudest)")
        if merged["f0_method"] not in F0_METHODS:
            raise ValueError(f"f0_method must be one of {', '.join(F0_METHODS)}")
        spec.update(
            n_mfcc=int(merged["n_mfcc"]),
            deltas=int(merged["deltas"]),
            f0_min=float(merged["f0_min"]),
            f0_max=float(merged["f0_max"]),
            f0_method=str(merged["f0_method"]),
            activity_db=float(merged["activity_db"]),
        )
    return spec


def _bands(bands: list[int], most: int = 8) -> str:
    shown = ", ".join(str(b) for b in bands[:most])
    return shown + (f", ... ({len(bands)} in all)" if len(bands) > most else "")


def spec_problems(spec: Mapping[str, Any]) -> list[str]:
    """Parameters of a resolved spec (:func:`resolve_spec`) that :func:`resolve_spec` accepts
    but that would give constant or missing features: mel filters without an FFT bin (too many
    bands for ``n_fft``; computed with the extractor's own filterbank), ``fmin`` not below
    ``fmax``, a hop longer than the window (samples never analysed), a window under 2 samples, a
    ``top_db`` floor that is not positive, more PCA components than spectrogram bins. The
    workflow's config check reports them before any job runs; a stored spec (a bundle) is not
    checked again."""
    problems: list[str] = []
    if "win_length" in spec:
        win, hop = int(spec["win_length"]), int(spec["hop_length"])
        if win < 2:
            problems.append(f"win is {win} sample(s); a frame needs at least 2")
        if hop > win:
            problems.append(
                f"hop ({hop} samples) is longer than win ({win}): the samples between frames "
                "would never be analysed; use a hop of at most the window"
            )
    if "n_mels" in spec:
        sr, n_fft, n_mels = int(spec["sample_rate"]), int(spec["n_fft"]), int(spec["n_mels"])
        fmin, fmax = float(spec["fmin"]), float(spec["fmax"])
        if not fmin < fmax:
            problems.append(f"fmin ({fmin:g} Hz) must be below fmax ({fmax:g} Hz)")
        else:
            empty = empty_mel_filters(sr, n_fft, n_mels, fmin, fmax)
            if empty:
                most = max_mel_bands(sr, n_fft, fmin, fmax, n_mels)
                use = (
                    f"use at most {most} mel bands or a larger n_fft/win"
                    if most
                    else "use a larger n_fft/win or a wider fmin..fmax"
                )
                problems.append(
                    f"n_mels {n_mels} with n_fft {n_fft} gives {len(empty)} empty mel filters "
                    f"(bands {_bands(empty)}: constant features); {use}"
                )
    if spec.get("top_db") is not None and not float(spec["top_db"]) > 0:
        problems.append(f"top_db must be positive (dB below the loudest bin), not {spec['top_db']}")
    if "n_components" in spec and int(spec["n_components"]) > int(spec["n_fft"]) // 2 + 1:
        problems.append(
            f"n_components {spec['n_components']} is more than the {int(spec['n_fft']) // 2 + 1} "
            f"bins of an n_fft of {spec['n_fft']}; use at most that many"
        )
    return problems


def _mel(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    fb = mel_filterbank(
        spec["sample_rate"], spec["n_fft"], spec["n_mels"], spec["fmin"], spec["fmax"]
    )
    return power_spectrogram(y, spec) @ fb


def _logmel(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Log-mel (frames, n_mels), floored ``top_db`` below the utterance's loudest bin when set
    (digital silence, e.g. zero padding, is otherwise -100 dB, far below any recorded noise
    floor), with ``deltas`` > 0 followed by its deltas (and delta-deltas): (frames, n_mels x
    (1 + deltas)), static first."""
    logmel = to_db(_mel(y, spec), spec.get("top_db"))
    return with_deltas(logmel, int(spec.get("deltas", 0)), int(spec.get("delta_width", 9)))


def _logspec(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    return to_db(power_spectrogram(y, spec), spec.get("top_db"))


def _pca_logspec(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Log spectrogram whitened by a PCA fitted on this utterance alone (the original's way)."""
    from sklearn.decomposition import PCA

    logspec = _logspec(y, spec)
    n = spec["n_components"]
    if logspec.shape[0] < n:
        raise FeatureError(f"{logspec.shape[0]} frames are fewer than n_components={n}")
    return PCA(n_components=n, whiten=True).fit_transform(logspec).astype(np.float32)


def _functionals(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    return functionals(y, power_spectrogram(y, spec), spec)


def _opensmile(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    return opensmile_functionals(y, spec)


def _raw(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(y, dtype=np.float32)[:, None]


EXTRACTORS: dict[str, Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]] = {
    "logmel": _logmel,
    "mel": _mel,
    "logspec": _logspec,
    "pca_logspec": _pca_logspec,
    "raw": _raw,
    "functionals": _functionals,
    "opensmile": _opensmile,
}


def prepare_extractor(spec: Mapping[str, Any]) -> None:
    """Start a feature type that must start before TensorFlow loads (``opensmile``); a no-op
    for the others. Call it before loading a Keras model in the same process."""
    if spec["type"] == "opensmile":
        prepare_opensmile(spec)


def min_samples(spec: Mapping[str, Any]) -> int:
    """The fewest samples that give at least one feature frame (one full analysis window)."""
    if spec["type"] == "opensmile":  # its longest analysis window is 60 ms
        return int(0.06 * int(spec["sample_rate"]))
    return 1 if spec["type"] == "raw" else int(spec["win_length"])


def extract(y: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Compute the feature ``spec['type']`` of waveform ``y`` (at ``spec['sample_rate']``).

    Raises :class:`FeatureError` when ``y`` is too short for one frame: never an empty feature.
    """
    if len(y) < min_samples(spec):
        raise FeatureError(
            f"{len(y)} samples are fewer than one analysis window ({min_samples(spec)})"
        )
    feat = EXTRACTORS[spec["type"]](y, spec)
    if feat.shape[0] == 0:
        raise FeatureError("no feature frames")
    return np.ascontiguousarray(feat, dtype=np.float32)
