"""Training, evaluation, summary, report and bundle on a real (small) run of the workflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from .conftest import SNAKEMAKE, demo_workflow_config, run_workflow

pytestmark = pytest.mark.slow

CONFIG = demo_workflow_config(
    seed=11,
    n_speakers=6,
    utterances_per_emotion=4,
    n_shards=2,
    max_steps=150,
    n_folds=3,
    experiments={
        "exp": {
            "database": "db",
            "tasks": {"emotion": 1.0, "arousal": 0.5},
            "model": {"conv_filters": [4], "rnn_units": 8, "dense_units": 8},
            "training": {
                "epochs": 4,
                "patience": 3,
                "validation_fraction": 0.25,
                "learning_rate": 0.003,
                "seed": 5,
            },
        },
        # a second experiment on the same database: a grid, compared side by side
        "gru": {
            "database": "db",
            "tasks": {"emotion": 1.0},
            "model": {"conv_filters": [4], "rnn": "gru", "rnn_units": 8, "dense_units": 0},
            "training": {"epochs": 2, "validation_fraction": 0.25, "seed": 5},
        },
    },
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("train")
    run_workflow(work, CONFIG)
    return work


def test_folds_are_speaker_disjoint_and_every_utterance_predicted_once(workdir: Path) -> None:
    exp = workdir / "results/experiments/exp"
    with h5py.File(workdir / "results/db/db.h5") as h5:
        speaker_of = dict(zip(h5["utt_id"].asstr(), h5["speaker"].asstr(), strict=True))
        folds = h5["fold"][()]
    predicted = []
    for k in range(3):
        training = json.loads((exp / f"fold-{k}/training.json").read_text())
        parts = [set(training["speakers"][s]) for s in ("train", "validation", "test")]
        assert all(parts) and not (
            parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]
        )
        table = pd.read_csv(exp / f"fold-{k}/predictions.csv", sep="\t", dtype=str)
        assert set(table["speaker"]) == parts[2]  # tested on the test speakers only
        assert {speaker_of[u] for u in table["utt_id"]} == parts[2]
        assert len(table) == int((folds == k).sum())
        predicted += list(table["utt_id"])
        probs = table[[c for c in table if c.startswith("emotion_p_")]].astype(float)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert sorted(predicted) == sorted(speaker_of)  # each utterance exactly once


def test_summary_follows_the_contract(workdir: Path) -> None:
    summary = json.loads((workdir / "results/experiments/exp/metrics.json").read_text())
    assert summary["experiment"] == "exp" and summary["n_folds"] == 3
    for task, n_classes in (("emotion", 4), ("arousal", 3)):
        entry = summary["tasks"][task]
        assert len(entry["classes"]) == n_classes
        for key in ("ua", "wa", "macro_f1"):
            assert len(entry[key]["per_fold"]) == 3
            assert entry[key]["mean"] == pytest.approx(np.mean(entry[key]["per_fold"]))
            assert 0.0 <= entry["pooled"][key] <= 1.0
        assert np.sum(entry["pooled"]["confusion"]) == 6 * 4 * 4
    html = (workdir / "results/experiments/exp/report.html").read_text()
    assert "data:image/png;base64," in html and "fold" in html
    assert {p.name for p in (workdir / "results/experiments/exp/plots").iterdir()} >= {
        "confusion-emotion.png",
        "learning_curves.png",
        "class_distribution.png",
    }


def test_bundle_loads_in_a_fresh_process_and_predicts_like_the_saved_model(workdir: Path) -> None:
    final = workdir / "results/experiments/exp/final"
    bundle = json.loads((final / "bundle.json").read_text())
    assert bundle["format_version"] == 1 and bundle["feature_spec"]["sample_rate"] == 16000
    assert [t["name"] for t in bundle["tasks"]] == ["emotion", "arousal"]
    assert bundle["window_spec"]["c_len"] == 10 and bundle["metrics"]["n_folds"] == 3
    assert bundle["data"]["n_utterances"] == 96 and bundle["versions"]["keras"]
    script = (
        "import sys, numpy as np, h5py\n"
        "from deepser.bundle import load_bundle\n"
        "model, info = load_bundle(sys.argv[1])\n"
        "with h5py.File(sys.argv[2]) as h5:\n"
        "    x = {'features': h5['feat'][:7], 'n_valid': h5['n_valid'][:7]}\n"
        "out = model.predict_on_batch(x)\n"
        "np.save(sys.argv[3], np.concatenate([out['emotion'], out['arousal']], axis=1))\n"
    )
    outs = []
    for i in range(2):
        path = workdir / f"pred{i}.npy"
        subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                str(final),
                str(workdir / "results/db/db.h5"),
                str(path),
            ],
            check=True,
            capture_output=True,
        )
        outs.append(np.load(path))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert outs[0].shape == (7, 7)


def test_experiment_grid_is_compared(workdir: Path) -> None:
    page = (workdir / "results/experiments/comparison.html").read_text()
    assert "exp" in page and "gru" in page and "data:image/png;base64," in page
    for name in ("exp", "gru"):  # the databases and features are shared, not recomputed
        assert (workdir / f"results/experiments/{name}/final/bundle.json").is_file()
    assert len(list((workdir / "results/logs/build_database").iterdir())) == 1


def test_same_seed_same_metrics(workdir: Path) -> None:
    before = (workdir / "results/experiments/exp/fold-1/metrics.json").read_text()
    run_workflow(workdir, CONFIG, "--forcerun", "train_fold", "--until", "evaluate_fold")
    after = (workdir / "results/experiments/exp/fold-1/metrics.json").read_text()
    assert json.loads(before)["tasks"] == json.loads(after)["tasks"]


def test_snakemake_report(workdir: Path) -> None:
    cfg = workdir / "config.yaml"
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "-s",
            str(Path(__file__).parents[1] / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(cfg),
            "--report",
            str(workdir / "report.html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (workdir / "report.html").stat().st_size > 10_000
