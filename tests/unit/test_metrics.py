"""Metrics against scikit-learn and the CCC formula; fold tables and the experiment summary."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
)

from deepser.metrics import (
    ccc,
    classification_metrics,
    confusion,
    fold_metrics,
    macro_f1,
    regression_metrics,
    summarize_experiment,
    unweighted_average_recall,
    weighted_accuracy,
)


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Random labels; some cases drop a class from y_true, from y_pred, or from both."""
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    t = rng.integers(0, n_classes, n)
    p = np.where(rng.random(n) < 0.5, t, rng.integers(0, n_classes, n))
    if seed % 3 == 1:  # a class missing from y_true
        t[t == n_classes - 1] = 0
    if seed % 4 == 2:  # a class missing from y_pred
        p[p == 0] = n_classes - 1
    return t, p, n_classes


@pytest.mark.parametrize("seed", range(40))
def test_classification_metrics_match_sklearn(seed: int) -> None:
    t, p, k = _random_case(seed)
    labels = np.arange(k)
    np.testing.assert_array_equal(confusion(t, p, k), confusion_matrix(t, p, labels=labels))
    with warnings.catch_warnings():  # sklearn warns about classes absent from y_true
        warnings.simplefilter("ignore")
        ua_ref = balanced_accuracy_score(t, p)
    assert unweighted_average_recall(t, p, k) == pytest.approx(ua_ref, abs=1e-12)
    assert weighted_accuracy(t, p) == pytest.approx(accuracy_score(t, p), abs=1e-12)
    f1_ref = f1_score(t, p, average="macro", zero_division=0)
    assert macro_f1(t, p, k) == pytest.approx(f1_ref, abs=1e-12)


def test_ua_excludes_classes_absent_from_truth() -> None:
    t = np.array([0, 0, 1, 1])
    p = np.array([0, 2, 1, 1])  # class 2 predicted but never true; class 3 nowhere
    assert unweighted_average_recall(t, p, 4) == pytest.approx((0.5 + 1.0) / 2)
    # macro-F1 counts class 2 (predicted) with F1 = 0 but leaves class 3 out
    f1_0, f1_1 = 2 / 3, 1.0
    assert macro_f1(t, p, 4) == pytest.approx((f1_0 + f1_1 + 0.0) / 3)


def test_index_checks() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="values"):
        weighted_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        unweighted_average_recall([], [], 2)
    with pytest.raises(ValueError, match="integer class indices"):
        macro_f1(["a"], ["b"], 2)


def _ccc_reference(t: np.ndarray, p: np.ndarray) -> float:
    n = len(t)
    mt, mp = sum(t) / n, sum(p) / n
    vt = sum((x - mt) ** 2 for x in t) / n
    vp = sum((y - mp) ** 2 for y in p) / n
    cov = sum((x - mt) * (y - mp) for x, y in zip(t, p, strict=True)) / n
    return 2 * cov / (vt + vp + (mt - mp) ** 2)


@pytest.mark.parametrize("seed", range(10))
def test_ccc_matches_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=50)
    p = 0.6 * t + rng.normal(scale=0.5, size=50) + 0.3
    assert ccc(t, p) == pytest.approx(_ccc_reference(t.tolist(), p.tolist()), rel=1e-10)


def test_ccc_properties() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=200)
    x0 = x - x.mean()
    assert ccc(x, x) == pytest.approx(1.0)
    assert ccc(x0, -x0) == pytest.approx(-1.0)
    assert ccc(x, x + 0.5) < 1.0
    assert ccc(x, x + 1.0) < ccc(x, x + 0.5)
    assert ccc(x, 2 * x) < 1.0
    # not min-max normalised first: a rescaled prediction is not "perfect"
    assert ccc(x, (x - x.min()) / (x.max() - x.min())) < 0.9
    assert ccc([1.0, 1.0], [1.0, 1.0]) == 1.0


def test_regression_metrics() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0])
    p = np.array([0.0, 2.0, 4.0, 6.0])
    m = regression_metrics(t, p)
    assert m["pearson"] == pytest.approx(1.0)
    assert m["mse"] == pytest.approx(np.mean((t - p) ** 2))
    assert m["ccc"] == pytest.approx(_ccc_reference(t.tolist(), p.tolist()))
    assert m["n"] == 4
    assert regression_metrics(t, np.ones(4))["pearson"] == 0.0


