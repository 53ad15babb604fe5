"""The small workflow that the SLURM, interruption and re-run tests share, and its reference:
one uninterrupted local run, made once per test session."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import h5py
import pandas as pd

from ..conftest import demo_workflow_config, run_workflow

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
    """The folder of one complete local run of :data:`CONFIG` (made on first use)."""
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
        out[f"fold-{k}/predictions"] = pd.read_csv(fold / "predictions.csv", sep="\t").to_dict(
            "list"
        )
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
