"""``deepser convert-db``: an original-format H5 database -> a deepser database.

The original builders (``h5db_builder.py``, ``h5db_builder_cc_sid.py``) wrote
only ``feat`` (float64; 2d ``(N, T, 1, c_len, D)``, 3d ``(N, 1, T, c_len, D)``, or frame
sequences ``(N, T, D)``), ``label`` (float64 ``(N, n_labels)``, the meta columns chosen with
``-mt``) and, with folds, ``start_indice`` / ``end_indice`` (float64 or int64; fold k is rows
``start_indice[k]:end_indice[k]``). The converted file has deepser's layout
(:mod:`deepser.database.store`): ``feat`` as float32 in the same 2d / 3d layout (frame
sequences become 2d with ``c_len`` 1), ``label`` with one column per task (in task order,
classes checked), ``n_valid``, ``fold``, ``utt_id``, ``speaker``, ``corpus`` and the
attributes training reads.

What the original did not record is reconstructed, and said so in the ``source`` attribute:

- ``n_valid``: windows up to the last one that is not all zeros (the builders zero-padded short
  utterances; a real window of gain-normalised audio is never exactly zero; at least 1);
- ``speaker``: the label column given as ``speaker_column`` (e.g. the original ``sid``), else the
  fold (``fold<k>``): the original's folds were speakers (``-c_idx 2``) or corpus+speaker pairs,
  so validation splits stay speaker-disjoint;
- rows outside every fold (``h5db_builder_cc_sid``'s all-zero rows of unselected corpora) are
  dropped; without fold datasets every row has fold -1 unless ``k_fold`` assigns
  contiguous blocks as the original trainer's ``-kf`` did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepser import __version__
from deepser.database.store import DatabaseWriter, contiguous_runs, to_time_major
from deepser.database.windows import layout_shape
from deepser.errors import LegacyDatabaseError, SpecError
from deepser.files import config_hash
from deepser.hdf5 import H5File
from deepser.legacy.presets import feature_dims, feature_spec, gain_spec, parse_tasks
from deepser.tasks import is_categorical

BLOCK_ROWS = 256


def _row_layout(shape: tuple[int, ...], layout: str | None, c_len: int | None, path: Path):
    """(layout, T, c_len, D, reshape) for the original ``feat`` shape (N, ...)."""
    if len(shape) == 5:
        _, a, b, c, d = shape
        if layout is None:
            layout = "2d" if b == 1 else "3d" if a == 1 else None
        if layout == "2d" and b == 1:
            return "2d", a, c, d, None
        if layout == "3d" and a == 1:
            return "3d", b, c, d, None
        raise LegacyDatabaseError(
            f"{path}: feat {shape} is neither 2d (N, T, 1, c_len, D) nor 3d (N, 1, T, c_len, D)"
        )
    if len(shape) in (2, 3):
        steps, width = (1, shape[1]) if len(shape) == 2 else shape[1:]
        c = c_len or 1
        if width % c:
            raise LegacyDatabaseError(f"{path}: feat width {width} is not a multiple of c_len {c}")
        if layout not in (None, "2d"):
            raise LegacyDatabaseError(f"{path}: a frame-sequence feat converts to layout 2d only")
        return "2d", steps, c, width // c, (steps, 1, c, width // c)
    raise LegacyDatabaseError(f"{path}: feat has rank {len(shape)}; expected 2, 3 or 5")


def n_valid_windows(feat: np.ndarray, layout: str) -> np.ndarray:
    """Per row: windows up to the last one holding a non-zero value (at least 1)."""
    windows = to_time_major(feat, layout)  # (n, T, 1, c, D)
    nonzero = np.any(windows.reshape(windows.shape[0], windows.shape[1], -1) != 0, axis=2)
    last = windows.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 1).astype(np.int32)


def _folds(h5, n_rows: int, k_fold: int | None, path: Path) -> np.ndarray:
    """Fold of every original row (-1: none)."""
    fold = np.full(n_rows, -1, dtype=np.int64)
    if "start_indice" in h5 and "end_indice" in h5:
        if k_fold:
            raise LegacyDatabaseError(f"{path}: has folds already; k_fold not allowed")
        starts, ends = h5["start_indice"][()], h5["end_indice"][()]
        if starts.shape != ends.shape:
            raise LegacyDatabaseError(f"{path}: start_indice and end_indice differ in length")
        for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
            if s != int(s) or e != int(e) or not 0 <= s <= e <= n_rows:
                raise LegacyDatabaseError(f"{path}: fold {k} has bad bounds [{s}, {e})")
            s, e = int(s), int(e)
            if np.any(fold[s:e] >= 0):
                raise LegacyDatabaseError(f"{path}: fold {k} [{s}, {e}) overlaps another fold")
            fold[s:e] = k
    elif k_fold:
        if not 2 <= k_fold <= n_rows:
            raise LegacyDatabaseError(f"k_fold {k_fold}: needs 2 <= k <= {n_rows} rows")
        fold = (np.arange(n_rows) * k_fold // n_rows).astype(np.int64)
    return fold


def _label_matrix(labels: np.ndarray, tasks: Sequence[Mapping[str, Any]], path: Path):
    cols = []
    for task in tasks:
        col = task["column"]
        if not -labels.shape[1] <= col < labels.shape[1]:
            raise LegacyDatabaseError(
                f"task {task['name']!r}: label column {col} out of range (label has "
                f"{labels.shape[1]} columns)"
            )
        values = labels[:, col].astype(np.float64)
        if is_categorical(task):
            n = len(task["classes"])
            bad = np.flatnonzero((values != np.round(values)) | (values < 0) | (values >= n))
            if bad.size:
                raise LegacyDatabaseError(
                    f"{path}: task {task['name']!r} (label column {col}, {n} classes): "
                    f"{bad.size} row(s) with a value that is not a class index 0..{n - 1}, e.g. "
                    f"row {bad[0]}: {values[bad[0]]}"
                )
        cols.append(values)
    return np.stack(cols, axis=1)


def convert_database(
    original: str | Path,
    tasks: Sequence[str] | Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    layout: str | None = None,
    c_len: int | None = None,
    speaker_column: int | None = None,
    k_fold: int | None = None,
    corpus: str | None = None,
    features: str | Mapping[str, Any] | None = None,
    gain: str | None = None,
) -> dict[str, Any]:
    """Convert the original database ``original`` into ``out``; returns its attributes.

    ``tasks``: ``NAME:N_CLASSES:LABEL_COL`` or ``NAME:CLASS,...:LABEL_COL`` specs (label column
    = column of the original ``label`` matrix, as in the original trainer's ``-mt``);
    ``features`` / ``gain``: what the features were (a preset such as ``mspec``, and
    ``MIN,MAX`` or a ``*.gain.txt``), recorded so a model trained on the result can be bundled
    for the recogniser; unknown when not given.
    """
    original, out = Path(original), Path(out)
    task_list = (
        parse_tasks(list(tasks), need_column=True)
        if all(isinstance(t, str) for t in tasks)
        else [dict(t) for t in tasks]
    )
    try:
        spec = feature_spec(features) if features is not None else {"type": "unknown"}
        gain_info = gain_spec(gain) if gain is not None else {"method": "unknown"}
    except SpecError as exc:
        raise LegacyDatabaseError(str(exc)) from None
    corpus = corpus or original.stem
    source = H5File(original, "original database", error=LegacyDatabaseError)
    with source.open() as h5:
        missing = [d for d in ("feat", "label") if d not in h5]
        if missing:
            has = ", ".join(sorted(h5.keys())) or "nothing"
            raise source.fail(
                f"no {' / '.join(missing)} dataset (it holds: {has}); an original database has "
                "feat and label"
            )
        feat = source.dataset(h5, "feat", ndim=(2, 3, 5))
        source.dataset(h5, "label", ndim=(1, 2))
        n_rows = int(feat.shape[0])
        with source.reading("dataset 'label'"):
            labels = np.asarray(h5["label"][()], dtype=np.float64)
        if labels.ndim == 1:
            labels = labels[:, None]
        if labels.shape[0] != n_rows:
            raise LegacyDatabaseError(
                f"{original}: label has {labels.shape[0]} rows, feat has {n_rows}"
            )
        lay, steps, clen, dims, reshape = _row_layout(tuple(feat.shape), layout, c_len, original)
        if spec["type"] != "unknown":
            if feature_dims(spec) != dims:
                raise LegacyDatabaseError(
                    f"{original}: {dims} values per frame, the feature spec gives "
                    f"{feature_dims(spec)}"
                )
        label = _label_matrix(labels, task_list, original)
        with source.reading("the fold indices"):
            fold = _folds(h5, n_rows, k_fold, original)
        has_folds = bool((fold >= 0).any())
        keep = np.flatnonzero(fold >= 0) if has_folds else np.arange(n_rows)
        keep = keep[np.argsort(fold[keep], kind="stable")]
        if speaker_column is not None:
            if not -labels.shape[1] <= speaker_column < labels.shape[1]:
                raise LegacyDatabaseError(f"speaker column {speaker_column} out of range")
            speaker = np.array([f"{v:g}" for v in labels[:, speaker_column]], dtype=object)
        else:
            speaker = np.array([f"fold{k}" if k >= 0 else "unassigned" for k in fold], dtype=object)
        row_shape = layout_shape(lay, steps, clen, dims)
        writer = DatabaseWriter(out, int(keep.size), row_shape, len(task_list))
        try:
            zero_rows = 0
            for block_start in range(0, keep.size, BLOCK_ROWS):
                rows = keep[block_start : block_start + BLOCK_ROWS]
                with source.reading(f"dataset 'feat' (rows {rows[0]}..{rows[-1]})"):
                    chunk = np.concatenate([feat[a:b] for a, b in contiguous_runs(rows)])
                chunk = chunk.reshape(len(rows), *row_shape).astype(np.float32)
                valid = n_valid_windows(chunk, lay)
                zero_rows += int(np.sum(~np.any(chunk.reshape(len(rows), -1) != 0, axis=1)))
                for j, row in enumerate(rows):
                    writer.append(
                        chunk[j],
                        label[row],
                        int(valid[j]),
                        int(fold[row]),
                        f"row{row:06d}",
                        str(speaker[row]),
                        corpus,
                    )
            kept_folds = fold[keep]
            n_folds = int(kept_folds.max()) + 1 if has_folds else 0
            bounds = []
            folds_meta = []
            for k in range(n_folds):
                idx = np.flatnonzero(kept_folds == k)
                bounds.append((int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0))
                folds_meta.append(
                    {
                        "fold": k,
                        "groups": sorted(set(speaker[keep[idx]])),
                        "n_utterances": int(idx.size),
                    }
                )
            source = {
                "original": original.name,
                "rows": n_rows,
                "dropped_rows_outside_folds": int(n_rows - keep.size),
                "feat_shape": list(feat.shape),
                "label_columns": {t["name"]: int(t["column"]) for t in task_list},
                "speaker": f"label column {speaker_column}"
                if speaker_column is not None
                else "the fold (fold<k>)",
                "n_valid": "windows up to the last non-zero one",
                "all_zero_rows": zero_rows,
                "folds": "original start_indice/end_indice"
                if "start_indice" in h5
                else (f"k_fold {k_fold} contiguous blocks" if k_fold else "none"),
            }
            attrs = {
                "feature_spec": spec,
                "gain": {corpus: gain_info},
                "window_spec": {
                    "c_len": clen,
                    "max_steps": steps * clen,
                    "layout": lay,
                    "n_steps": steps,
                    "dims": dims,
                },
                "tasks": [
                    {k: t[k] for k in ("name", "type", "classes") if k in t} for t in task_list
                ],
                "fold_by": "original_folds" if has_folds else None,
                "folds": folds_meta if has_folds else None,
                "corpora": [corpus],
                "n_utterances": int(keep.size),
                "speakers": sorted(set(speaker[keep])),
                "config_hash": config_hash(
                    {"original": original.name, "tasks": task_list, "layout": lay, "c_len": clen}
                ),
                "deepser_version": __version__,
                "source": source,
            }
            writer.finish(bounds if has_folds else None, attrs)
        except BaseException:
            writer.abort()
            raise
    return attrs
