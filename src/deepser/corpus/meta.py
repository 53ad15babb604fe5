"""Meta files: read, validate and normalise a corpus's list of audio files and labels.

Two formats are read:
- ``named``: a header row with column names; labels are strings or integers.
- ``original``: the DEEPSER format (header ``n_train_data.name class sid ...``, path in column 0,
  integer codes); columns are chosen by 0-based index (names from its header work too).

Validation collects every problem (file, line, what) before failing. CRLF line ends and a UTF-8
BOM are accepted silently. Paths are relative to the meta file's folder.
"""

from __future__ import annotations

import posixpath
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from deepser.corpus.audio import check_audio
from deepser.errors import AudioError, MetaError, Problem
from deepser.files import read_tsv

META_FIXED_COLUMNS = ("utt_id", "audio", "shard", "line")


@dataclass(frozen=True)
class ColumnSpec:
    """One meta column kept as a label: our name, its source column, type and classes."""

    name: str
    column: str | int
    type: str = "categorical"
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CorpusSpec:
    """How to read one corpus's meta file."""

    name: str
    meta: Path
    format: str = "named"
    audio_column: str | int | None = None
    columns: tuple[ColumnSpec, ...] = ()
    n_shards: int = 4
    on_bad_audio: str = "fail"

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> CorpusSpec:
        """Build from a ``corpora:`` entry of the workflow config."""
        columns = []
        for col_name, col in cfg["columns"].items():
            if not isinstance(col, Mapping):
                col = {"column": col}
            classes = col.get("classes")
            columns.append(
                ColumnSpec(
                    name=col_name,
                    column=col["column"],
                    type=col.get("type", "categorical"),
                    classes=None if classes is None else tuple(str(c) for c in classes),
                )
            )
        return cls(
            name=name,
            meta=Path(cfg["meta"]),
            format=cfg.get("format", "named"),
            audio_column=cfg.get("audio_column"),
            columns=tuple(columns),
            n_shards=int(cfg.get("n_shards", cls.n_shards)),
            on_bad_audio=cfg.get("on_bad_audio", "fail"),
        )


@dataclass
class MetaResult:
    """A validated meta: one row per usable utterance, the class vocabularies, and rejections."""

    table: pd.DataFrame
    vocab: dict[str, dict[str, Any]]
    rejected: list[dict[str, Any]] = field(default_factory=list)


def shard_of(utt_id: str, n_shards: int) -> int:
    """Stable shard of an utterance (CRC-32 of its id): the same in every process and run."""
    return zlib.crc32(utt_id.encode("utf-8")) % n_shards


def utt_id_of(rel_path: str) -> str:
    """Stable utterance id: the path relative to the meta folder, normalised, without extension."""
    norm = posixpath.normpath(rel_path.replace("\\", "/"))
    return posixpath.splitext(norm)[0]


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    text = path.read_bytes().decode("utf-8-sig")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append((number, line.split("\t")))
    return rows


