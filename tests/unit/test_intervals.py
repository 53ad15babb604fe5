"""Speaker-level bootstrap intervals and paired tests (deepser.evaluation.intervals)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from deepser.evaluation.intervals import (
    ccc_interval,
    metric_intervals,
    paired_ccc_difference,
    paired_difference,
    paired_task_difference,
    task_intervals,
)
from deepser.metrics import ccc, macro_f1, unweighted_average_recall, weighted_accuracy

C = 4
CLASSES = ["angry", "happy", "neutral", "sad"]


def make_data(
    n_speakers: int,
    per_speaker: int = 40,
    accuracy: float = 0.7,
    spread: float = 0.15,
    seed: int = 0,
    n_classes: int = C,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true, pred, speakers): per-speaker accuracy drawn around ``accuracy``; errors go to a
    uniformly chosen other class."""
    rng = np.random.default_rng(seed)
    speaker_acc = np.clip(accuracy + rng.normal(0.0, spread, n_speakers), 0.05, 0.98)
    speakers = np.repeat(np.arange(n_speakers), per_speaker)
    true = rng.integers(0, n_classes, speakers.size)
    correct = rng.random(speakers.size) < speaker_acc[speakers]
    wrong = (true + rng.integers(1, n_classes, speakers.size)) % n_classes
    return true, np.where(correct, true, wrong), speakers.astype(str)


