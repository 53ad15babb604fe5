"""Late fusion's combiners, the inner speaker folds and the selection rule, on known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepser.evaluation import combine as cb
from deepser.evaluation.fusion import fit_stacking, fit_weights, weight_grid
from deepser.evaluation.selection import choose
from deepser.late_fusion import combine


def _onehot(idx: np.ndarray, n: int, p: float = 0.7) -> np.ndarray:
    out = np.full((len(idx), n), (1 - p) / (n - 1))
    out[np.arange(len(idx)), idx] = p
    return out


def test_average_and_weighted_combine_known_probabilities():
    a = np.array([[0.8, 0.2], [0.4, 0.6]])
    b = np.array([[0.2, 0.8], [0.0, 1.0]])
    np.testing.assert_allclose(combine("average", None, [a, b]), [[0.5, 0.5], [0.2, 0.8]])
    w = combine("weighted", {"weights": [0.75, 0.25]}, [a, b])
    np.testing.assert_allclose(w, [[0.65, 0.35], [0.3, 0.7]])
    with pytest.raises(ValueError, match="unknown fusion method"):
        combine("vote", None, [a, b])


def test_weight_grid_is_the_simplex():
    grid = weight_grid(3, steps=4)
    assert np.allclose(grid.sum(1), 1.0) and len(grid) == 15 and (grid >= 0).all()


def test_weights_favour_the_informative_member_and_stay_uniform_without_evidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = _onehot(y, 3, 0.6)
    noise = _onehot(rng.integers(0, 3, 300), 3, 0.9)
    w = fit_weights([good, noise], y, 3)
    assert w[0] > w[1]
    same = _onehot(y, 3)
    assert fit_weights([same, same], y, 3) == pytest.approx([0.5, 0.5])


def test_stacking_learns_which_member_to_trust_and_never_predicts_unseen_classes():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    good = _onehot(y, 4, 0.5)
    noise = _onehot(rng.integers(0, 4, 400), 4, 0.9)
    params = fit_stacking([good, noise], y, 4)
    fused = combine("stacking", params, [good, noise])
    assert np.allclose(fused.sum(1), 1.0)
    assert (fused.argmax(1) == y).mean() > 0.95
    assert fused[:, 3].max() < 1e-6  # class 3 never appears in training


def test_binary_stacking_gives_the_logistic_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    p = np.clip(_onehot(y, 2, 0.7) + rng.normal(0, 0.1, (200, 2)), 0.01, 0.99)
    params = fit_stacking([p], y, 2)
    x = cb_stack(p, params)
    reference = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=0)
    reference.fit(x, y)
    np.testing.assert_allclose(
        combine("stacking", params, [p]), reference.predict_proba(x), atol=1e-6
    )


def cb_stack(p: np.ndarray, params: dict) -> np.ndarray:
    return (np.log(np.clip(p, 1e-6, 1)) - params["mean"]) / params["scale"]


def _table(ids, folds, probs, truth, classes=("a", "b")) -> pd.DataFrame:
    table = pd.DataFrame(
        {"corpus": "c", "utt_id": ids, "speaker": [i[0] for i in ids], "fold": folds}
    )
    table["emo_true"] = truth
    for k, c in enumerate(classes):
        table[f"emo_p_{c}"] = np.asarray(probs)[:, k]
    return table


def test_align_orders_members_and_refuses_different_utterances_or_folds():
    p = [[0.9, 0.1], [0.2, 0.8]]
    a = _table(["s1", "t2"], [0, 1], p, ["a", "b"])
    b = _table(["t2", "s1"], [1, 0], p[::-1], ["b", "a"])
    aligned = cb.align({"a": a, "b": b})
    assert list(aligned["b"]["utt_id"]) == ["s1", "t2"]
    with pytest.raises(ValueError, match="same utterances"):
        cb.align({"a": a, "c": _table(["s1", "x3"], [0, 1], p, ["a", "b"])})
    with pytest.raises(ValueError, match="different folds"):
        cb.align({"a": a, "d": _table(["s1", "t2"], [1, 0], p, ["a", "b"])})


def test_shared_tasks_need_the_same_classes():
    t = {"name": "emo", "type": "categorical", "classes": ["a", "b"]}
    other = {"name": "emo", "type": "categorical", "classes": ["b", "a"]}
    assert cb.shared_tasks({"x": [t], "y": [t]}) == [t]
    with pytest.raises(ValueError, match="share no categorical task"):
        cb.shared_tasks({"x": [t], "y": [other]})


def test_selection_takes_the_best_inner_score_and_the_first_on_a_tie():
    assert choose({"a": 0.5, "b": 0.7, "c": 0.6}) == "b"
    assert choose({"a": 0.7, "b": 0.7}) == "a"
