"""Fold assignment by a grouping column (the speaker by default): no group in two folds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from deepser.corpus.meta import natural_key

DEFAULT_FOLD_BY = "speaker"  # the meta column that keeps utterances of one value in one fold


def assign_folds(
    groups: Sequence[str], n_folds: int | None = None, weights: Sequence[int] | None = None
) -> dict[str, int]:
    """Map every distinct group to a fold index (``weights``: rows each entry of ``groups``
    stands for, default 1: a table compressed to its distinct rows gives the same folds).

    ``n_folds=None``: one fold per group (leave-one-group-out), in natural sorted order of the
    group values (not in order of appearance, as the original toolkit did). Otherwise groups go,
    largest first, to the fold with the fewest utterances so far (ties: the lower fold), which
    balances fold sizes.
    """
    counts: Counter[str] = Counter()
    if weights is None:
        counts.update(groups)
    else:
        for group, weight in zip(groups, weights, strict=True):
            counts[group] += int(weight)
    ordered = sorted(counts, key=natural_key)
    if n_folds is None:
        return {g: k for k, g in enumerate(ordered)}
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if n_folds > len(ordered):
        raise ValueError(f"n_folds={n_folds} but only {len(ordered)} distinct groups to split")
    sizes = [0] * n_folds
    assignment: dict[str, int] = {}
    for group in sorted(ordered, key=lambda g: (-counts[g], natural_key(g))):
        fold = min(range(n_folds), key=lambda k: (sizes[k], k))
        assignment[group] = fold
        sizes[fold] += counts[group]
    return assignment


def group_labels(corpus: Sequence[str], values: Sequence[str], multi: bool) -> list[str]:
    """Fold groups of rows: a database of several corpora qualifies each value by its corpus
    (``corpus/value``), so two corpora's speakers ``s1`` are two groups."""
    if not multi:
        return [str(v) for v in values]
    return [f"{c}/{v}" for c, v in zip(corpus, values, strict=True)]


def count_folds(n_folds: int | None, groups: Callable[[], Sequence[str]]) -> int:
    """Folds :func:`assign_folds` makes: ``n_folds``, or one per distinct group (``groups()`` is
    called only then, so a known count needs no data)."""
    return int(n_folds) if n_folds else len(set(groups()))
