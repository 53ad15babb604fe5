"""The pieces that carry trust from the evaluation to the user: calibration fitted on
validation speakers only and stored in the bundle, the recogniser's temperature and
``uncertain`` label, the model card and ``deepser card``, the config checks of robustness and
cross-corpus entries, and the label mapping's checks."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepser.bundle import Bundle
from deepser.cli import main as deepser
from deepser.errors import BundleError
from deepser.evaluation import trust
from deepser.evaluation.calibration import apply_temperature
from deepser.evaluation.cross_corpus import check_mapping
from deepser.model_card import model_card, read_card
from deepser.recognizer.engine import Engine, Prediction
from deepser.recognizer.output import UNCERTAIN, row
from deepser.recognizer.vad import Segment
from deepser.workflow.config import check_config, with_cross_corpus_databases
from deepser.workflow.schema import load_schema, validate_config

from ..helpers import REPO

TASK = {"name": "emotion", "type": "categorical", "classes": ["a", "b", "c"]}
SPEC = {
    "feature_spec": {"type": "logmel", "sample_rate": 16000},
    "window_spec": {"c_len": 10, "max_steps": 100, "layout": "2d", "n_steps": 10, "dims": 40},
}


def predictions(n: int, speakers: int, sharpen: float, seed: int) -> pd.DataFrame:
    """A calibrated 3-class predictor sharpened by 1/``sharpen`` (over-confident below 1)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row_) for row_ in p])
    shown = apply_temperature(p, sharpen)
    table = pd.DataFrame(
        {
            "corpus": "c",
            "utt_id": [f"u{i}" for i in range(n)],
            "speaker": [f"s{i % speakers}" for i in range(n)],
            "fold": 0,
            "emotion_true": [TASK["classes"][k] for k in y],
            "emotion_pred": [TASK["classes"][k] for k in shown.argmax(1)],
        }
    )
    for k, cls in enumerate(TASK["classes"]):
        table[f"emotion_p_{cls}"] = shown[:, k]
    return table


def test_calibration_is_fitted_on_validation_speakers_only() -> None:
    test = predictions(3000, 10, 0.5, seed=1)  # over-confident on the test speakers
    honest = predictions(3000, 10, 1.0, seed=2)  # validation predictions already calibrated
    found = trust.calibration_report([test], [honest], [TASK], trust.settings_of({}))["emotion"]
    assert found["fold_temperatures"][0] == pytest.approx(1.0, abs=0.1)  # from validation
    assert found["ece_calibrated"] == pytest.approx(found["ece"], abs=0.02)  # test unchanged
    sharp = predictions(3000, 10, 0.5, seed=3)  # validation as over-confident as the test
    found = trust.calibration_report([test], [sharp], [TASK], trust.settings_of({}))["emotion"]
    assert found["temperature"] == pytest.approx(2.0, rel=0.15)
    assert found["ece_calibrated"] < found["ece"] / 2
    none = trust.calibration_report([test], [test.iloc[:0]], [TASK], trust.settings_of({}))
    assert none["emotion"]["temperature"] == 1.0 and "nothing" in none["emotion"]["fitted_on"]


def test_bundle_calibration_round_trips_and_is_checked() -> None:
    data = {"format_version": 1, **SPEC, "tasks": [TASK]}
    bundle = Bundle.from_json({**data, "calibration": {"emotion": {"temperature": 1.7}}})
    assert bundle.temperature("emotion") == 1.7 and bundle.temperature("other") == 1.0
    assert Bundle.from_json(json.loads(json.dumps(bundle.to_json()))) == bundle
    assert "calibration" not in Bundle.from_json(data).to_json()  # old bundles stay as they were
    for bad in (0, -1, float("inf"), "2", True, None):
        with pytest.raises(BundleError, match="temperature must be a positive number"):
            Bundle.from_json({**data, "calibration": {"emotion": {"temperature": bad}}})


def test_the_recogniser_applies_the_temperature_and_abstains() -> None:
    data = {"format_version": 1, **SPEC, "tasks": [TASK]}
    bundle = Bundle.from_json({**data, "calibration": {"emotion": {"temperature": 2.0}}})
    engine = Engine(object(), bundle)
    raw = np.array([0.8, 0.15, 0.05], np.float32)
    calibrated = engine.calibrate(TASK, raw)
    np.testing.assert_allclose(calibrated, apply_temperature(raw[None], 2.0)[0], rtol=1e-5)
    assert calibrated.argmax() == 0 and calibrated[0] < raw[0]
    engine.calibrated = False
    assert engine.calibrate(TASK, raw) is raw
    segment = Segment(0, 16000, 16000, np.zeros(16000, np.float32), 1.0, "whole")
    pred = Prediction(segment, {"emotion": calibrated})
    assert row(pred, [TASK])["emotion"] == "a"
    assert row(pred, [TASK], min_confidence=float(calibrated[0]))["emotion"] == "a"
    unsure = row(pred, [TASK], min_confidence=float(calibrated[0]) + 1e-3)
    assert unsure["emotion"] == UNCERTAIN and unsure["emotion_p_a"] == pytest.approx(calibrated[0])


