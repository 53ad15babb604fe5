"""Fusion, selection without peeking, the classic baseline and strict figures, through the real
workflow on a small demo corpus: two experiments on two databases of the same corpus and folds
(log-mel sequence model, functionals network with speaker-level normalisation), a weighted and
an average fusion, a stacked one, and a selection between the two experiments."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepser.database.store import read_info
from deepser.evaluation.predictions import read_predictions
from deepser.features.shards import FeatureShard
from deepser.late_fusion import combine
from deepser.metrics import fold_metrics

from ..helpers import demo_workflow_config, run_workflow

TINY = {"epochs": 2, "validation_fraction": 0, "seed": 1, "batch_size": 16}
CONFIG = demo_workflow_config(
    seed=11,
    n_speakers=6,
    utterances_per_emotion=2,
    n_shards=1,
    max_steps=100,
    n_folds=3,
    experiments={
        "seq": {
            "database": "db",
            "tasks": {"emotion": 1.0},
            "model": {"conv_filters": [4], "rnn_units": 8, "dense_units": 8},
            "training": TINY,
        },
        "fun": {
            "database": "fdb",
            "tasks": {"emotion": 1.0},
            "normalisation": "speaker",
            "model": {"architecture": "dnn", "window_units": [16], "dense_layers": 0},
            "training": {**TINY, "epochs": 4},
        },
    },
)
CONFIG["feature_sets"]["fun"] = {"type": "functionals", "sample_rate": 16000}
CONFIG["databases"]["fdb"] = {
    "corpora": ["demo"],
    "feature_set": "fun",
    "c_len": 1,
    "max_steps": 1,
    "tasks": ["emotion"],
    "n_folds": 3,
}
CONFIG["fusions"] = {
    "avg": {"members": ["seq", "fun"]},
    "wavg": {"members": ["seq", "fun"], "method": "weighted", "inner_folds": 2},
    "stack": {"members": ["fun", "seq"], "method": "stacking", "inner_folds": 2},
}
CONFIG["selections"] = {"pick": {"candidates": ["seq", "fun"], "inner_folds": 2}}
TASK = {"name": "emotion", "type": "categorical"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("combine")
    run_workflow(work, CONFIG)
    return work / "results"


def _classes(results: Path) -> list[str]:
    return json.loads((results / "experiments/seq/fold-0/training.json").read_text())["tasks"][0][
        "classes"
    ]


def _outer(results: Path, exp: str, name: str = "predictions.csv") -> pd.DataFrame:
    task = {**TASK, "classes": _classes(results)}
    tables = [
        read_predictions(results / f"experiments/{exp}/fold-{k}/{name}", [task]) for k in range(3)
    ]
    return pd.concat(tables).sort_values(["corpus", "utt_id"]).reset_index(drop=True)


def test_average_fusion_is_the_mean_of_the_members(run):
    classes = _classes(run)
    task = {**TASK, "classes": classes}
    cols = [f"emotion_p_{c}" for c in classes]
    seq, fun = _outer(run, "seq"), _outer(run, "fun")
    fused = read_predictions(run / "fusions/avg/predictions.csv", [task])
    fused = fused.sort_values(["corpus", "utt_id"]).reset_index(drop=True)
    expected = (seq[cols].to_numpy() + fun[cols].to_numpy()) / 2
    np.testing.assert_allclose(fused[cols].to_numpy(), expected, atol=2e-6)
    metrics = json.loads((run / "fusions/avg/metrics.json").read_text())
    folds = [fused[fused["fold"] == k] for k in range(3)]
    direct = [fold_metrics(f, [task])["tasks"]["emotion"]["ua"] for f in folds]
    assert metrics["tasks"]["emotion"]["ua"]["per_fold"] == pytest.approx(direct)
    # the fun member is speaker-normalised: the strict fusion uses its strict predictions
    assert "strict" in metrics
    assert "Members and fusion" in (run / "fusions/avg/report.html").read_text()


def test_inner_folds_never_hold_a_test_speaker(run):
    for exp in ("seq", "fun"):
        for k in range(3):
            inner = pd.read_csv(run / f"experiments/{exp}/fold-{k}/inner-2.csv", dtype=str)
            outer = pd.read_csv(run / f"experiments/{exp}/fold-{k}/predictions.csv", dtype=str)
            assert not set(inner["speaker"]) & set(outer["speaker"])
            # every training utterance is predicted once, by a model that did not train on it
            assert inner["utt_id"].is_unique
            assert set(inner["inner_fold"]) == {"0", "1"}
            train_utts = set(_outer(run, exp)["utt_id"]) - set(outer["utt_id"])
            assert set(inner["utt_id"]) == train_utts


def test_weighted_fusion_weights_come_from_inner_folds(run):
    fusion = json.loads((run / "fusions/wavg/fusion.json").read_text())
    classes = _classes(run)
    task = {**TASK, "classes": classes}
    cols = [f"emotion_p_{c}" for c in classes]
    fused = read_predictions(run / "fusions/wavg/predictions.csv", [task])
    for entry in fusion["folds"]:
        k, w = entry["fold"], entry["params"]["emotion"]["weights"]
        assert sum(w) == pytest.approx(1.0) and len(w) == 2
        seq = _outer(run, "seq").query("fold == @k")
        fun = _outer(run, "fun").query("fold == @k")
        part = fused[fused["fold"] == k].sort_values(["corpus", "utt_id"])
        expected = w[0] * seq[cols].to_numpy() + w[1] * fun[cols].to_numpy()
        np.testing.assert_allclose(part[cols].to_numpy(), expected, atol=2e-6)


def test_stacking_fusion_and_its_bundle_run_in_the_recognizer(run, tmp_path):
    fusion = json.loads((run / "fusions/stack/fusion.json").read_text())
    assert set(fusion["final"]["emotion"]) == {"mean", "scale", "coef", "intercept"}
    bundle = run / "fusions/stack/final"
    data = json.loads((bundle / "bundle.json").read_text())
    assert data["kind"] == "fusion" and data["members"] == ["members/fun", "members/seq"]
    wav = sorted((run.parent / "data/demo").rglob("*.wav"))[0]
    out = tmp_path / "timeline.jsonl"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "deepser"),
            "recognize",
            "--model",
            str(bundle),
            "--wav",
            str(wav),
            "--whole-file",
            "--jsonl",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    line = json.loads(out.read_text().splitlines()[0])
    assert line["emotion"] in _classes(run)
    assert sum(line[f"emotion_p_{c}"] for c in _classes(run)) == pytest.approx(1.0, abs=1e-3)


def test_fused_engine_equals_the_combiner_on_member_outputs(run):
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.vad import Segment

    bundle = run / "fusions/stack/final"
    engine = Engine.from_bundle(bundle)
    wav = sorted((run.parent / "data/demo").rglob("*.wav"))[0]
    from deepser.corpus.audio import load_audio

    y = load_audio(wav, engine.sample_rate)
    seg = Segment(0, y.size, engine.sample_rate, y, 1.0, "whole")
    fused = engine.recognize(seg).outputs["emotion"]
    members = [Engine.from_bundle(bundle / m) for m in engine.fused.members]
    probas = [m.recognize(seg).outputs["emotion"][None] for m in members]
    params = engine.fused.params["emotion"]
    np.testing.assert_allclose(fused, combine("stacking", params, probas)[0], atol=1e-6)


def test_selection_chooses_on_inner_folds(run):
    sel = json.loads((run / "selections/pick/selection.json").read_text())
    classes = _classes(run)
    task = {**TASK, "classes": classes}
    chosen = read_predictions(run / "selections/pick/predictions.csv", [task])
    for row in sel["folds"]:
        k, pick = row["fold"], row["chosen"]
        scores = {c: row[f"inner UA {c}"] for c in ("seq", "fun")}
        assert scores[pick] == max(scores.values())
        mine = chosen[chosen["fold"] == k].sort_values("utt_id")
        theirs = _outer(run, pick).query("fold == @k").sort_values("utt_id")
        np.testing.assert_allclose(
            mine[[f"emotion_p_{c}" for c in classes]].to_numpy(),
            theirs[[f"emotion_p_{c}" for c in classes]].to_numpy(),
        )
    metrics = json.loads((run / "selections/pick/metrics.json").read_text())
    assert "test folds" in metrics["chosen_on_test_folds"]["note"]
    final = json.loads((run / "selections/pick/final/bundle.json").read_text())
    assert final["experiment"] == sel["final"]


def test_baseline_equals_a_direct_scikit_learn_run(run):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    info = read_info(run / "db/db.h5")
    rows = np.flatnonzero(~info.augmented)
    # the config's functionals set "fun" serves the log-mel database's baseline too
    shards = sorted((run / "corpora/demo/features/fun").glob("shard-*.h5"))
    vectors = {}
    for path in shards:
        with FeatureShard(path) as shard:
            vectors.update({u: v[0] for u, v in shard.read_all().items()})
    x = np.stack([vectors[u] for u in info.utt_id[rows]]).astype(np.float64)
    classes = info.tasks[0]["classes"]
    from deepser.database.store import read_labels

    y = read_labels(run / "db/db.h5", rows, [0])[:, 0].astype(int)
    fold = info.fold[rows]
    per_fold = []
    for k in range(3):
        scaler = StandardScaler().fit(x[fold != k])
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=0)
        model.fit(scaler.transform(x[fold != k]), y[fold != k])
        pred = model.predict(scaler.transform(x[fold == k]))
        recalls = [np.mean(pred[y[fold == k] == c] == c) for c in np.unique(y[fold == k])]
        per_fold.append(float(np.mean(recalls)))
    base = json.loads((run / "baselines/db/metrics.json").read_text())
    assert base["tasks"]["emotion"]["ua"]["per_fold"] == pytest.approx(per_fold, abs=1e-9)
    assert len(classes) == len(base["tasks"]["emotion"]["classes"])
    exp = json.loads((run / "experiments/seq/metrics.json").read_text())
    assert exp["baseline"]["tasks"]["emotion"]["ua"] == base["tasks"]["emotion"]["ua"]
    assert "Classic baseline" in (run / "experiments/seq/report.html").read_text()
    comparison = (run / "experiments/comparison.html").read_text()
    assert "baseline mean" in comparison and "stack" in comparison and "pick" in comparison


def test_speaker_normalised_experiment_reports_strict_figures(run):
    metrics = json.loads((run / "experiments/fun/metrics.json").read_text())
    assert metrics["normalisation"] == "speaker"
    strict = metrics["strict"]["tasks"]["emotion"]["ua"]
    task = {**TASK, "classes": _classes(run)}
    tables = [
        read_predictions(run / f"experiments/fun/fold-{k}/strict_predictions.csv", [task])
        for k in range(3)
    ]
    direct = [fold_metrics(t, [task])["tasks"]["emotion"]["ua"] for t in tables]
    assert strict["per_fold"] == pytest.approx(direct)
    # strict inputs differ from the adapted ones: the probabilities are not all equal
    adapted = _outer(run, "fun")
    cold = _outer(run, "fun", "strict_predictions.csv")
    cols = [f"emotion_p_{c}" for c in task["classes"]]
    assert not np.allclose(adapted[cols].to_numpy(), cold[cols].to_numpy())
    assert "Adapted and strict" in (run / "experiments/fun/report.html").read_text()
    seq = json.loads((run / "experiments/seq/metrics.json").read_text())
    assert "strict" not in seq  # globally normalised: its figures are already strict


def test_combining_rules_ran_only_tracked_library_code(run):
    """This module's run (strict mode, as every workflow run of the suite) ran the rules of
    fusion and selection; each job's log confirms the check of its code inputs."""
    from .test_workflow import COMBINE_RULES

    confirmed = "every library module this job ran is an input of its rule"
    checked = set()
    for log in (run / "logs").rglob("*.log"):
        match = re.search(r"rule (\w+), wildcards", log.read_text())
        if match and match.group(1) in COMBINE_RULES:
            assert confirmed in log.read_text(), log
            checked.add(match.group(1))
    assert checked == COMBINE_RULES
