"""Whether a database's folds can be trained and evaluated, from the validated meta alone.

Pure functions, run before any job that loads TensorFlow: they mirror the fold assignment
(:func:`deepser.database.folds.assign_folds`) and the training splits
(:func:`deepser.training.split.split_fold`, :func:`deepser.training.split.inner_speakers`),
which would otherwise fail late (``a validation split needs at least two training speakers``)
or train silently on a fold that lacks a class.

Every message starts with ``where`` (e.g. ``databases.emo`` or ``corpus emodb``), so the user
knows which entry to change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from deepser.corpus.meta import natural_key
from deepser.database.folds import assign_folds
from deepser.training.settings import training_settings


def needs_validation_split(experiment: Mapping[str, Any]) -> bool:
    """Whether the experiment's fold models hold out a validation split of their training
    speakers: ``training.validation_fraction`` > 0 (default 0.25). Early stopping (``patience``)
    and the monitored task's best epoch come from that split; ``validation_fraction: 0`` trains
    exactly ``epochs`` without one. The final model (all speakers) never has one."""
    return float(training_settings(experiment)["validation_fraction"]) > 0


def _sorted(values: Any) -> list[str]:
    return sorted(values, key=natural_key)


def _names(values: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(values[:most])
    return shown + (f", ... ({len(values)} in all)" if len(values) > most else "")


def _is_label(value: Any) -> bool:
    """Whether a label cell holds a class (not empty, None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return str(value) != ""


def _fold_rows(
    groups: Sequence[str], n_folds: int | None, weights: Sequence[int] | None = None
) -> tuple[dict[str, int], list[list[str]]]:
    """The fold of each group, and each fold's groups (natural order)."""
    assignment = assign_folds(groups, n_folds, weights)
    folds: list[list[str]] = [[] for _ in range(max(assignment.values()) + 1)]
    for group, fold in assignment.items():
        folds[fold].append(group)
    return assignment, [_sorted(f) for f in folds]


def _count_problems(distinct: list[str], n_folds: int | None, where: str) -> list[str]:
    """Too few groups for any fold, or an n_folds that cannot be made."""
    if not distinct:
        return [f"{where}: no rows to make folds of"]
    if len(distinct) < 2:
        return [
            f"{where}: a speaker-independent evaluation needs at least 2 speakers; it has 1 "
            f"({distinct[0]!r}) (set fold_by: null to build a database without folds)"
        ]
    if n_folds is not None and n_folds < 2:
        return [f"{where}: n_folds is {n_folds}; use at least 2 (or null: one fold per speaker)"]
    if n_folds is not None and n_folds > len(distinct):
        return [
            f"{where}: n_folds is {n_folds} but there are only {len(distinct)} speakers "
            f"({_names(distinct)}); use n_folds: {len(distinct)} or fewer, or null (one fold "
            "per speaker)"
        ]
    return []


def fold_problems(
    groups: Sequence[str],
    labels: Mapping[str, Sequence[Any]] | None,
    n_folds: int | None,
    needs_validation: bool,
    where: str,
    *,
    speakers: Sequence[str] | None = None,
    weights: Sequence[int] | None = None,
) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the folds a database would get.

    ``groups``: the fold group of every row (the ``fold_by`` values, qualified ``corpus/value``
    in a database of several corpora: :func:`deepser.database.folds.group_labels`);
    ``labels``: categorical task -> the class of every row, aligned with ``groups`` (empty
    cells are ignored; None: no class check); ``n_folds``: the database's (None: one fold per
    group); ``needs_validation``: the experiments train with a validation split
    (:func:`needs_validation_split`); ``speakers``: the rows' speakers as the database stores
    them (its ``speaker`` column, qualified like the groups, ``""`` for every row when the
    corpora have none), which the validation split draws from; default ``groups``;
    ``weights``: how many rows each entry stands for (default 1), so a large table can be
    passed as its distinct (group, speaker, labels) rows with their counts.

    Errors: fewer than 2 groups, ``n_folds`` below 2 or above the number of groups, and with
    ``needs_validation`` every fold that leaves fewer than 2 training speakers (the training
    would stop with ``a validation split needs at least two training speakers``). Warnings: a
    class that occurs in one group only, or in one fold only: the model that tests it never saw
    it in training."""
    groups = [str(g) for g in groups]
    distinct = _sorted(set(groups))
    errors = _count_problems(distinct, n_folds, where)
    for task, values in (labels or {}).items():
        classes = _sorted({str(v) for v in values if _is_label(v)})
        if len(classes) < 2:
            errors.append(
                f"{where}: task {task} has {len(classes)} class(es) ({', '.join(classes)}) in the "
                "validated meta: nothing to learn (a model that always says it would score 1.0)"
            )
    if errors:
        return errors, []
    spk = groups if speakers is None else [str(s) for s in speakers]
    if len(spk) != len(groups):
        raise ValueError(f"{len(spk)} speakers for {len(groups)} rows")
    assignment, folds = _fold_rows(groups, n_folds, weights)
    row_fold = [assignment[g] for g in groups]
    if needs_validation:
        short = []
        for k, members in enumerate(folds):
            train = _sorted({s for s, f in zip(spk, row_fold, strict=True) if f != k})
            if len(train) < 2:
                trained = _names([repr(s) for s in train]) or "none"
                short.append(f"fold {k} (tests {_names(members)}) trains on {trained}")
        if short:
            unnamed = (
                " (the corpora have no 'speaker' column, so every row has the same speaker)"
                if set(spk) == {""}
                else ""
            )
            errors.append(
                f"{where}: a validation split (training.validation_fraction > 0) needs at least "
                f"2 training speakers in every fold; {'; '.join(short)}{unnamed}. Add speakers, "
                "use fewer folds, or set validation_fraction: 0 in the experiments' training"
            )
    warnings: list[str] = []
    for task, values in (labels or {}).items():
        values = list(values)
        if len(values) != len(groups):
            raise ValueError(f"task {task!r}: {len(values)} labels for {len(groups)} rows")
        where_class: dict[str, set[str]] = {}
        for group, value in zip(groups, values, strict=True):
            if _is_label(value):
                where_class.setdefault(str(value), set()).add(group)
        for cls in _sorted(where_class):
            owners = _sorted(where_class[cls])
            if len(owners) == 1:
                warnings.append(
                    f"{where}: class {cls!r} of task {task} occurs in speaker {owners[0]} only: "
                    f"the fold that tests {owners[0]} never saw {cls!r} in training"
                )
            elif len({assignment[g] for g in owners}) == 1:
                k = assignment[owners[0]]
                warnings.append(
                    f"{where}: class {cls!r} of task {task} occurs in fold {k} only (speakers "
                    f"{_names(owners)}): the model that tests fold {k} never saw {cls!r} in "
                    "training"
                )
    return errors, warnings


def inner_fold_problems(
    groups: Sequence[str],
    n_folds: int | None,
    n_inner: int,
    needs_validation: bool,
    where: str,
    *,
    speakers: Sequence[str] | None = None,
    weights: Sequence[int] | None = None,
) -> list[str]:
    """Errors of the inner folds (``inner_folds`` of a weighted or stacking fusion, or of a
    selection) inside every outer fold, as :func:`deepser.training.split.inner_speakers` and
    :func:`deepser.training.split.split_fold` make them: an outer fold's training speakers must
    be at least 2, and with ``needs_validation`` each inner training set must keep at least 2
    speakers. Arguments as :func:`fold_problems`; an impossible outer split is left to it."""
    groups = [str(g) for g in groups]
    if _count_problems(_sorted(set(groups)), n_folds, where):
        return []
    spk = groups if speakers is None else [str(s) for s in speakers]
    assignment, folds = _fold_rows(groups, n_folds, weights)
    row_fold = [assignment[g] for g in groups]
    errors = []
    for k in range(len(folds)):
        inside = {s for s, f in zip(spk, row_fold, strict=True) if f == k}
        outer = _sorted({s for s, f in zip(spk, row_fold, strict=True) if f != k} - inside)
        n = min(int(n_inner), len(outer))
        if n < 2:
            errors.append(
                f"{where}: inner folds need at least 2 training speakers; fold {k} has "
                f"{len(outer)} ({_names(outer) or 'none'})"
            )
            continue
        if not needs_validation:
            continue
        trained = {s for s, f in zip(spk, row_fold, strict=True) if f != k}
        for j in range(n):
            train = _sorted(trained - set(outer[j::n]))
            if len(train) < 2:
                errors.append(
                    f"{where}: inner fold {j} of fold {k} leaves {len(train)} training speaker(s) "
                    f"({_names(train) or 'none'}) with {n} inner folds of {len(outer)} speakers; "
                    "a validation split needs 2: lower inner_folds or set validation_fraction: 0"
                )
    return errors
