"""Evaluation a user can trust, through the real workflow: speaker-bootstrap intervals, groups,
calibration stored in the bundle and applied by the recogniser, abstention, degraded audio,
another corpus with a label mapping, paired comparisons and the model card."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ..helpers import REPO, run_workflow

pytestmark = pytest.mark.slow
DEEPSER = Path(sys.executable).parent / "deepser"

MODEL = {"conv_filters": [8], "rnn_units": 16, "dense_units": 16, "dropout": 0.2}
TRAINING = {"epochs": 12, "patience": 12, "learning_rate": 0.005, "validation_fraction": 0.34}
CONFIG = {
    "demo_corpus": {
        "dir": "data/demo",
        "seed": 5,
        "n_speakers": 6,
        "utterances_per_emotion": 6,
        "unseen": {"dir": "data/unseen", "n_speakers": 2, "utterances_per_emotion": 3},
    },
    "corpora": {
        "demo": {
            "meta": "data/demo/meta.tsv",
            "n_shards": 2,
            "columns": {"emotion": "emotion", "speaker": "speaker", "gender": "gender"},
        },
        "unseen": {
            "meta": "data/unseen/meta.tsv",
            "n_shards": 1,
            "columns": {"emotion": "emotion", "speaker": "speaker"},
        },
    },
    "feature_sets": {"logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 24}},
    "databases": {
        "db": {
            "corpora": ["demo"],
            "feature_set": "logmel",
            "c_len": 10,
            "max_steps": 150,
            "tasks": ["emotion"],
            "n_folds": 2,
            "baseline": False,
        }
    },
    "experiments": {
        "a": {"database": "db", "model": MODEL, "training": {**TRAINING, "seed": 1}},
        "b": {
            "database": "db",
            "model": {**MODEL, "rnn_units": 8},
            "training": {**TRAINING, "seed": 2},
        },
    },
    "evaluation": {"bootstrap": 300},
    "robustness": {"conditions": ["snr0dB", "gain-20dB"], "experiments": ["a"]},
    "cross_corpus": {
        "a_on_unseen": {
            "experiment": "a",
            "corpus": "unseen",
            # neutral is left out: its utterances are dropped and counted
            "labels": {"emotion": {"angry": "angry", "happy": "happy", "sad": "sad"}},
        }
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("trust")
    run_workflow(work, CONFIG)
    return work


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_intervals_groups_and_calibration_are_in_metrics_and_report(run: Path) -> None:
    exp = run / "results/experiments/a"
    metrics = read(exp / "metrics.json")
    emotion = metrics["tasks"]["emotion"]
    for key in ("ua", "wa", "macro_f1"):
        found = emotion["intervals"][key]
        assert found["low"] <= found["estimate"] <= found["high"]
        assert found["estimate"] == pytest.approx(emotion["pooled"][key])
        assert found["n_groups"] == 6 and found["resampled"] == "speakers"
    speakers = metrics["groups"]["speaker"]["emotion"]["groups"]
    assert len(speakers) == 6 and sum(g["n"] for g in speakers) == 6 * 4 * 6
    gender = metrics["groups"]["gender"]["emotion"]
    assert {g["group"] for g in gender["groups"]} == {"female", "male"}
    assert gender["gap"]["gap"] >= 0
    interval = gender["gap"]["interval"]  # 3 speakers per gender, resampled within each
    assert interval["low"] <= interval["estimate"] == pytest.approx(gender["gap"]["gap"])
    assert interval["estimate"] <= interval["high"]
    calibration = metrics["calibration"]["emotion"]
    assert calibration["temperature"] > 0 and len(calibration["fold_temperatures"]) == 2
    assert 0 <= calibration["ece_calibrated"] <= 1 and calibration["n"] == 6 * 4 * 6
    assert "never test speakers" in calibration["fitted_on"]
    assert calibration["coverage"][0]["coverage"] == pytest.approx(1.0)
    page = (exp / "report.html").read_text()
    for section in ("intervals", "groups", "calibration", "robustness", "cross-corpus"):
        assert f'<section id="{section}">' in page
    for plot in ("reliability-emotion.png", "coverage-emotion.png", "groups-emotion.png"):
        assert (exp / "plots" / plot).stat().st_size > 1000
    # every fold's validation predictions are of its validation speakers, never its test ones
    for k in range(2):
        fold = exp / f"fold-{k}"
        training = read(fold / "training.json")
        validation = pd.read_csv(fold / "validation_predictions.csv", dtype=str)
        assert set(validation["speaker"]) == set(training["speakers"]["validation"])
        assert not set(validation["speaker"]) & set(training["speakers"]["test"])


def test_noise_at_0_db_lowers_ua_and_gain_is_reported(run: Path) -> None:
    found = read(run / "results/experiments/a/robustness.json")
    by = {c["condition"]: c for c in found["conditions"]}
    assert set(by) == {"snr0dB", "gain-20dB"}
    noisy = by["snr0dB"]["tasks"]["emotion"]
    clean_ua = read(run / "results/experiments/a/metrics.json")["tasks"]["emotion"]["pooled"]["ua"]
    assert noisy["clean"] == pytest.approx(clean_ua)
    assert noisy["ua"] < noisy["clean"] and noisy["drop"] > 0
    assert by["gain-20dB"]["n"] == 6 * 4 * 6
    # cached per database and condition; experiment b has no robustness table
    assert (run / "results/db/degraded/db/snr0dB.h5").is_file()
    assert not (run / "results/experiments/b/robustness.json").exists()


def test_cross_corpus_drops_and_counts_unmapped_classes(run: Path) -> None:
    found = read(run / "results/cross_corpus/a_on_unseen/metrics.json")["tasks"]["emotion"]
    meta = pd.read_csv(run / "data/unseen/meta.tsv", sep="\t", dtype=str)
    assert found["dropped"] == {"neutral": int((meta["emotion"] == "neutral").sum())}
    assert found["n"] + found["n_dropped"] == found["n_total"] == len(meta)
    assert found["reached_classes"] == ["angry", "happy", "sad"]
    assert len(found["ua"]["per_model"]) == 2
    predictions = pd.read_csv(
        run / "results/cross_corpus/a_on_unseen/predictions.csv", dtype=str, keep_default_na=False
    )
    assert "neutral" not in set(predictions["emotion_pred"])  # restricted to reached classes
    assert set(predictions.loc[predictions["emotion_target"] == "neutral", "emotion_true"]) == {""}


def test_bundle_carries_calibration_and_a_model_card(run: Path) -> None:
    exp = run / "results/experiments/a"
    bundle = read(exp / "final/bundle.json")
    temperature = read(exp / "metrics.json")["calibration"]["emotion"]["temperature"]
    assert bundle["calibration"]["emotion"]["temperature"] == pytest.approx(temperature)
    card = (exp / "final/model_card.md").read_text()
    for heading in ("## Evaluation", "## Calibration", "## Degraded audio", "## Other corpora"):
        assert heading in card
    assert "## Intended use and limits" in card
    printed = subprocess.run(
        [str(DEEPSER), "card", str(exp / "final")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == card


def test_comparison_has_paired_differences(run: Path) -> None:
    page = (run / "results/experiments/comparison.html").read_text()
    assert '<section id="paired">' in page and "p-value" in page


def test_min_confidence_labels_uncertain(run: Path, tmp_path: Path) -> None:
    bundle = run / "results/experiments/a/final"
    wavs = sorted((run / "data/unseen/wav").rglob("*.wav"))[:4]
    base = [str(DEEPSER), "recognize", "--model", str(bundle)]
    base += ["--whole-file", "-q", "--wav", *map(str, wavs)]

    def labels(*extra: str) -> pd.DataFrame:
        out = subprocess.run([*base, *extra], capture_output=True, text=True, check=True, cwd=REPO)
        return pd.read_csv(pd.io.common.StringIO(out.stdout), dtype=str)

    plain = labels()
    assert "uncertain" not in set(plain["emotion"])
    top = plain.filter(like="emotion_p_").astype(float).max(axis=1)
    levels = sorted(set(top))
    assert len(levels) > 1, top
    k = len(levels) // 2
    threshold = (levels[k - 1] + levels[k]) / 2  # some files below it, some above
    unsure = labels("--min-confidence", f"{threshold}")
    assert ((unsure["emotion"] == "uncertain") == (top < threshold)).all()
    assert (unsure.loc[top >= threshold, "emotion"] == plain.loc[top >= threshold, "emotion"]).all()
    raw = labels("--no-calibration")
    p_cal = plain.filter(like="emotion_p_").astype(float).to_numpy()
    p_raw = raw.filter(like="emotion_p_").astype(float).to_numpy()
    assert (p_cal.argmax(1) == p_raw.argmax(1)).all()  # temperature keeps the ranking
    temperature = read(bundle / "bundle.json")["calibration"]["emotion"]["temperature"]
    if abs(temperature - 1) > 0.05:
        assert abs(p_cal - p_raw).max() > 1e-3


def test_trust_rules_ran_only_tracked_library_code(run: Path) -> None:
    """This module's run (strict mode, as every workflow run of the suite) ran the rules of
    robustness and cross-corpus evaluation; each job's log confirms its code inputs."""
    from .test_workflow import TRUST_RULES

    confirmed = "every library module this job ran is an input of its rule"
    checked = set()
    for log in (run / "results/logs").rglob("*.log"):
        match = re.search(r"rule (\w+), wildcards", log.read_text())
        if match and match.group(1) in TRUST_RULES:
            assert confirmed in log.read_text(), log
            checked.add(match.group(1))
    assert checked == TRUST_RULES