def list_audio(path: str | Path, column: str = "path") -> list[tuple[str, Path]]:
    """(path as written, path relative to the meta folder) of every row of a meta file's
    ``column``: the audio a recogniser reads from ``--meta``. Problems raise :class:`MetaError`
    naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise MetaError([Problem(str(path), 0, "meta file not found")])
    try:
        rows = _read_rows(path)
    except UnicodeDecodeError as exc:
        raise MetaError([Problem(str(path), 0, f"not a UTF-8 text file ({exc.reason})")]) from None
    if not rows:
        raise MetaError([Problem(str(path), 0, "meta file is empty")])
    (header_line, header), data = rows[0], rows[1:]
    header = [h.strip() for h in header]
    if column not in header:
        raise MetaError(
            [
                Problem(
                    str(path), header_line, f"no column {column!r} (columns: {', '.join(header)})"
                )
            ]
        )
    idx = header.index(column)
    items, problems = [], []
    for line, cells in data:
        value = cells[idx].strip() if idx < len(cells) else ""
        if not value:
            problems.append(Problem(str(path), line, f"empty {column!r}"))
        items.append((value, path.parent / value))
    if problems:
        raise MetaError(problems)
    return items


def _resolve_column(ref: str | int, header: list[str]) -> int | None:
    if isinstance(ref, int):
        return ref if 0 <= ref < len(header) else None
    return header.index(ref) if ref in header else None


def natural_key(value: str) -> tuple[int, float | str]:
    """Sort key: numbers in numeric order before other values in text order."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _display_path(path: Path) -> str:
    """A path relative to the working folder when inside it, else absolute."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


def read_meta(spec: CorpusSpec, check_files: bool = True) -> MetaResult:
    """Read and validate ``spec.meta``; raise :class:`MetaError` listing every problem.

    Audio files that are missing, unreadable or empty are problems when ``on_bad_audio`` is
    ``fail``; with ``skip`` they are left out and listed in ``rejected``.
    """
    meta_path = Path(spec.meta)
    fname = str(meta_path)
    if not meta_path.is_file():
        raise MetaError([Problem(fname, 0, "meta file not found")])
    rows = _read_rows(meta_path)
    if not rows:
        raise MetaError([Problem(fname, 0, "meta file is empty")])
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    data_rows = rows[1:]
    problems: list[Problem] = []

    audio_ref = spec.audio_column
    if audio_ref is None:
        audio_ref = 0 if spec.format == "original" else "path"
    audio_idx = _resolve_column(audio_ref, header)
    if audio_idx is None:
        problems.append(Problem(fname, header_line, f"unknown audio column {audio_ref!r}"))
    col_idx: dict[str, int] = {}
    for col in spec.columns:
        idx = _resolve_column(col.column, header)
        if idx is None:
            known = ", ".join(header) if spec.format == "named" else f"0..{len(header) - 1}"
            problems.append(
                Problem(
                    fname,
                    header_line,
                    f"unknown column {col.column!r} for {col.name!r} (known: {known})",
                )
            )
        else:
            col_idx[col.name] = idx
    if problems:
        raise MetaError(problems)
    if not data_rows:
        raise MetaError([Problem(fname, header_line, "no data rows after the header")])

    folder = meta_path.parent
    records: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    seen_paths: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for line, cells in data_rows:
        cells = [c.strip() for c in cells]
        if len(cells) != len(header):
            problems.append(
                Problem(fname, line, f"{len(cells)} fields, the header has {len(header)}")
            )
            continue
        rel = cells[audio_idx]
        if not rel:
            problems.append(Problem(fname, line, "empty audio path"))
            continue
        audio_path = (folder / rel).resolve()
        key = audio_path.as_posix()
        if key in seen_paths:
            problems.append(
                Problem(
                    fname, line, f"duplicate audio path {rel!r} (first on line {seen_paths[key]})"
                )
            )
            continue
        seen_paths[key] = line
        utt_id = utt_id_of(rel)
        if utt_id in seen_ids:
            problems.append(
                Problem(fname, line, f"utterance id {utt_id!r} also on line {seen_ids[utt_id]}")
            )
            continue
        seen_ids[utt_id] = line
        record: dict[str, Any] = {
            "utt_id": utt_id,
            "audio": _display_path(audio_path),
            "shard": shard_of(utt_id, spec.n_shards),
            "line": line,
        }
        row_ok = True
        for col in spec.columns:
            value = cells[col_idx[col.name]]
            if value == "":
                problems.append(Problem(fname, line, f"empty cell in column {col.name!r}"))
                row_ok = False
                continue
            if col.type == "continuous":
                try:
                    record[col.name] = float(value)
                except ValueError:
                    problems.append(
                        Problem(fname, line, f"{col.name!r}: {value!r} is not a number")
                    )
                    row_ok = False
                continue
            if col.classes is not None and value not in col.classes:
                if value.lstrip("-").isdigit() and 0 <= int(value) < len(col.classes):
                    value = col.classes[int(value)]
                else:
                    problems.append(
                        Problem(
                            fname,
                            line,
                            f"{col.name!r}: {value!r} is not one of {list(col.classes)} "
                            f"(nor an index into them)",
                        )
                    )
                    row_ok = False
                    continue
            record[col.name] = value
        if not row_ok:
            continue
        if check_files:
            try:
                check_audio(audio_path)
            except AudioError as exc:
                if spec.on_bad_audio == "skip":
                    rejected.append(
                        {
                            "utt_id": utt_id,
                            "audio": record["audio"],
                            "line": line,
                            "stage": "meta",
                            "reason": exc.reason,
                        }
                    )
                    continue
                problems.append(Problem(fname, line, f"{rel}: {exc.reason}"))
                continue
        records.append(record)
    if problems:
        raise MetaError(problems)
    if not records:
        raise MetaError([Problem(fname, header_line, "no usable utterance (all rejected)")])

    table = pd.DataFrame.from_records(records)
    vocab: dict[str, dict[str, Any]] = {}
    for col in spec.columns:
        if col.type == "continuous":
            vocab[col.name] = {"type": "continuous"}
            continue
        classes = (
            list(col.classes) if col.classes else sorted(set(table[col.name]), key=natural_key)
        )
        vocab[col.name] = {"type": "categorical", "classes": classes}
    return MetaResult(table=table, vocab=vocab, rejected=rejected)


def read_table(
    path: str | Path, vocab: Mapping[str, Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """Read a normalised meta TSV: labels stay strings, continuous ones (per ``vocab``) floats."""
    table = read_tsv(path)
    table["shard"] = table["shard"].astype(int)
    table["line"] = table["line"].astype(int)
    for name, entry in (vocab or {}).items():
        if entry["type"] == "continuous":
            table[name] = table[name].astype(float)
    return table