def metrics_with_everything() -> dict:
    interval = {"estimate": 0.6, "low": 0.5, "high": 0.7, "level": 0.95, "n_groups": 8}
    return {
        "experiment": "demo",
        "n_folds": 4,
        "tasks": {
            "emotion": {
                "classes": ["a", "b", "c"],
                "ua": {"mean": 0.6, "std": 0.05, "per_fold": [0.6] * 4},
                "pooled": {"ua": 0.6},
                "intervals": {"ua": interval},
            }
        },
        "groups": {
            "speaker": {"emotion": {"groups": [], "gap": None}},
            "gender": {
                "emotion": {
                    "groups": [],
                    "gap": {
                        "metric": "ua",
                        "best": "female",
                        "best_value": 0.7,
                        "worst": "male",
                        "worst_value": 0.5,
                        "gap": 0.2,
                    },
                }
            },
        },
        "calibration": {
            "emotion": {
                "temperature": 1.4,
                "ece": 0.12,
                "ece_calibrated": 0.04,
                "fitted_on": "validation speakers",
                "coverage": [{"min_confidence": 0.7, "coverage": 0.5, "accuracy": 0.8, "ua": 0.8}],
            }
        },
        "robustness": {
            "conditions": [
                {
                    "condition": "snr0dB",
                    "tasks": {"emotion": {"ua": 0.3, "clean": 0.6, "drop": 0.3}},
                }
            ]
        },
    }


def test_model_card_says_what_was_measured_and_what_it_is_not_for(tmp_path: Path) -> None:
    bundle = {"format_version": 1, **SPEC, "tasks": [TASK], "experiment": "demo"}
    bundle["calibration"] = {"emotion": {"temperature": 1.4}}
    card = model_card(bundle, metrics_with_everything())
    assert card.startswith("# Model card: demo")
    assert "| emotion | UA | 0.600 ± 0.050 | 0.600 | [0.500, 0.700] |" in card
    assert "| gender | emotion | female 0.700 | male 0.500 | 0.200 |" in card
    assert "| emotion | 1.40 | 0.120 | 0.040 | 50% kept, accuracy 0.800 |" in card
    assert "| snr0dB | emotion | 0.300 | 0.600 | +0.300 |" in card
    assert "less well for male than for female speakers" in card
    assert "Not for decisions about a person" in card
    # a bundle without a card file: the card is made from bundle.json (and its metrics)
    folder = tmp_path / "bundle"
    folder.mkdir()
    with_metrics = {**bundle, "metrics": metrics_with_everything()}
    (folder / "bundle.json").write_text(json.dumps(with_metrics))
    assert read_card(folder) == card
    (folder / "model_card.md").write_text("# written by the workflow\n")
    assert read_card(folder) == "# written by the workflow\n"


