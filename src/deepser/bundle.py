"""The model bundle: the one contract between training and every recogniser.

A bundle is a folder holding ``model.keras`` (loadable with ``safe_mode=True``) and
``bundle.json``: the format version, the feature spec (type, every parameter, sample rate), the
gain normalisation (``gain``, the one the recogniser applies, and ``gains``, one per training
corpus), the window spec (c_len, max_steps, layout, n_steps, dims), the tasks with ordered class
names, how features are normalised (``normalisation``), the training data summary, the
cross-validated metrics and the versions of deepser, Keras and its backend. The recogniser needs
nothing else. :class:`Bundle` is that record; this module alone reads and writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deepser import __version__
from deepser.database.windows import row_shape
from deepser.deploy.runtime import load_runtime_model
from deepser.errors import BundleError
from deepser.files import read_json, write_json
from deepser.models import FEATURES, N_VALID

BUNDLE_FORMAT = 1
REQUIRED = ("feature_spec", "window_spec", "tasks")
GLOBAL_NORMALISATION = {"method": "global", "live": "statistics inside the model"}
SPEAKER_NORMALISATION = {
    "method": "speaker",
    "live": "running per-dimension mean and standard deviation of the current speaker's speech "
    "frames, updated with every segment",
}


@dataclass(frozen=True)
class Bundle:
    """The content of ``bundle.json``."""

    feature_spec: dict[str, Any]
    window_spec: dict[str, Any]
    tasks: list[dict[str, Any]]
    gain: dict[str, Any] = field(default_factory=lambda: {"method": "none"})
    gains: dict[str, dict[str, Any]] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=lambda: dict(GLOBAL_NORMALISATION))
    experiment: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    legacy: dict[str, Any] | None = None
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtime: dict[str, Any] | None = None  # an exported bundle's format, model file and check
    format_version: int = BUNDLE_FORMAT

    @property
    def model_file(self) -> str:
        """The model's file (or folder) inside the bundle: ``model.keras``, or an export's."""
        return str((self.runtime or {}).get("model") or "model.keras")

    def temperature(self, task: str) -> float:
        """The task's calibration temperature (1.0: not calibrated)."""
        return float(self.calibration.get(task, {}).get("temperature", 1.0))

    @property
    def sample_rate(self) -> int:
        return int(self.feature_spec["sample_rate"])

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one model input row (the database layout)."""
        return row_shape(self.window_spec)

    @property
    def gain_warning(self) -> str | None:
        """A note when the training corpora were normalised differently (the recogniser applies
        the first corpus's gain)."""
        gains = list(self.gains.values())
        if all(g == gains[0] for g in gains):
            return None
        first = next(iter(self.gains))
        return (
            f"the bundle has one gain normalisation per corpus ({', '.join(self.gains)}); using "
            f"{first!r}'s (choose another with --gain MIN,MAX)"
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "format_version": self.format_version,
            "experiment": self.experiment,
            "feature_spec": self.feature_spec,
            "gain": self.gain,
            "gains": self.gains,
            "window_spec": self.window_spec,
            "inputs": {
                FEATURES: "float32 " + str(list(self.row_shape)),
                N_VALID: "int32 number of valid windows",
            },
            "tasks": self.tasks,
            "normalisation": self.normalisation,
            "training": self.training,
            "data": self.data,
            "metrics": self.metrics,
            "versions": self.versions,
        }
        if self.legacy is not None:
            out["legacy"] = self.legacy
        if self.calibration:
            out["calibration"] = self.calibration
        if self.runtime is not None:
            out["runtime"] = self.runtime
        return out

    @classmethod
    def from_json(cls, data: Any, where: str | Path = "bundle.json") -> Bundle:
        """Check and read ``bundle.json``'s content. Bundles written before ``gains`` existed
        kept the per-corpus gains in ``gain``; they are read into the same shape."""
        if not isinstance(data, Mapping):
            raise BundleError(f"{where}: not a JSON object (it holds a {type(data).__name__})")
        if "format_version" not in data:
            raise BundleError(f"{where}: no format_version; not a deepser bundle.json")
        version = data["format_version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleError(f"{where}: format_version {version!r} is not a whole number")
        if version != BUNDLE_FORMAT:
            newer = (
                ": written by a newer deepser, upgrade deepser to use it"
                if version > BUNDLE_FORMAT
                else ""
            )
            raise BundleError(
                f"{where}: bundle format {version!r} is not supported "
                f"(this deepser reads format {BUNDLE_FORMAT}){newer}"
            )
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            fused = " (a fused bundle's: read it with read_fusion)" if data.get("kind") else ""
            raise BundleError(
                f"{where}: missing {', '.join(missing)}{fused}; a bundle.json needs "
                f"{', '.join(REQUIRED)}"
            )
        try:
            return cls._from_checked(data)
        except (TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{where}: malformed ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_checked(cls, data: Mapping[str, Any]) -> Bundle:
        gain = dict(data.get("gain") or {"method": "none"})
        gains = dict(data.get("gains") or {})
        if "method" not in gain:  # the older per-corpus form
            gains = gain
            gain = dict(next(iter(gains.values()), {"method": "none"}))
        return cls(
            feature_spec=dict(data["feature_spec"]),
            window_spec=dict(data["window_spec"]),
            tasks=[dict(t) for t in data["tasks"]],
            gain=gain,
            gains=gains,
            normalisation=dict(data.get("normalisation") or GLOBAL_NORMALISATION),
            experiment=str(data.get("experiment", "")),
            training=dict(data.get("training", {})),
            data=dict(data.get("data", {})),
            metrics=dict(data.get("metrics", {})),
            versions=dict(data.get("versions", {})),
            legacy=data.get("legacy"),
            calibration=_calibration(data.get("calibration") or {}),
            runtime=_runtime(data.get("runtime")),
        )


def _runtime(data: Any) -> dict[str, Any] | None:
    """``runtime`` (exported bundles): {"format", "model", ...}."""
    if data is None:
        return None
    if not isinstance(data, Mapping) or not isinstance(data.get("format"), str):
        raise ValueError("runtime is not an object with a format")
    model = data.get("model")
    if not isinstance(model, str) or not model or "/" in model or model.startswith("."):
        raise ValueError(f"runtime.model must be a file name inside the bundle, not {model!r}")
    return dict(data)


def _calibration(data: Any) -> dict[str, dict[str, Any]]:
    """``calibration``: task -> {"temperature": a positive finite number, ...}."""
    if not isinstance(data, Mapping):
        raise ValueError("calibration is not an object of tasks")
    out = {}
    for task, entry in data.items():
        t = entry.get("temperature") if isinstance(entry, Mapping) else None
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < float("inf"):
            raise ValueError(f"calibration.{task}.temperature must be a positive number, not {t!r}")
        out[str(task)] = dict(entry)
    return out


def make_bundle(
    db_attrs: Mapping[str, Any],
    tasks: Sequence[Mapping[str, Any]],
    experiment: str,
    *,
    metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    normalisation: str = "global",
    legacy: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Mapping[str, Any]] | None = None,
) -> Bundle:
    """A bundle for a model trained on a database with attributes ``db_attrs`` (feature spec,
    per-corpus gains, window spec); ``calibration``: task -> {"temperature", ...}."""
    gains = {name: dict(g) for name, g in db_attrs["gain"].items()}
    return Bundle(
        feature_spec=dict(db_attrs["feature_spec"]),
        window_spec=dict(db_attrs["window_spec"]),
        tasks=[{k: t[k] for k in ("name", "type", "classes") if k in t} for t in tasks],
        gain=dict(next(iter(gains.values()), {"method": "none"})),
        gains=gains,
        normalisation=dict(
            SPEAKER_NORMALISATION if normalisation == "speaker" else GLOBAL_NORMALISATION
        ),
        experiment=experiment,
        training=dict(training or {}),
        data=dict(data or {}),
        metrics=dict(metrics or {}),
        versions=_versions(),
        legacy=None if legacy is None else dict(legacy),
        calibration={t: dict(c) for t, c in (calibration or {}).items()},
    )


def bundle_calibration(
    metrics: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each task's temperature from the summary (fitted on the folds' validation speakers)."""
    out = {}
    for task in tasks:
        found = (metrics.get("calibration") or {}).get(task["name"])
        if found:
            out[task["name"]] = {
                "temperature": found["temperature"],
                "fitted_on": found["fitted_on"],
                "ece": found["ece"],
                "ece_calibrated": found["ece_calibrated"],
            }
    return out


def finish_bundle(base_json: str | Path, metrics_path: str | Path, out_dir: str | Path) -> Bundle:
    """``bundle.json`` in ``out_dir``: the final model's bundle (``base_json``) with the
    experiment's cross-validated metrics and each task's calibration temperature."""
    metrics = read_json(metrics_path)
    base = Bundle.from_json(read_json(base_json), base_json)
    bundle = replace(
        base, metrics=dict(metrics), calibration=bundle_calibration(metrics, base.tasks)
    )
    write_bundle_json(out_dir, bundle)
    return bundle


def _versions() -> dict[str, str]:
    import keras

    backend = keras.backend.backend()
    try:
        module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
        backend_version = str(module.__version__)
    except (KeyError, ImportError):
        backend_version = "unknown"
    return {
        "deepser": __version__,
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": backend_version,
    }


def write_bundle_json(folder: str | Path, bundle: Bundle) -> None:
    """Write ``bundle.json`` into ``folder`` (atomically)."""
    write_json(Path(folder) / "bundle.json", bundle.to_json())


def save_bundle(folder: str | Path, model, bundle: Bundle) -> None:
    """Write ``model.keras`` and ``bundle.json`` into ``folder``."""
    from deepser.models.saving import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / "model.keras")
    write_bundle_json(folder, bundle)


def read_bundle(path: str | Path) -> Bundle:
    """``bundle.json`` of a bundle folder, checked (files present, JSON object, format version,
    required keys) without importing Keras, so a wrong bundle fails in a fraction of a second."""
    path = Path(path)
    where = path / "bundle.json"
    if not path.is_dir():
        what = "no such folder" if not path.exists() else "a file, not a folder"
        raise BundleError(f"{path}: not a model bundle ({what}; needs bundle.json and model.keras)")
    if where.is_dir():
        raise BundleError(f"{where}: a folder, not a file")
    if (path / "model.keras").is_dir():
        raise BundleError(f"{path / 'model.keras'}: not a Keras model file (it is a folder)")
    missing = [n for n in ("bundle.json", "model.keras") if not (path / n).is_file()]
    if missing and not (missing == ["model.keras"] and _declares_runtime(where)):
        raise BundleError(
            f"{path}: not a model bundle (needs bundle.json and model.keras; no "
            f"{' / '.join(missing)})"
        )
    try:
        data = read_json(where)
    except (ValueError, UnicodeDecodeError) as exc:
        empty = where.stat().st_size == 0
        raise BundleError(
            f"{where}: not valid JSON ({'an empty file' if empty else exc})"
        ) from None
    except OSError as exc:
        raise BundleError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    bundle = Bundle.from_json(data, where)
    model = path / bundle.model_file
    if bundle.runtime is not None:
        if not model.exists():
            raise BundleError(
                f"{path}: an exported bundle ({bundle.runtime['format']}) without its model "
                f"{bundle.model_file}"
            )
        return bundle
    return bundle


def _declares_runtime(where: Path) -> bool:
    """Whether ``bundle.json`` is an exported bundle's (it has a ``runtime`` entry)."""
    try:
        data = read_json(where)
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, Mapping) and "runtime" in data
    return Bundle.from_json(data, where)


def load_bundle(path: str | Path):
    """Load a bundle -> (keras model, :class:`Bundle`); checks the format and the input shape."""
    from deepser.models.saving import load_model

    path = Path(path)
    bundle = read_bundle(path)
    if bundle.runtime is not None:
        raise BundleError(
            f"{path}: an exported bundle ({bundle.runtime['format']}); it has no Keras model "
            "(the recogniser runs it with load_exported)"
        )
    model = load_model(path / "model.keras")
    expected = list(bundle.row_shape)
    actual = list(model.input_shape[0][1:]) if isinstance(model.input_shape, list) else None
    if actual != expected:
        raise BundleError(f"{path}: the model expects input {actual}, bundle.json says {expected}")
    check_outputs(path, model, bundle.tasks)
    return model, bundle


def load_exported(path: str | Path):
    """Load an exported bundle -> (runtime model, :class:`Bundle`), without Keras."""
    bundle = read_bundle(path)
    return load_runtime_model(path, bundle), bundle


def task_units(task: Mapping[str, Any]) -> int:
    """Output units of a task: its number of classes, or 1 for a continuous task."""
    if task.get("type") == "continuous":
        return 1
    return len(task.get("classes") or [])


def model_output_units(model) -> dict[str, int | None]:
    """Output name -> units (the last dimension) of a Keras model; a single unnamed output
    comes as ``{"": units}``."""
    shapes = model.output_shape
    names = list(getattr(model, "output_names", None) or [])
    if isinstance(shapes, dict):
        pairs = list(shapes.items())
    elif isinstance(shapes, list) and shapes and isinstance(shapes[0], (list, tuple)):
        pairs = list(zip(names or [str(i) for i in range(len(shapes))], shapes, strict=False))
    else:
        pairs = [(names[0] if len(names) == 1 else "", shapes)]
    return {str(name): (shape[-1] if shape else None) for name, shape in pairs}


def check_outputs(path: str | Path, model, tasks: Sequence[Mapping[str, Any]]) -> None:
    """:class:`BundleError` unless each task's model output has as many units as bundle.json
    lists classes (1 for a continuous task). Outputs are matched by name (the model's output
    layers are named after the tasks); a single output serves a single task."""
    units = model_output_units(model)
    for task in tasks:
        name = task["name"]
        if name in units:
            n = units[name]
        elif len(units) == 1 and len(tasks) == 1:
            n = next(iter(units.values()))
        else:
            continue  # a missing output: the recogniser names the outputs and the tasks
        m = task_units(task)
        if n is not None and n != m:
            listed = (
                "a continuous value"
                if task.get("type") == "continuous"
                else f"{m} classes ({', '.join(map(str, task.get('classes') or []))})"
            )
            raise BundleError(
                f"{path}: the model's output for task {name} has {n} units, "
                f"bundle.json lists {listed}"
            )


@dataclass(frozen=True)
class FusionBundle:
    """A fused bundle's ``bundle.json`` (``"kind": "fusion"``): member bundles in sub-folders,
    the combiner per task (:mod:`deepser.late_fusion`), the fused tasks and their metrics."""

    fusion: str
    method: str
    members: list[str]  # sub-folders (relative to the fused bundle) holding member bundles
    tasks: list[dict[str, Any]]
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = BUNDLE_FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "kind": "fusion",
            "fusion": self.fusion,
            "method": self.method,
            "members": self.members,
            "tasks": self.tasks,
            "params": self.params,
            "metrics": self.metrics,
            "versions": {"deepser": __version__},
        }


