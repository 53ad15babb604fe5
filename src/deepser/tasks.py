"""Tasks: a label column a model predicts, ``{"name", "type", "classes"}``; categorical (the
default, with ordered class names) or continuous."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TASK_TYPES = ("categorical", "continuous")


def task_type(task: Mapping[str, Any]) -> str:
    """The task's type, checked."""
    kind = task.get("type", "categorical")
    if kind not in TASK_TYPES:
        raise ValueError(
            f"task {task.get('name')!r}: type must be one of {TASK_TYPES}, got {kind!r}"
        )
    return kind


def is_categorical(task: Mapping[str, Any]) -> bool:
    """Whether a task has classes rather than values."""
    return task_type(task) == "categorical"