def test_deepser_card_prints_the_card_or_fails_with_one_line(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "bundle.json").write_text(json.dumps({"format_version": 1, **SPEC, "tasks": [TASK]}))
    assert deepser(["card", str(folder)]) == 0
    assert capsys.readouterr().out.startswith("# Model card: model")
    assert deepser(["card", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "not a model bundle" in err and len(err.strip().splitlines()) == 1


def demo_config() -> dict:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert validate_config(config, load_schema(REPO / "config/schema.yaml")) == []
    return config


def test_the_shipped_config_checks_and_implies_the_cross_corpus_database() -> None:
    config = demo_config()
    assert check_config(config) == []
    implied = with_cross_corpus_databases(config)["demo_logmel-on-demo_unseen"]
    source = config["databases"]["demo_logmel"]
    assert implied["corpora"] == ["demo_unseen"] and implied["fold_by"] is None
    assert implied["tasks"] == ["emotion"] and implied["feature_set"] == source["feature_set"]
    assert (implied["c_len"], implied["max_steps"]) == (source["c_len"], source["max_steps"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["robustness"].update(conditions=["snr10", "telephone", "telephone"]),
            "robustness.conditions[0]: 'snr10' is not a condition",
        ),
        (lambda c: c["robustness"].update(experiments=["nope"]), "unknown experiment(s) nope"),
        (
            lambda c: c["cross_corpus"]["demo_on_unseen"].update(experiment="nope"),
            "cross_corpus.demo_on_unseen.experiment: unknown experiment 'nope'",
        ),
        (
            lambda c: c["cross_corpus"]["demo_on_unseen"].update(corpus="demo"),
            "is a corpus the experiment trains on",
        ),
        (
            lambda c: c["cross_corpus"]["demo_on_unseen"]["labels"].update(valence={"x": "y"}),
            "corpus 'demo_unseen' has no column 'valence'",
        ),
        (
            lambda c: (
                c["corpora"]["demo_unseen"]["columns"].update(valence="valence"),
                c["cross_corpus"]["demo_on_unseen"]["labels"].update(valence={"x": "y"}),
            ),
            "labels.valence: not a task of the experiment's final model (emotion)",
        ),
    ],
)
def test_bad_robustness_and_cross_corpus_entries_are_config_errors(change, message) -> None:
    config = copy.deepcopy(demo_config())
    change(config)
    problems = check_config(config)
    assert any(message in p for p in problems), problems


def test_the_label_mapping_names_unknown_classes_on_either_side() -> None:
    ours = [TASK, {"name": "score", "type": "continuous"}]
    theirs = [{"name": "emotion", "classes": ["x", "y"]}]
    assert check_mapping({"emotion": {"x": "a", "y": "b"}}, ours, theirs) == []
    problems = check_mapping({"emotion": {"x": "a", "z": "q"}, "score": {"1": "2"}}, ours, theirs)
    assert problems == [
        "labels.emotion: z not among the other corpus's classes (x, y)",
        "labels.emotion: q not among the experiment's classes (a, b, c)",
        "labels.score: not a categorical task of the experiment (emotion)",
    ]


def test_comparison_pairs_results_on_the_same_database_only(tmp_path: Path) -> None:
    from deepser.evaluation.summary import compare

    good = predictions(800, 16, 1.0, seed=4)
    bad = good.copy()
    flip = np.arange(len(bad)) % 2 == 0  # half the rows predicted wrongly
    bad.loc[flip, "emotion_pred"] = [
        TASK["classes"][(TASK["classes"].index(c) + 1) % 3] for c in bad.loc[flip, "emotion_true"]
    ]
    metrics, paths = {}, {}
    for name, table in (("good", good), ("bad", bad), ("elsewhere", good)):
        paths[name] = tmp_path / f"{name}.csv"
        table.to_csv(paths[name], index=False)
        entry = {"classes": TASK["classes"], "ua": {"mean": 0.5, "std": 0.1}, "pooled": {"ua": 0.5}}
        metrics[name] = tmp_path / f"{name}.json"
        metrics[name].write_text(json.dumps({"tasks": {"emotion": entry}, "n_folds": 2}))
    databases = {"good": "db", "bad": "db", "elsewhere": "other"}
    page = tmp_path / "comparison.html"
    compare(metrics, page, tmp_path / "c.png", paths, databases, {"bootstrap": 200})
    text = page.read_text()
    paired = text.split('<section id="paired">')[1].split("</section>")[0]
    assert paired.count("<tr>") == 2  # the header and the one pair on database db
    assert "<td>good</td><td>bad</td>" in paired and "elsewhere" not in paired
    cells = re.findall(r"<td>([^<]*)</td>", paired.split("<td>good</td>")[1])
    difference, p_value = float(cells[3]), float(cells[5])  # bad: half the predictions wrong
    assert difference > 0.15 and p_value < 0.05
    compare(metrics, page, tmp_path / "c.png", paths, databases, {"bootstrap": 0})
    assert '<section id="paired">' not in page.read_text()  # bootstrap 0: no paired tests


def gendered(n_speakers: int, accuracy: dict[str, float], seed: int) -> pd.DataFrame:
    """Utterances of ``n_speakers`` per gender, each correct with the gender's accuracy."""
    rng = np.random.default_rng(seed)
    rows = []
    for gender, acc in accuracy.items():
        for s in range(n_speakers):
            for u in range(30):
                true = TASK["classes"][u % 3]
                right = rng.random() < acc
                pred = true if right else TASK["classes"][(u + 1) % 3]
                rows.append(
                    {"speaker": f"{gender}{s}", "gender": gender, "emotion_true": true,
                     "emotion_pred": pred}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_a_gap_interval_resamples_speakers_within_each_group() -> None:
    from deepser.evaluation.intervals import gap_interval

    table = gendered(10, {"f": 0.9, "m": 0.5}, seed=1)
    found = gap_interval(table, TASK, "gender", "f", "m", n_boot=500)
    assert found["low"] <= found["estimate"] <= found["high"]
    assert found["estimate"] == pytest.approx(0.4, abs=0.08) and found["low"] > 0.2
    same = gendered(3, {"f": 0.7, "m": 0.7}, seed=2)
    found = gap_interval(same, TASK, "gender", "f", "m", n_boot=500)
    assert found["low"] < 0 < found["high"]  # equal groups: the interval holds 0
    one = gendered(1, {"f": 0.9, "m": 0.5}, seed=3)
    assert gap_interval(one, TASK, "gender", "f", "m") is None  # one speaker per group
    assert (
        gap_interval(table, {"name": "emotion", "type": "continuous"}, "gender", "f", "m") is None
    )
