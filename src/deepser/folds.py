"""Fold assignment by a grouping column (the speaker by default): no group in two folds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _natural_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def assign_folds(groups: Sequence[str], n_folds: int | None = None) -> dict[str, int]:
    """Map every distinct group to a fold index.

    ``n_folds=None``: one fold per group (leave-one-group-out), in natural sorted order of the
    group values (not order of appearance, seed Q-17). Otherwise groups go, largest first, to the
    fold with the fewest utterances so far (ties: the lower fold), which balances fold sizes.
    """
    counts = Counter(groups)
    ordered = sorted(counts, key=_natural_key)
    if n_folds is None:
        return {g: k for k, g in enumerate(ordered)}
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if n_folds > len(ordered):
        raise ValueError(f"n_folds={n_folds} but only {len(ordered)} distinct groups to split")
    sizes = [0] * n_folds
    assignment: dict[str, int] = {}
    for group in sorted(ordered, key=lambda g: (-counts[g], _natural_key(g))):
        fold = min(range(n_folds), key=lambda k: (sizes[k], k))
        assignment[group] = fold
        sizes[fold] += counts[group]
    return assignment