def test_classification_metrics_by_name() -> None:
    classes = ["ang", "neu", "<script>"]
    m = classification_metrics(["ang", "neu", "neu"], ["ang", "ang", "neu"], classes)
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert m["wa"] == pytest.approx(2 / 3)
    assert m["ua"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["n"] == 3
    with pytest.raises(ValueError, match="not among"):
        classification_metrics(["ang"], ["sad"], classes)
    # class names are compared as text: a number read back as 2.0 is not class "2" (read
    # predictions with deepser.evaluation.predictions.read_predictions, which keeps "2")
    assert classification_metrics(["1", "2"], ["1", "2"], ["1", "2"])["wa"] == 1.0
    with pytest.raises(ValueError, match=r"not among .*\['2.0'\]"):
        classification_metrics(["1", 2.0], ["1", "2"], ["1", "2"])


TASKS = [
    {"name": "emotion", "type": "categorical", "classes": ["ang", "hap", "neu"]},
    {"name": "arousal", "type": "continuous"},
]


def _fold_table(fold: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    classes = TASKS[0]["classes"]
    true = rng.choice(classes, n)
    pred = np.where(rng.random(n) < 0.6, true, rng.choice(classes, n))
    probs = rng.dirichlet(np.ones(3), n)
    ar_true = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "utt_id": [f"f{fold}_u{i}" for i in range(n)],
            "speaker": [f"spk{fold}"] * n,
            "fold": fold,
            "emotion_true": true,
            "emotion_pred": pred,
        }
    )
    for j, c in enumerate(classes):
        df[f"emotion_p_{c}"] = probs[:, j]
    df["arousal_true"] = ar_true
    df["arousal_pred"] = 0.5 * ar_true + rng.normal(scale=0.3, size=n)
    return df


def test_fold_metrics() -> None:
    df = _fold_table(0, 30, 1)
    m = fold_metrics(df, TASKS)
    assert m["n"] == 30
    emo = m["tasks"]["emotion"]
    assert emo["classes"] == ["ang", "hap", "neu"]
    assert set(emo) >= {"ua", "wa", "macro_f1", "confusion", "n"}
    assert emo["wa"] == pytest.approx(accuracy_score(df.emotion_true, df.emotion_pred))
    assert sum(map(sum, emo["confusion"])) == 30
    ar = m["tasks"]["arousal"]
    assert ar["ccc"] == pytest.approx(ccc(df.arousal_true, df.arousal_pred))
    json.dumps(m)  # JSON-serialisable as written by the evaluate step


def test_fold_metrics_round_trip_csv_and_unlabelled_rows(tmp_path) -> None:
    df = _fold_table(0, 12, 2)
    df.loc[:3, "arousal_true"] = np.nan  # utterances without an arousal label
    df.to_csv(tmp_path / "predictions.csv", index=False)
    back = pd.read_csv(tmp_path / "predictions.csv")
    m = fold_metrics(back, TASKS)
    assert m["tasks"]["arousal"]["n"] == 8
    assert m["tasks"]["emotion"]["n"] == 12


def test_fold_metrics_missing_column() -> None:
    df = _fold_table(0, 5, 3).drop(columns=["emotion_pred"])
    with pytest.raises(ValueError, match="emotion_pred"):
        fold_metrics(df, TASKS)


def test_summarize_experiment_contract() -> None:
    sizes = [20, 25, 15]
    tables = [_fold_table(k, n, 10 + k) for k, n in enumerate(sizes)]
    per_fold = [fold_metrics(df, TASKS) for df in tables]
    s = summarize_experiment("exp1", per_fold, tables, TASKS)
    assert set(s) == {"experiment", "n_folds", "tasks"}
    assert s["experiment"] == "exp1" and s["n_folds"] == 3
    emo = s["tasks"]["emotion"]
    assert set(emo) == {"classes", "ua", "wa", "macro_f1", "pooled"}
    assert emo["classes"] == ["ang", "hap", "neu"]
    for key in ("ua", "wa", "macro_f1"):
        assert set(emo[key]) == {"mean", "std", "per_fold"}
        values = [fm["tasks"]["emotion"][key] for fm in per_fold]
        assert emo[key]["per_fold"] == pytest.approx(values)
        assert emo[key]["mean"] == pytest.approx(np.mean(values))
        assert emo[key]["std"] == pytest.approx(np.std(values, ddof=1))
        assert 0.0 <= emo[key]["mean"] <= 1.0
    assert set(emo["pooled"]) == {"ua", "wa", "macro_f1", "confusion"}
    assert sum(map(sum, emo["pooled"]["confusion"])) == sum(sizes)
    pooled_df = pd.concat(tables)
    assert emo["pooled"]["ua"] == pytest.approx(
        balanced_accuracy_score(pooled_df.emotion_true, pooled_df.emotion_pred)
    )
    ar = s["tasks"]["arousal"]
    assert set(ar) == {"ccc", "pooled"}
    assert len(ar["ccc"]["per_fold"]) == 3
    assert ar["pooled"]["ccc"] == pytest.approx(ccc(pooled_df.arousal_true, pooled_df.arousal_pred))
    assert json.loads(json.dumps(s)) == s


def test_summarize_single_fold_std_zero() -> None:
    df = _fold_table(0, 10, 5)
    s = summarize_experiment("one", [fold_metrics(df, TASKS)], [df], TASKS)
    assert s["tasks"]["emotion"]["ua"]["std"] == 0.0
    assert s["tasks"]["arousal"]["ccc"]["std"] == 0.0


def test_summarize_rejects_duplicate_utterances() -> None:
    a, b = _fold_table(0, 10, 1), _fold_table(1, 10, 2)
    b.loc[0, "utt_id"] = a.loc[3, "utt_id"]
    with pytest.raises(ValueError, match="two folds"):
        summarize_experiment("dup", [fold_metrics(a, TASKS), fold_metrics(b, TASKS)], [a, b], TASKS)
    with pytest.raises(ValueError, match="fold metrics"):
        summarize_experiment("len", [fold_metrics(a, TASKS)], [a, b], TASKS)
