"""The distinct label combinations of a validated meta file, with their counts, cached.

Planning a workflow needs the folds of every database (one per speaker, or ``n_folds``
balanced by utterance counts) and whether they can be trained; that takes the distinct
(speaker, labels) combinations of the validated meta and how many rows each has, not its
million rows. :func:`distinct_rows` computes them once per version of the meta file and keeps
them in a small JSON file next to it (``.<name>.distinct.json``, keyed by the meta file's size
and modification time), so later invocations do not read the meta file at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepser.files import atomic_path


def _cache_path(meta: Path) -> Path:
    return meta.with_name(f".{meta.stem}.distinct.json")


def distinct_rows(
    meta: str | Path, columns: Sequence[str], read: Callable[[], pd.DataFrame]
) -> list[tuple[Any, ...]]:
    """``(value of each column..., count)`` for every distinct combination of ``columns`` in
    the validated meta file ``meta`` (in order of first appearance); ``read()`` gives its table
    when the cache does not hold them yet."""
    meta = Path(meta)
    st = meta.stat()
    key = [st.st_size, st.st_mtime_ns]
    cache = _cache_path(meta)
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("key") != key:
            data = None
    except (OSError, ValueError):
        data = None
    data = data or {"key": key, "rows": {}}
    name = "\t".join(columns)
    if isinstance(data.get("rows"), dict) and name in data["rows"]:
        return [tuple(row) for row in data["rows"][name]]
    table = read()
    counts = table.groupby(list(columns), sort=False, dropna=False).size()
    keys = counts.index if len(columns) > 1 else [(k,) for k in counts.index]
    rows = [(*values, int(n)) for values, n in zip(keys, counts, strict=True)]
    data.setdefault("rows", {})[name] = rows
    try:
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(data), encoding="utf-8")
    except OSError:  # a read-only results folder: computed again next time
        pass
    return rows
