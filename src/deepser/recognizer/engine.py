"""Segment -> features -> prediction, with the workflow's own functions.

The feature path is exactly the workflow's (feature extraction and the database build):
:func:`deepser.corpus.gain.apply_gain` -> :func:`deepser.features.registry.extract` ->
:func:`deepser.database.windows.cut_windows` -> :func:`deepser.database.windows.as_row` (2d:
``(T, 1, c_len, D)``, 3d: ``(1, T, c_len, D)``). Speaker statistics accumulate with
:class:`deepser.stats.Moments`, as the database's do. Predictions use
``model.predict_on_batch`` (a compiled function, traced once at start-up by
:meth:`Engine.warm_up`), never an eager ``model(x)``.
"""

from __future__ import annotations

import contextlib
import json
import time
import zipfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepser.bundle import (
    BUNDLE_FORMAT,
    Bundle,
    FusionBundle,
    is_fusion,
    load_bundle,
    load_exported,
    read_bundle,
    read_fusion,
)
from deepser.database.windows import as_row, cut_windows
from deepser.errors import BundleError, FeatureError, RecognizerError
from deepser.features.registry import UTTERANCE_TYPES, extract, prepare_extractor
from deepser.late_fusion import combine
from deepser.models import FEATURES, N_VALID, as_inputs
from deepser.recognizer.gain import GainControl
from deepser.recognizer.vad import Segment
from deepser.runtime import ensure_std_streams, quiet_stderr
from deepser.stats import Moments, standardise


@dataclass
class Prediction:
    """The model's output for one segment: per task class probabilities (or a value)."""

    segment: Segment
    outputs: dict[str, np.ndarray]  # task -> (n_classes,) probabilities, or (1,) for continuous
    emitted_at: float = field(default_factory=time.perf_counter)

    @property
    def latency_s(self) -> float:
        """Seconds from the segment's end being detected to this prediction."""
        return self.emitted_at - self.segment.detected_at


def model_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a ``.keras`` file (a zip archive), or None: Keras itself says
    "File not found" about a file that is there but is no zip."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            if zipfile.is_zipfile(fh):
                return None
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return "an empty file" if size == 0 else f"{size} bytes, not a zip archive"


class RunningSpeakerNorm:
    """Live speaker-level normalisation: per-dimension mean and standard deviation of every
    speech frame seen in this session (the current speaker). Before any speech, a segment is
    standardised with its own statistics."""

    def __init__(self) -> None:
        self.moments = Moments()

    def update(self, frames: np.ndarray) -> None:
        self.moments.add(frames)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        moments = self.moments
        if not moments.count:
            moments = Moments()
            moments.add(frames)
        return standardise(frames, moments.mean, moments.std)

    def reset(self) -> None:
        """Forget the statistics (a new speaker)."""
        self.moments = Moments()


