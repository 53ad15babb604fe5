"""Context windows (edge cases; the last full window is kept, unlike the original) and fold
assignment (no group in two folds)."""

from __future__ import annotations

import numpy as np
import pytest

from deepser.database.folds import assign_folds
from deepser.database.windows import cut_windows, layout_shape, n_steps, to_layout


def frames(n: int, d: int = 3) -> np.ndarray:
    return np.arange(1, n * d + 1, dtype=np.float32).reshape(n, d)


def test_last_full_window_is_kept() -> None:
    # the original dropped a window ending exactly on the last frame (t*c_len < n - c_len)
    win, n_valid = cut_windows(frames(30), c_len=10, max_steps=50)
    assert win.shape == (5, 10, 3) and n_valid == 3
    np.testing.assert_array_equal(win[2, -1], frames(30)[-1])
    assert not win[3:].any()


def test_partial_tail_is_dropped_and_long_input_truncated() -> None:
    win, n_valid = cut_windows(frames(37), c_len=10, max_steps=50)
    assert n_valid == 3 and not win[3:].any()
    win, n_valid = cut_windows(frames(123), c_len=10, max_steps=50)
    assert n_valid == 5
    np.testing.assert_array_equal(win.reshape(50, 3), frames(123)[:50])


def test_max_steps_not_a_multiple_of_c_len() -> None:
    assert n_steps(105, 10) == 10
    win, n_valid = cut_windows(frames(200), 10, 105)
    assert win.shape == (10, 10, 3) and n_valid == 10


def test_short_utterance_gets_one_zero_padded_window() -> None:
    win, n_valid = cut_windows(frames(4), c_len=10, max_steps=20)
    assert n_valid == 1
    np.testing.assert_array_equal(win[0, :4], frames(4))
    assert not win[0, 4:].any() and not win[1].any()


def test_c_len_one_and_bad_arguments() -> None:
    win, n_valid = cut_windows(frames(3), c_len=1, max_steps=5)
    assert win.shape == (5, 1, 3) and n_valid == 3
    with pytest.raises(ValueError):
        cut_windows(frames(3), c_len=10, max_steps=5)
    with pytest.raises(ValueError):
        cut_windows(np.zeros((0, 3), np.float32), c_len=1, max_steps=5)


def test_layouts() -> None:
    batch = np.zeros((2, 5, 10, 80), np.float32)
    assert to_layout(batch, "2d").shape == (2, 5, 1, 10, 80) == (2, *layout_shape("2d", 5, 10, 80))
    assert to_layout(batch, "3d").shape == (2, 1, 5, 10, 80) == (2, *layout_shape("3d", 5, 10, 80))


def test_leave_one_group_out_in_natural_order() -> None:
    groups = ["12", "3", "3", "10", "12"]
    assert assign_folds(groups) == {"3": 0, "10": 1, "12": 2}


def test_k_folds_are_balanced_and_disjoint(rng: np.random.Generator) -> None:
    groups = [f"spk{rng.integers(0, 13)}" for _ in range(500)]
    folds = assign_folds(groups, n_folds=4)
    assert set(folds) == set(groups) and set(folds.values()) == {0, 1, 2, 3}
    sizes = np.bincount([folds[g] for g in groups])
    assert sizes.max() - sizes.min() <= max(groups.count(g) for g in set(groups))
    with pytest.raises(ValueError, match="only 13 distinct groups"):
        assign_folds(groups, n_folds=14)


def test_folds_of_a_table_equal_those_of_its_distinct_rows_with_counts() -> None:
    from collections import Counter

    from deepser.database.folds import assign_folds

    rng = np.random.default_rng(3)
    groups = [f"s{k}" for k in rng.integers(0, 9, 500)]
    counts = Counter(groups)
    for n_folds in (None, 2, 4):
        assert assign_folds(groups, n_folds) == assign_folds(
            list(counts), n_folds, list(counts.values())
        )
