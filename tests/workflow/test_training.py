"""Training, evaluation, summary, report and bundle of the shared reference run (a real, small
run of the workflow: 4 speakers, 2 folds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from deepser.evaluation.predictions import read_predictions

from ..helpers import CONFIG, N_FOLDS, run_workflow


@pytest.fixture(scope="module")
def workdir(reference: Path) -> Path:
    return reference


def test_folds_are_speaker_disjoint_and_every_utterance_predicted_once(workdir: Path) -> None:
    exp = workdir / "results/experiments/exp"
    with h5py.File(workdir / "results/db/db.h5") as h5:
        speaker_of = dict(zip(h5["utt_id"].asstr(), h5["speaker"].asstr(), strict=True))
        folds = h5["fold"][()]
    predicted = []
    for k in range(N_FOLDS):
        training = json.loads((exp / f"fold-{k}/training.json").read_text())
        parts = [set(training["speakers"][s]) for s in ("train", "validation", "test")]
        assert all(parts) and not (
            parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]
        )
        table = read_predictions(exp / f"fold-{k}/predictions.csv", training["tasks"])
        assert set(table["speaker"]) == parts[2]  # tested on the test speakers only
        assert {speaker_of[u] for u in table["utt_id"]} == parts[2]
        assert len(table) == int((folds == k).sum())
        predicted += list(table["utt_id"])
        assert set(table["corpus"]) == {"demo"}
        probs = table[[c for c in table if c.startswith("emotion_p_")]]
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert sorted(predicted) == sorted(speaker_of)  # each utterance exactly once


def test_summary_follows_the_contract(workdir: Path) -> None:
    summary = json.loads((workdir / "results/experiments/exp/metrics.json").read_text())
    assert summary["experiment"] == "exp" and summary["n_folds"] == N_FOLDS
    for task, n_classes in (("emotion", 4), ("arousal", 3)):
        entry = summary["tasks"][task]
        assert len(entry["classes"]) == n_classes
        for key in ("ua", "wa", "macro_f1"):
            assert len(entry[key]["per_fold"]) == N_FOLDS
            assert entry[key]["mean"] == pytest.approx(np.mean(entry[key]["per_fold"]))
            assert 0.0 <= entry["pooled"][key] <= 1.0
        assert np.sum(entry["pooled"]["confusion"]) == 4 * 4 * 2  # every utterance once
    html = (workdir / "results/experiments/exp/report.html").read_text()
    assert "data:image/png;base64," in html and "fold" in html
    assert {p.name for p in (workdir / "results/experiments/exp/plots").iterdir()} >= {
        "confusion-emotion.png",
        "learning_curves.png",
        "class_distribution.png",
    }


def test_bundle_loads_in_a_fresh_process_and_predicts_like_the_saved_model(
    workdir: Path, tmp_path: Path
) -> None:
    final = workdir / "results/experiments/exp/final"
    bundle = json.loads((final / "bundle.json").read_text())
    assert bundle["format_version"] == 1 and bundle["feature_spec"]["sample_rate"] == 16000
    assert [t["name"] for t in bundle["tasks"]] == ["emotion", "arousal"]
    assert bundle["window_spec"]["c_len"] == 10 and bundle["metrics"]["n_folds"] == N_FOLDS
    assert bundle["data"]["n_utterances"] == 32 and bundle["versions"]["keras"]
    assert bundle["gain"] == {"method": "none"} and bundle["gains"] == {"demo": {"method": "none"}}
    script = (
        "import sys, numpy as np, h5py\n"
        "from deepser.bundle import load_bundle\n"
        "model, info = load_bundle(sys.argv[1])\n"
        "with h5py.File(sys.argv[2]) as h5:\n"
        "    x = {'features': h5['feat'][:7], 'n_valid': h5['n_valid'][:7]}\n"
        "out = model.predict_on_batch(x)\n"
        "np.save(sys.argv[3], np.concatenate([out['emotion'], out['arousal']], axis=1))\n"
    )
    paths = [tmp_path / f"pred{i}.npy" for i in range(2)]
    db = workdir / "results/db/db.h5"
    procs = [  # two fresh processes at once
        subprocess.Popen([sys.executable, "-c", script, str(final), str(db), str(path)])
        for path in paths
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    outs = [np.load(path) for path in paths]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert outs[0].shape == (7, 7)


def test_snakemake_report(workdir: Path, tmp_path: Path) -> None:
    run_workflow(workdir, CONFIG, "--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 10_000