def is_fusion(path: str | Path) -> bool:
    """Whether ``path`` is a fused bundle's folder."""
    try:
        return read_json(Path(path) / "bundle.json").get("kind") == "fusion"
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return False


def read_fusion(path: str | Path) -> FusionBundle:
    """A fused bundle's ``bundle.json``, checked (members present, one combiner per task)."""
    path = Path(path)
    where = path / "bundle.json"
    try:
        data = read_json(where)
        if data.get("format_version") != BUNDLE_FORMAT:
            raise BundleError(f"{where}: bundle format {data.get('format_version')!r}")
        fused = FusionBundle(
            fusion=str(data["fusion"]),
            method=str(data["method"]),
            members=[str(m) for m in data["members"]],
            tasks=[dict(t) for t in data["tasks"]],
            params=dict(data["params"]),
            metrics=dict(data.get("metrics", {})),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{where}: not a readable fused bundle ({exc})") from None
    for member in fused.members:
        inside = (path / member).resolve()
        if (
            Path(member).is_absolute()
            or ".." in Path(member).parts
            or inside == path.resolve()
            or not inside.is_relative_to(path.resolve())
        ):
            raise BundleError(
                f"{where}: member bundle {member!r} must be a sub-folder of the fused bundle"
            )
        if not (path / member / "bundle.json").is_file():
            raise BundleError(f"{path}: member bundle {member!r} is missing")
    for member in fused.members:
        member_tasks = {t.get("name"): t for t in read_bundle(path / member).tasks}
        for task in fused.tasks:
            mine = member_tasks.get(task["name"])
            if mine is None:
                raise BundleError(f"{path / member}: no task {task['name']} (the fused bundle's)")
            if list(mine.get("classes") or []) != list(task.get("classes") or []):
                raise BundleError(
                    f"{path / member}: task {task['name']} has classes "
                    f"{list(mine.get('classes') or [])}, the fused bundle's are "
                    f"{list(task.get('classes') or [])}"
                )
    missing = [t["name"] for t in fused.tasks if t["name"] not in fused.params]
    if missing:
        raise BundleError(f"{where}: no combiner for task(s) {missing}")
    return fused


def read_primary_bundle(path: str | Path) -> Bundle:
    """``bundle.json`` of a bundle, or of a fused bundle's first member (its sample rate and
    gain are the fused bundle's: every member shares the sample rate)."""
    if is_fusion(path):
        return read_bundle(Path(path) / read_fusion(path).members[0])
    return read_bundle(path)
