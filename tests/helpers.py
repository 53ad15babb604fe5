"""Helpers shared by the tests: test signals, real workflow runs and what to read from them,
and the small reference workflow that many tests share (trained once per session, see the
``reference`` fixture in ``conftest.py``)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from deepser.database.store import DatabaseWriter

# ------------------------------------------------------------------------------- paths, signals

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "corpora" / "emodb"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def require_emodb() -> Path:
    """The EmoDB copy, or skip the test with the reason."""
    if not (EMODB / "meta.tsv").is_file():
        pytest.skip(
            f"EmoDB copy not found at {EMODB} (it lives in ../shared, absent in a fresh clone)"
        )
    return EMODB


def write_wav(path: Path, y: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    """Write a wav file (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: a deterministic test signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.2 / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 6))
    return (y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def voiced(seconds: float, sr: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A vowel-like burst: a glottal-like harmonic series with a slow pitch glide and a 10 ms
    fade in/out, loud enough for any VAD mode."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / sr
    y = sum((0.3 / k) * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 12))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return (y * ramp).astype(np.float32)


def noise(seconds: float, sr: int = 16000, level: float = 1e-3, seed: int = 1) -> np.ndarray:
    """Background noise (about -60 dBFS)."""
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(round(seconds * sr)))).astype(np.float32)