def predict(true: np.ndarray, speakers: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """Another model's predictions of ``true`` with its own per-speaker accuracy and noise."""
    rng = np.random.default_rng(seed)
    codes = np.unique(speakers, return_inverse=True)[1]
    speaker_acc = np.clip(accuracy + rng.normal(0.0, 0.1, codes.max() + 1), 0.05, 0.98)
    correct = rng.random(true.size) < speaker_acc[codes]
    wrong = (true + rng.integers(1, C, true.size)) % C
    return np.where(correct, true, wrong)


def width(result: dict) -> float:
    return result["high"] - result["low"]


def test_estimates_match_metrics_and_intervals_contain_them():
    true, pred, spk = make_data(20, seed=1)
    out = metric_intervals(true, pred, spk, C, n_boot=500)
    assert out["ua"]["estimate"] == unweighted_average_recall(true, pred, C)
    assert out["wa"]["estimate"] == weighted_accuracy(true, pred)
    assert out["macro_f1"]["estimate"] == macro_f1(true, pred, C)
    for name in ("ua", "wa", "macro_f1"):
        r = out[name]
        assert r["low"] < r["estimate"] < r["high"]
        assert 0.0 < width(r) < 0.3
        assert r["n_groups"] == 20 and r["n_boot"] == 500 and r["level"] == 0.95
        assert r["resampled"] == "speakers"
    # a lower level gives a narrower interval
    narrow = metric_intervals(true, pred, spk, C, n_boot=500, level=0.5)
    assert width(narrow["ua"]) < width(out["ua"])


def test_vectorised_draws_match_metrics_on_pooled_rows():
    """A draw's metric equals deepser.metrics on the rows of the drawn speakers, including draws
    that miss a class entirely (UA over the classes present only)."""
    from deepser.evaluation.intervals import _confusion_metrics, _group_confusions

    true, pred, spk = make_data(6, per_speaker=5, seed=3)
    true[spk == "0"] = 0  # speaker 0 has only class 0
    pred[spk == "0"] = 1
    codes, g = np.unique(spk, return_inverse=True)[1], 6
    cms = _group_confusions(true, pred, codes, g, C)
    for counts in ([6, 0, 0, 0, 0, 0], [2, 1, 0, 3, 0, 0], [0, 0, 1, 1, 2, 2]):
        rows = np.concatenate(
            [np.repeat(np.flatnonzero(codes == k), n) for k, n in enumerate(counts)]
        )
        got = _confusion_metrics(np.asarray([counts], float) @ cms, C)
        assert got["ua"][0] == pytest.approx(unweighted_average_recall(true[rows], pred[rows], C))
        assert got["wa"][0] == pytest.approx(weighted_accuracy(true[rows], pred[rows]))
        assert got["macro_f1"][0] == pytest.approx(macro_f1(true[rows], pred[rows], C))


def test_width_shrinks_with_more_speakers():
    few = metric_intervals(*make_data(5, seed=2), C, n_boot=500)
    many = metric_intervals(*make_data(80, seed=2), C, n_boot=500)
    assert width(many["ua"]) < 0.5 * width(few["ua"])
    assert width(many["wa"]) < 0.5 * width(few["wa"])


def test_resampling_is_by_speakers_not_utterances():
    true, pred, spk = make_data(20, seed=4)
    base = metric_intervals(true, pred, spk, C, n_boot=500)["ua"]
    # every utterance five times: more rows, the same speakers
    t5, p5, s5 = np.repeat(true, 5), np.repeat(pred, 5), np.repeat(spk, 5)
    dup = metric_intervals(t5, p5, s5, C, n_boot=500)["ua"]
    assert width(dup) == pytest.approx(width(base), rel=0.05)
    # resampling utterances instead (each row its own group) would shrink it
    by_row = metric_intervals(t5, p5, np.arange(t5.size), C, n_boot=500)["ua"]
    assert width(by_row) < 0.6 * width(dup)


def test_same_seed_same_result_other_seed_differs():
    true, pred, spk = make_data(15, seed=5)
    a = metric_intervals(true, pred, spk, C, n_boot=200, seed=7)
    b = metric_intervals(true, pred, spk, C, n_boot=200, seed=7)
    c = metric_intervals(true, pred, spk, C, n_boot=200, seed=8)
    assert a == b
    assert a["ua"]["low"] != c["ua"]["low"] or a["ua"]["high"] != c["ua"]["high"]
    pa = paired_difference(true, pred, predict(true, spk, 0.7, 1), spk, C, n_boot=200, n_perm=200)
    pb = paired_difference(true, pred, predict(true, spk, 0.7, 1), spk, C, n_boot=200, n_perm=200)
    assert pa == pb


def test_single_speaker_interval_is_degenerate():
    true, pred, _ = make_data(1, seed=6)
    out = metric_intervals(true, pred, ["s"] * true.size, C, n_boot=100)
    for r in out.values():
        assert r["low"] == pytest.approx(r["estimate"]) and r["high"] == pytest.approx(r["low"])
        assert r["n_groups"] == 1


def test_fast_enough():
    true, pred, spk = make_data(50, per_speaker=200, seed=7)
    other = predict(true, spk, 0.7, 2)
    start = time.perf_counter()
    metric_intervals(true, pred, spk, C, n_boot=1000)
    paired_difference(true, pred, other, spk, C, n_boot=1000, n_perm=1000)
    assert time.perf_counter() - start < 1.0  # ~0.05 s; generous for a shared machine


def test_model_against_itself():
    true, pred, spk = make_data(20, seed=8)
    for metric in ("ua", "wa", "macro_f1"):
        out = paired_difference(true, pred, pred.copy(), spk, C, metric=metric, n_perm=200)
        assert out["difference"] == 0.0
        assert out["low"] == pytest.approx(0.0) and out["high"] == pytest.approx(0.0)
        assert out["p_value"] == 1.0
        assert out["metric"] == metric and out["n_groups"] == 20


def test_clearly_better_model_is_significant():
    true, _, spk = make_data(20, seed=9)
    good = predict(true, spk, 0.85, 1)
    bad = predict(true, spk, 0.6, 2)
    out = paired_difference(true, good, bad, spk, C)
    assert out["difference"] == pytest.approx(
        unweighted_average_recall(true, good, C) - unweighted_average_recall(true, bad, C)
    )
    assert out["difference"] > 0.15
    assert 0.0 < out["low"] <= out["difference"] <= out["high"]
    assert out["p_value"] < 0.05
    assert out["p_value"] == pytest.approx(1 / 1001)  # no permutation reaches it
    reverse = paired_difference(true, bad, good, spk, C)
    assert reverse["high"] < 0 and reverse["p_value"] < 0.05


def test_equal_models_are_not_significant():
    true, _, spk = make_data(20, seed=10)
    p_values = []
    for seed in range(10):
        a = predict(true, spk, 0.7, 100 + seed)
        b = predict(true, spk, 0.7, 200 + seed)
        p_values.append(paired_difference(true, a, b, spk, C, n_perm=500, seed=seed)["p_value"])
    assert p_values[0] > 0.05  # the fixed seed checked
    assert sum(p > 0.05 for p in p_values) >= 7


def continuous(n_speakers: int, per_speaker: int = 30, noise: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(n_speakers), per_speaker)
    offset = rng.normal(0.0, 0.3, n_speakers)[spk]
    true = rng.normal(0.0, 1.0, spk.size) + offset
    pred = 0.8 * true + rng.normal(0.0, noise, spk.size)
    return true, pred, spk


def test_ccc_interval():
    true, pred, spk = continuous(20, seed=11)
    out = ccc_interval(true, pred, spk, n_boot=500)
    assert out["estimate"] == ccc(true, pred)
    assert out["low"] < out["estimate"] < out["high"]
    assert 0.5 < out["low"] and out["high"] < 1.0
    assert out["n_groups"] == 20 and out["resampled"] == "speakers"
    # shifting everything far from 0 changes nothing (no cancellation in the moments)
    shifted = ccc_interval(true + 1e4, pred + 1e4, spk, n_boot=500)
    assert shifted["low"] == pytest.approx(out["low"], abs=1e-6)
    # constant, equal series: CCC 1.0 in every draw
    flat = ccc_interval(np.full(10, 2.5), np.full(10, 2.5), np.arange(10) % 3, n_boot=50)
    assert flat["estimate"] == flat["low"] == flat["high"] == 1.0


def test_paired_ccc_difference():
    true, good, spk = continuous(20, noise=0.3, seed=12)
    bad = 0.8 * true + np.random.default_rng(1).normal(0.0, 1.0, true.size)
    out = paired_ccc_difference(true, good, bad, spk)
    assert out["difference"] == pytest.approx(ccc(true, good) - ccc(true, bad))
    assert out["low"] > 0 and out["p_value"] < 0.05 and out["metric"] == "ccc"
    same = paired_ccc_difference(true, good, good.copy(), spk, n_perm=100)
    assert same["difference"] == 0.0 and same["p_value"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y_true": np.array([], int), "y_pred": np.array([], int), "groups": []}, "empty"),
        ({"y_pred": np.array([0, 1])}, "lengths differ"),
        ({"groups": ["a", "b"]}, "lengths differ"),
        ({"n_classes": 0}, "n_classes"),
        ({"level": 1.0}, "level"),
        ({"level": 0.0}, "level"),
        ({"n_boot": 0}, "n_boot"),
        ({"y_pred": np.array([0, 1, 4])}, "outside"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {
        "y_true": np.array([0, 1, 2]),
        "y_pred": np.array([0, 1, 1]),
        "groups": ["a", "a", "b"],
        "n_classes": 3,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        metric_intervals(**args)


def test_invalid_arguments_paired_and_ccc():
    t, p, g = np.array([0, 1, 2]), np.array([0, 1, 1]), ["a", "a", "b"]
    with pytest.raises(ValueError, match="metric"):
        paired_difference(t, p, p, g, 3, metric="ccc")
    with pytest.raises(ValueError, match="n_perm"):
        paired_difference(t, p, p, g, 3, n_perm=0)
    with pytest.raises(ValueError, match="lengths differ"):
        paired_difference(t, p, p[:2], g, 3)
    with pytest.raises(ValueError, match="finite"):
        ccc_interval([0.1, np.nan, 0.3], [0.1, 0.2, 0.3], g)
    with pytest.raises(ValueError, match="empty"):
        ccc_interval([], [], [])
    with pytest.raises(ValueError, match="level"):
        paired_ccc_difference([0.1, 0.2], [0.1, 0.2], [0.2, 0.1], ["a", "b"], level=1.5)


def predictions_table(true, pred, spk, prefix="u"):
    return pd.DataFrame(
        {
            "corpus": "demo",
            "utt_id": [f"{prefix}{i}" for i in range(len(true))],
            "speaker": [f"spk{s}" for s in spk],
            "emotion_true": [CLASSES[i] for i in true],
            "emotion_pred": [CLASSES[i] for i in pred],
        }
    )


TASK = {"name": "emotion", "type": "categorical", "classes": CLASSES}


def test_task_intervals_skip_unlabelled_rows():
    true, pred, spk = make_data(10, per_speaker=20, seed=13)
    table = predictions_table(true, pred, spk)
    table["emotion_true"] = table["emotion_true"].astype(object)
    unlabelled = np.arange(len(table)) % 7 == 0
    table.loc[unlabelled & (np.arange(len(table)) % 2 == 0), "emotion_true"] = ""
    table.loc[unlabelled & (np.arange(len(table)) % 2 == 1), "emotion_true"] = np.nan
    out = task_intervals(table, {"name": "emotion", "classes": CLASSES}, n_boot=200, seed=3)
    keep = ~unlabelled
    expected = metric_intervals(
        true[keep], pred[keep], [f"spk{s}" for s in spk[keep]], C, n_boot=200, seed=3
    )
    assert out == expected
    assert out["ua"]["estimate"] != unweighted_average_recall(true, pred, C)

    cont = pd.DataFrame(
        {
            "speaker": np.repeat(["a", "b", "c"], 4),
            "arousal_true": [0.1, 0.5, np.nan, 0.9] * 3,
            "arousal_pred": np.linspace(0.0, 1.0, 12),
        }
    )
    res = task_intervals(cont, {"name": "arousal", "type": "continuous"}, n_boot=50)
    rows = cont["arousal_true"].notna()
    assert res["ccc"]["estimate"] == pytest.approx(
        ccc(cont["arousal_true"][rows].to_numpy(), cont["arousal_pred"][rows].to_numpy())
    )
    with pytest.raises(ValueError, match="not among the classes"):
        task_intervals(table.assign(emotion_pred="bored"), TASK)


def test_paired_task_difference_joins_on_utterances():
    true, _, spk = make_data(12, per_speaker=20, seed=14)
    a = predictions_table(true, predict(true, spk.astype(str), 0.85, 1), spk)
    pred_b = predict(true, spk.astype(str), 0.6, 2)
    b = predictions_table(true, pred_b, spk)
    b.loc[0, "emotion_true"] = ""  # unlabelled in both: skipped
    a.loc[0, "emotion_true"] = ""
    extra = predictions_table(true[:3], pred_b[:3], spk[:3], prefix="extra")
    b = pd.concat([b.iloc[5:], extra], ignore_index=True).sample(frac=1.0, random_state=0)
    out = paired_task_difference(a, b, TASK, n_boot=300, seed=1, n_perm=300)
    shared = np.arange(5, true.size)  # rows 0..4 of a are not in b, row 0 unlabelled anyway
    codes = [CLASSES.index(v) for v in a["emotion_pred"]]
    expected = paired_difference(
        true[shared],
        np.asarray(codes)[shared],
        pred_b[shared],
        [f"spk{s}" for s in spk[shared]],
        C,
        "ua",
        300,
        300,
        seed=1,
    )
    assert out == {**expected, "n_utterances": int(shared.size)}
    assert out["metric"] == "ua" and out["low"] > 0

    # without a corpus column, the join is on utt_id alone
    same = paired_task_difference(a.drop(columns="corpus"), b, TASK, n_boot=300, seed=1, n_perm=300)
    assert same == out

    bad = b.copy()
    bad.loc[bad["utt_id"] == "u7", "emotion_true"] = "sad" if true[7] != 3 else "angry"
    with pytest.raises(ValueError, match="labels differ"):
        paired_task_difference(a, bad, TASK)

    one = a[a["speaker"] == "spk0"]
    assert paired_task_difference(one, b, TASK) is None


def test_paired_task_difference_continuous():
    true, good, spk = continuous(6, per_speaker=10, noise=0.2, seed=15)
    bad = true[::-1].copy()
    ids = [f"u{i}" for i in range(true.size)]
    a = pd.DataFrame({"utt_id": ids, "speaker": spk, "val_true": true, "val_pred": good})
    b = pd.DataFrame({"utt_id": ids, "speaker": spk, "val_true": true, "val_pred": bad})
    out = paired_task_difference(a, b, {"name": "val", "type": "continuous"}, n_boot=200)
    assert out["metric"] == "ccc" and out["n_utterances"] == true.size
    assert out["difference"] == pytest.approx(ccc(true, good) - ccc(true, bad))