class Engine:
    """A loaded bundle: turns segment audio into the model's input and predicts."""

    def __init__(
        self, model, bundle: Bundle | Mapping[str, Any], gain: GainControl | None = None
    ) -> None:
        if not isinstance(bundle, Bundle):
            bundle = Bundle.from_json({"format_version": BUNDLE_FORMAT, **bundle})
        self.model = model
        self.bundle = bundle
        self.spec = dict(bundle.feature_spec)
        self.window = dict(bundle.window_spec)
        self.tasks = list(bundle.tasks)
        self.sample_rate = bundle.sample_rate
        self.gain = gain or GainControl(bundle.gain)
        self.calibrated = True  # apply the bundle's temperatures (False: raw probabilities)
        method = bundle.normalisation.get("method", "global")
        self.speaker_norm = RunningSpeakerNorm() if method == "speaker" else None
        outputs = model.output_names if hasattr(model, "output_names") else []
        names = [t["name"] for t in self.tasks]
        if outputs and sorted(outputs) != sorted(names):
            raise BundleError(f"the model's outputs {outputs} are not the bundle's tasks {names}")

    @classmethod
    def from_bundle(
        cls, path: str | Path, gain: GainControl | None = None, quiet: bool = True
    ) -> Engine:
        """Load ``path`` (``load_bundle``: format and input shape checked) and warm it up;
        ``quiet`` hides TensorFlow's start-up notices on stderr."""
        ensure_std_streams()  # a closed stdout or stderr: /dev/null, before Keras starts
        with quiet_stderr() if quiet else contextlib.nullcontext():
            return cls._load(path, gain)

    @classmethod
    def _load(cls, path: str | Path, gain: GainControl | None) -> Engine:
        if is_fusion(path):
            return FusedEngine.load(path, gain)
        plain = read_bundle(path)
        prepare_extractor(plain.feature_spec)  # before Keras loads
        if plain.runtime is not None:  # an exported bundle: its runtime, no Keras
            model, bundle = load_exported(path)
            engine = cls(model, bundle, gain)
            engine.warm_up()
            return engine
        try:
            model, bundle = load_bundle(path)
        except BundleError:
            raise
        except ModuleNotFoundError as exc:  # the light install (deepser[runtime]) has no Keras
            raise BundleError(
                f"{path}: a Keras bundle needs {exc.name} (pip install 'deepser[train]'); on a "
                f"light install, recognise with an exported bundle: deepser export {path} "
                "--format litert --out DIR, where Keras is installed"
            ) from None
        except Exception as exc:  # a corrupt model.keras: Keras raises many different types
            model_file = Path(path) / "model.keras"
            problem = model_file_problem(model_file)
            if problem is not None:
                raise BundleError(f"{model_file}: not a Keras model file ({problem})") from None
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"{path}: cannot load model.keras ({msg})") from None
        engine = cls(model, bundle, gain)
        engine.warm_up()
        return engine

    @property
    def max_duration_s(self) -> float:
        """Audio the model sees per segment (the rest is cut, as in training); functionals
        summarise the whole segment."""
        if self.spec["type"] in UTTERANCE_TYPES:
            return float("inf")
        if self.spec["type"] == "raw":
            return self.window["max_steps"] / self.sample_rate
        return self.window["max_steps"] * self.spec["hop_length"] / self.sample_rate

    def features(
        self, y: np.ndarray, gain: GainControl | None = None, adapt: bool = True
    ) -> tuple[np.ndarray, int]:
        """Waveform (at the feature rate) -> (one model input row, number of valid windows).
        A speaker-normalised model gets the frames standardised with the running statistics of
        the session's speech so far, this segment included (``adapt``: update them)."""
        return self.rows(self._extract(y, gain), adapt)

    def rows(self, feat: np.ndarray, adapt: bool = True) -> tuple[np.ndarray, int]:
        """Extracted features -> (one model input row, valid windows); a speaker-normalised
        model standardises them with the running statistics (``adapt``: update them first)."""
        if self.speaker_norm is not None:
            if adapt:
                self.speaker_norm.update(feat)
            feat = self.speaker_norm.apply(feat)
        windows, n_valid = cut_windows(feat, self.window["c_len"], self.window["max_steps"])
        return as_row(windows, self.window["layout"]), n_valid

    def enrol(self, y: np.ndarray) -> None:
        """Add a recording of the current speaker (at the feature rate, one utterance) to the
        running speaker statistics before recognition starts."""
        if self.speaker_norm is None:
            raise RecognizerError(
                "--enrol needs a model trained with speaker-level normalisation "
                "(normalisation: speaker); this one uses global training statistics"
            )
        self.speaker_norm.update(self._extract(y))

    def _extract(self, y: np.ndarray, gain: GainControl | None = None) -> np.ndarray:
        """Gain-normalised features of waveform ``y`` (the bundle's or the given gain);
        :class:`FeatureError` if they are not finite (as the workflow rejects such audio)."""
        feat = extract((gain or self.gain)(np.asarray(y, np.float32)), self.spec)
        if not np.all(np.isfinite(feat)):
            raise FeatureError("non-finite feature values")
        return feat

    def predict(self, rows: np.ndarray, n_valid: np.ndarray) -> dict[str, np.ndarray]:
        """Model outputs for a batch of rows (compiled ``predict_on_batch``)."""
        out = self.model.predict_on_batch(
            as_inputs(np.asarray(rows, np.float32), np.asarray(n_valid, np.int32))
        )
        if not isinstance(out, dict):
            out = {self.tasks[0]["name"]: out}
        return {name: np.asarray(value) for name, value in out.items()}

    def recognize(self, segment: Segment) -> Prediction:
        """Features of the segment's audio and the model's outputs for it."""
        row, n_valid = self.features(segment.audio)
        out = self.predict(row[None], np.array([n_valid]))
        return Prediction(
            segment, {t["name"]: self.calibrate(t, out[t["name"]][0]) for t in self.tasks}
        )

    @property
    def calibrated_tasks(self) -> list[str]:
        """Tasks whose probabilities get the bundle's temperature (none when turned off)."""
        return list(self.bundle.calibration) if self.calibrated else []

    def calibrate(self, task: Mapping[str, Any], value: np.ndarray) -> np.ndarray:
        """A categorical task's probabilities after the bundle's temperature scaling (fitted
        on the folds' validation speakers); unchanged without one or when turned off."""
        t = self.bundle.temperature(task["name"])
        if not self.calibrated or t == 1.0 or task.get("type", "categorical") != "categorical":
            return value
        logits = np.log(np.clip(np.asarray(value, np.float64), 1e-7, None)) / t
        p = np.exp(logits - logits.max())
        return (p / p.sum()).astype(np.float32)

    def warm_up(self) -> None:
        """Trace the compiled predict function and check the feature dimensions once."""
        rng = np.random.default_rng(0)
        y = (0.01 * rng.standard_normal(self.sample_rate)).astype(np.float32)
        row, n_valid = self.features(y, GainControl({"method": "none"}), adapt=False)
        expected = self.window["dims"]
        if row.shape[-1] != expected:
            raise RecognizerError(
                f"the bundle's feature spec gives {row.shape[-1]} dims per frame but its windows "
                f"have {expected}: bundle.json is inconsistent"
            )
        self.predict(row[None], np.array([n_valid]))