def demo_workflow_config(
    *,
    seed: int,
    n_speakers: int,
    utterances_per_emotion: int,
    n_shards: int,
    max_steps: int,
    n_folds: int,
    experiments: dict,
) -> dict:
    """A small real workflow: demo corpus -> log-mel (24 bands) -> database with emotion and
    arousal tasks -> the given experiments."""
    return {
        "demo_corpus": {
            "dir": "data/demo",
            "seed": seed,
            "n_speakers": n_speakers,
            "utterances_per_emotion": utterances_per_emotion,
        },
        "corpora": {
            "demo": {
                "meta": "data/demo/meta.tsv",
                "n_shards": n_shards,
                "columns": {"emotion": "emotion", "speaker": "speaker", "arousal": "arousal"},
            }
        },
        "feature_sets": {"logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 24}},
        "databases": {
            "db": {
                "corpora": ["demo"],
                "feature_set": "logmel",
                "c_len": 10,
                "max_steps": max_steps,
                "tasks": ["emotion", "arousal"],
                "n_folds": n_folds,
            }
        },
        "experiments": experiments,
    }


def workflow_command(workdir: Path, config: dict, *args: str) -> list[str]:
    """The command that runs the real workflow (this repo's Snakefile) in ``workdir`` with
    ``config`` (written there as ``config.yaml``)."""
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    return [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        "--cores",
        "2",
        *args,
    ]


def run_workflow(
    workdir: Path, config: dict, *args: str, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the real workflow (this repo's Snakefile) in ``workdir`` with ``config``."""
    cmd = workflow_command(workdir, config, *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned(proc) -> dict[str, int]:
    """Jobs a (dry) run plans, from Snakemake's 'Job stats' table."""
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    jobs = {}
    for line in out.split("Job stats:", 1)[1].splitlines()[3:]:  # after the header and rule
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match or match.group(1) == "total":
            break
        jobs[match.group(1)] = int(match.group(2))
    assert jobs, out[-3000:]
    return jobs


def planned_wildcards(proc) -> list[str]:
    """The wildcards of every job a dry run plans."""
    return re.findall(r"^\s+wildcards: (.*)$", proc.stdout + proc.stderr, flags=re.M)


# ---------------------------------------------------------------------- synthetic databases

SYN_T, SYN_C, SYN_D = 3, 2, 6  # windows, frames per window, feature dims


def synthetic_db(
    path: Path,
    labels: np.ndarray,
    speakers: list[str],
    folds: np.ndarray,
    seed: int = 0,
    separation: float = 1.0,
    offsets: dict[str, float] | None = None,
    aux: np.ndarray | None = None,
) -> Path:
    """A database in this project's format: class k shifts dimension k by ``separation``; a
    speaker offset (``offsets``) shifts every dimension; rows sorted by fold."""
    rng = np.random.default_rng(seed)
    order = np.argsort(folds, kind="stable")
    n_tasks = 1 if aux is None else 2
    writer = DatabaseWriter(path, len(labels), (SYN_T, 1, SYN_C, SYN_D), n_tasks)
    bounds = []
    for i in order:
        feat = rng.standard_normal((SYN_T, 1, SYN_C, SYN_D)).astype(np.float32)
        feat[..., int(labels[i]) % SYN_D] += separation
        feat += (offsets or {}).get(speakers[i], 0.0)
        n_valid = 1 + int(rng.integers(0, SYN_T))
        feat[n_valid:] = 0.0
        label = [labels[i]] if aux is None else [labels[i], aux[i]]
        writer.append(
            feat, np.asarray(label, float), n_valid, int(folds[i]), f"u{i:04d}", speakers[i], "syn"
        )
    sorted_folds = folds[order]
    for k in range(int(folds.max()) + 1):
        idx = np.flatnonzero(sorted_folds == k)
        bounds.append((int(idx[0]), int(idx[-1]) + 1))
    n_classes = int(labels.max()) + 1
    tasks = [
        {"name": "emotion", "type": "categorical", "classes": [f"c{k}" for k in range(n_classes)]}
    ]
    if aux is not None:
        tasks.append({"name": "gender", "type": "categorical", "classes": ["f", "m"]})
    writer.finish(
        bounds,
        {
            "window_spec": {
                "c_len": SYN_C,
                "max_steps": SYN_T * SYN_C,
                "layout": "2d",
                "n_steps": SYN_T,
                "dims": SYN_D,
            },
            "tasks": tasks,
            "feature_spec": {"type": "logmel", "sample_rate": 16000},
            "gain": {"syn": {"method": "none"}},
            "corpora": ["syn"],
            "speakers": sorted(set(speakers)),
        },
    )
    return path


def skewed_db(path: Path) -> Path:
    """Two overlapping classes, 10 % minority, 4 speakers (folds)."""
    rng = np.random.default_rng(3)
    n = 480
    labels = (rng.random(n) < 0.1).astype(int)
    speakers = [f"s{i % 4}" for i in range(n)]
    folds = np.array([i % 4 for i in range(n)])
    return synthetic_db(path, labels, speakers, folds, separation=0.35)


# ------------------------------------------------------------ the stages in one process


def run_stages(
    work: Path,
    corpora: dict[str, dict],
    feature_set: dict,
    database: dict,
    experiments: dict[str, dict] | None = None,
    threads: int = 1,
) -> dict[str, Path]:
    """The workflow's stages called in this process, as its rules call them (meta -> one
    feature shard per corpus -> database -> per experiment: folds trained and evaluated,
    summary, final bundle), for tests whose subject is the library rather than Snakemake.
    ``corpora``: name -> a ``corpora:`` config entry (one shard each); ``experiments`` run in
    order (``init_from`` names an earlier one). Returns the database and experiment folders."""
    from deepser.bundle import finish_bundle
    from deepser.corpus.gain import resolve_gain
    from deepser.corpus.meta import CorpusSpec, read_meta
    from deepser.database.build import CorpusInput, build_database
    from deepser.evaluation.fold import evaluate_fold
    from deepser.evaluation.summary import summarize
    from deepser.features.augment import waveform_config
    from deepser.features.extraction import extract_shard
    from deepser.features.registry import resolve_spec
    from deepser.files import write_json, write_tsv
    from deepser.training.final import train_final
    from deepser.training.train import train
    from deepser.workflow.config import resolve_experiments

    spec = resolve_spec(feature_set)
    gain = resolve_gain(feature_set.get("gain") or {"method": "none"}, None)
    augment = waveform_config(feature_set.get("augment"))
    inputs = []
    for name, cfg in corpora.items():
        folder = work / "corpora" / name
        result = read_meta(CorpusSpec.from_config(name, {**cfg, "n_shards": 1}))
        write_tsv(folder / "meta.tsv", result.table)
        write_json(folder / "vocab.json", result.vocab, sort_keys=False)
        rows = list(zip(result.table["utt_id"], result.table["audio"], strict=True))
        extract_shard(rows, spec, gain, folder / "shard-0.h5", augment=augment)
        inputs.append(
            CorpusInput(name, folder / "meta.tsv", folder / "vocab.json", (folder / "shard-0.h5",))
        )
    paths = {"db": work / "db.h5"}
    attrs = build_database(inputs, database, paths["db"])
    resolved = resolve_experiments({"experiments": experiments or {}})
    for name, experiment in resolved.items():
        exp = work / "experiments" / name
        source = experiment.get("init_from")
        init = None if source is None else paths[source] / "final" / "model.keras"
        folds = [exp / f"fold-{k}" for k in range(len(attrs["folds"]))]
        for k, fold in enumerate(folds):
            train(paths["db"], experiment, k, fold, threads=threads, init_model=init)
            evaluate_fold(
                paths["db"],
                fold / "model.keras",
                fold / "training.json",
                k,
                fold / "predictions.csv",
                fold / "metrics.json",
                out_validation=fold / "validation_predictions.csv",
            )
        summarize(name, experiment, paths["db"], folds, None, exp)
        trainings = [f / "training.json" for f in folds]
        metrics = exp / "metrics.json"
        train_final(
            name,
            experiment,
            paths["db"],
            trainings,
            exp / "final",
            exp / "final_bundle_base.json",
            init_model=init,
        )
        finish_bundle(exp / "final_bundle_base.json", metrics, exp / "final")
        paths[name] = exp
    return paths


# --------------------------------------------------------------------- the reference workflow

# 4 speakers x 4 emotions x 2 = 32 utterances, 2 shards, 2 speaker-independent folds, 2 epochs.
# Training uses the rule's 2 threads everywhere (local --cores 2, SLURM --cpus-per-task=2):
# TensorFlow's results are reproducible only for a fixed thread count.
EXPERIMENT = {
    "database": "db",
    "tasks": {"emotion": 1.0, "arousal": 0.5},
    "model": {"conv_filters": [4], "rnn_units": 8, "dense_units": 8},
    "training": {"epochs": 2, "patience": 2, "validation_fraction": 0.34, "seed": 1},
}
CONFIG = demo_workflow_config(
    seed=4,
    n_speakers=4,
    utterances_per_emotion=2,
    n_shards=2,
    max_steps=150,
    n_folds=2,
    experiments={"exp": EXPERIMENT},
)
N_FOLDS = 2


def reference_run(tmp_path_factory) -> Path:
    """The folder of one complete local run of :data:`CONFIG`, made once per test session
    (the ``reference`` fixture); tests copy it before changing anything in it."""
    work = tmp_path_factory.getbasetemp() / "reference-run"
    if not (work / "results/experiments/exp/final/bundle.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        run_workflow(work, CONFIG)
    return work


def results(work: Path, experiment: str = "exp") -> dict:
    """Everything a run's training and evaluation produced that must not depend on where or
    how often it ran: cross-validated metrics, per-fold metrics, predictions with their
    probabilities, learning curves, and the final model's bundle (minus timings and paths)."""
    exp = Path(work) / "results/experiments" / experiment
    out = {"metrics": json.loads((exp / "metrics.json").read_text())}
    for k in range(N_FOLDS):
        fold = exp / f"fold-{k}"
        out[f"fold-{k}/metrics"] = json.loads((fold / "metrics.json").read_text())
        out[f"fold-{k}/predictions"] = pd.read_csv(fold / "predictions.csv").to_dict("list")
        out[f"fold-{k}/history"] = pd.read_csv(fold / "history.csv").to_dict("list")
        training = json.loads((fold / "training.json").read_text())
        out[f"fold-{k}/best_epoch"] = training["best_epoch"]
        out[f"fold-{k}/weights"] = model_weights(fold / "model.keras")
    bundle = json.loads((exp / "final/bundle.json").read_text())
    out["final/training"] = bundle["training"]
    out["final/metrics"] = bundle["metrics"]
    out["final/weights"] = model_weights(exp / "final/model.keras")
    return out


def model_weights(path: Path) -> dict[str, str]:
    """A digest of every weight array of a saved Keras model (read without Keras: the
    ``.keras`` file is a zip holding ``model.weights.h5``)."""
    with zipfile.ZipFile(path) as zf:
        data = io.BytesIO(zf.read("model.weights.h5"))
    digests: dict[str, str] = {}
    with h5py.File(data, "r") as h5:

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                array = obj[()]
                digests[name] = (
                    f"{array.dtype}{array.shape}:" + hashlib.sha256(array.tobytes()).hexdigest()
                )

        h5.visititems(visit)
    assert digests, f"no weights in {path}"
    return digests
