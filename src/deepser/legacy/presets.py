"""The original toolkit's feature settings, task specs and gain bounds, as deepser specs.

Feature presets (the original extractor: files loaded by librosa at its default 22 050 Hz, min-max
gain normalised to [0, 1], then):

- ``mspec``: linear-power mel spectrogram (no log), n_fft 512, hop 512, Hann window, centred
  frames with reflect padding, 80 Slaney mel bands from 0 to 8 kHz: deepser's ``mel`` type;
- ``raw``: the gain-normalised waveform, one sample per frame: deepser's ``raw`` type.

The original's log spectrogram (``lspec``: 20·log10 of the *power*, floor 1e-5, top_db 80) has
no preset: it is not any of deepser's feature types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepser.corpus.gain import resolve_gain
from deepser.errors import SpecError
from deepser.features.registry import resolve_spec

ORIGINAL_SAMPLE_RATE = 22050
FEATURE_PRESETS: dict[str, dict[str, Any]] = {
    "mspec": {
        "type": "mel",
        "sample_rate": ORIGINAL_SAMPLE_RATE,
        "win": 512,
        "hop": 512,
        "n_fft": 512,
        "n_mels": 80,
        "fmin": 0.0,
        "fmax": 8000.0,
        "center": True,
        "pad_mode": "reflect",
    },
    "raw": {"type": "raw", "sample_rate": ORIGINAL_SAMPLE_RATE},
}
PRESET_ALIASES = {"mel": "mspec", "wav": "raw"}
# the original gain bounds of the published models were never recorded: full scale by default
DEFAULT_GAIN_BOUNDS = (-1.0, 1.0)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def feature_config(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """A feature-set config from a preset name with optional overrides (``mspec``,
    ``raw,sample_rate=16000``, ``mspec,n_mels=40``), a YAML/JSON file holding a feature-set
    config, or a mapping."""
    if isinstance(text, Mapping):
        return dict(text)
    path = Path(text)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        import yaml

        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(config, Mapping) or "type" not in config:
            raise SpecError(f"{path}: expected a feature-set mapping with a 'type'")
        return dict(config)
    name, *overrides = [part.strip() for part in str(text).split(",")]
    name = PRESET_ALIASES.get(name, name)
    if name not in FEATURE_PRESETS:
        known = ", ".join([*FEATURE_PRESETS, *PRESET_ALIASES])
        raise SpecError(
            f"unknown feature preset {name!r} (known: {known}; or a .yaml/.json feature set)"
        )
    config = dict(FEATURE_PRESETS[name])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"feature override {item!r}: use KEY=VALUE, e.g. sample_rate=16000")
        config[key.strip()] = _value(value.strip())
    return config


def feature_spec(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """The explicit feature spec (:func:`deepser.features.registry.resolve_spec`) of
    :func:`feature_config`."""
    config = feature_config(text)
    try:
        return resolve_spec(config)
    except (KeyError, ValueError, TypeError) as exc:
        raise SpecError(f"feature spec {config}: {exc}") from None


def feature_dims(spec: Mapping[str, Any]) -> int:
    """Values per frame of a resolved feature spec."""
    kind = spec["type"]
    if kind in ("mel", "logmel"):
        return int(spec["n_mels"])
    if kind == "logspec":
        return int(spec["n_fft"]) // 2 + 1
    if kind == "pca_logspec":
        return int(spec["n_components"])
    return 1


_TASK = re.compile(
    r"^(?P<name>[A-Za-z_][\w.-]*):(?P<classes>[^:]+)(?::(?P<column>-?\d+))?(?::.*)?$"
)


def parse_tasks(items: Sequence[str], need_column: bool = False) -> list[dict[str, Any]]:
    """Task specs ``NAME:N[:LABEL_COL]`` (the original trainer's ``-mt`` form; classes named
    ``0`` .. ``N-1``; N = 1 is a continuous task) or ``NAME:CLASS,CLASS,...[:LABEL_COL]``.
    Several may also be given in one comma-separated item in the original's form
    (``acted:2:0,arousal:3:1``); fields after the label column (cost, weight, metric) are
    ignored. Returns ``{"name", "type", "classes"?, "column"?}`` dicts."""
    expanded: list[str] = []
    for item in items:
        parts = [p.strip() for p in str(item).split(",")]
        if len(parts) > 1 and all(re.match(r"^[A-Za-z_][\w.-]*:\d+(:|$)", p) for p in parts):
            expanded += parts
        else:
            expanded.append(str(item).strip())
    tasks: list[dict[str, Any]] = []
    for item in expanded:
        match = _TASK.match(item)
        if not match:
            raise SpecError(
                f"task spec {item!r}: use NAME:N_CLASSES[:LABEL_COL] or "
                "NAME:CLASS,CLASS,...[:LABEL_COL] (e.g. laughter:no,yes or arousal:3:4)"
            )
        spec = match["classes"]
        task: dict[str, Any] = {"name": match["name"]}
        if spec.isdigit():
            n = int(spec)
            if n < 1:
                raise SpecError(f"task {item!r}: the number of classes must be at least 1")
            if n == 1:
                task["type"] = "continuous"
            else:
                task.update(type="categorical", classes=[str(k) for k in range(n)])
        else:
            classes = [c.strip() for c in spec.split(",")]
            if len(classes) < 2 or "" in classes or len(set(classes)) != len(classes):
                raise SpecError(f"task {item!r}: needs at least two different class names")
            task.update(type="categorical", classes=classes)
        if match["column"] is not None:
            task["column"] = int(match["column"])
        elif need_column:
            raise SpecError(f"task {item!r}: give the label column, e.g. {item}:0")
        tasks.append(task)
    names = [t["name"] for t in tasks]
    if len(set(names)) != len(names):
        raise SpecError(f"task names must differ: {names}")
    if not tasks:
        raise SpecError("no task given")
    return tasks


def gain_spec(text: str | None) -> dict[str, Any]:
    """The bundle's gain normalisation from ``--gain``: ``MIN,MAX`` (fixed bounds), the
    original's ``<meta>.gain.txt`` file, ``none``, or None (full scale, -1 and 1); all map to
    [0, 1] like the original's."""
    if text is None:
        lo, hi = DEFAULT_GAIN_BOUNDS
        gain = resolve_gain({"method": "minmax", "source": "fixed", "min": lo, "max": hi}, None)
        return {**gain, "note": "default full-scale bounds: the model's were not given"}
    text = str(text).strip()
    if text == "none":
        return {"method": "none"}
    if Path(text).is_file():
        try:
            gain = resolve_gain({"method": "minmax", "source": "file", "file": text}, None)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        return {**gain, "file": Path(text).name}
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise SpecError(
            f"--gain {text!r}: use MIN,MAX (e.g. -1.0541904,1.1097699), a *.gain.txt file, or none"
        ) from None
    try:
        return resolve_gain({"method": "minmax", "source": "fixed", "min": lo, "max": hi}, None)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