class FusedEngine:
    """A fused bundle: every segment goes through each member (features computed once per
    feature type, gain and sample rate), and the members' class probabilities are combined
    with the bundle's fitted combiner. Offers :class:`Engine`'s interface."""

    def __init__(self, members: list[Engine], fused: FusionBundle) -> None:
        rates = {m.sample_rate for m in members}
        if len(rates) != 1:
            raise BundleError(f"the fused bundle's members use different sample rates {rates}")
        self.members = members
        self.fused = fused
        self.bundle = members[0].bundle
        self.tasks = list(fused.tasks)
        self.sample_rate = members[0].sample_rate
        self.gain = members[0].gain
        self.spec = {"type": "fusion of " + ", ".join(m.spec["type"] for m in members)}
        self.window = members[0].window
        self.speaker_norm = next((m.speaker_norm for m in members if m.speaker_norm), None)
        self.joint = self._joint_model()
        n_types = len({self._feature_key(m) for m in members})
        self._pool = ThreadPoolExecutor(max_workers=n_types) if n_types > 1 else None

    @classmethod
    def load(cls, path: str | Path, gain: GainControl | None = None) -> FusedEngine:
        fused = read_fusion(path)
        if gain is not None and gain.name == "bundle":
            gain = None  # each member applies its own bundle's gain
        for member in fused.members:  # before any member's Keras model loads
            prepare_extractor(read_bundle(Path(path) / member).feature_spec)
        members = [Engine._load(Path(path) / m, gain) for m in fused.members]
        engine = cls(members, fused)
        engine.warm_up()
        return engine

    @property
    def max_duration_s(self) -> float:
        return max(m.max_duration_s for m in self.members)

    @property
    def calibrated_tasks(self) -> list[str]:
        """None: the combiner's output has no fitted temperature."""
        return []

    def enrol(self, y: np.ndarray) -> None:
        """Enrol the speaker in every speaker-normalised member."""
        adaptive = [m for m in self.members if m.speaker_norm is not None]
        if not adaptive:
            self.members[0].enrol(y)  # raises the explanation
        for member in adaptive:
            member.enrol(y)

    @staticmethod
    def _feature_key(member: Engine) -> str:
        return json.dumps([member.spec, member.gain.name, member.gain.gain], default=str)

    def _joint_model(self):
        """One Keras model running every member (one compiled call per segment instead of one
        per member): inputs ``m<i>_features`` / ``m<i>_n_valid``, outputs ``m<i>_<task>``."""
        import keras

        inputs, outputs = [], {}
        for i, member in enumerate(self.members):
            feat = keras.Input(member.bundle.row_shape, name=f"m{i}_{FEATURES}")
            n_valid = keras.Input((), dtype="int32", name=f"m{i}_{N_VALID}")
            member.model.name = f"member{i}_{member.model.name}"  # unique inside the joint
            out = member.model({FEATURES: feat, N_VALID: n_valid})
            if not isinstance(out, dict):
                out = {member.tasks[0]["name"]: out}
            inputs += [feat, n_valid]
            for task in self.tasks:
                outputs[f"m{i}_{task['name']}"] = out[task["name"]]
        return keras.Model(inputs, outputs)

    def recognize(self, segment: Segment) -> Prediction:
        """Each member's probabilities (features extracted once per feature type and gain,
        one model call for all members), then the combiner."""
        first = {}  # one member per distinct feature computation
        for member in self.members:
            first.setdefault(self._feature_key(member), member)
        if len(first) > 1:  # distinct feature types side by side (numpy releases the GIL)
            futures = {k: self._pool.submit(m._extract, segment.audio) for k, m in first.items()}
            cache = {k: f.result() for k, f in futures.items()}
        else:
            cache = {k: m._extract(segment.audio) for k, m in first.items()}
        batch = []
        for member in self.members:
            row, n_valid = member.rows(cache[self._feature_key(member)])
            batch += [row[None].astype(np.float32), np.array([n_valid], np.int32)]
        out = self.joint.predict_on_batch(batch)
        fused = {
            t["name"]: combine(
                self.fused.method,
                self.fused.params[t["name"]],
                [np.asarray(out[f"m{i}_{t['name']}"]) for i in range(len(self.members))],
            )[0]
            for t in self.tasks
        }
        return Prediction(segment, fused)

    def warm_up(self) -> None:
        """Trace the joint model once (the members were warmed up when loaded)."""
        rng = np.random.default_rng(0)
        y = (0.01 * rng.standard_normal(self.sample_rate)).astype(np.float32)
        batch = []
        for member in self.members:
            row, n_valid = member.features(y, GainControl({"method": "none"}), adapt=False)
            batch += [row[None].astype(np.float32), np.array([n_valid], np.int32)]
        self.joint.predict_on_batch(batch)
