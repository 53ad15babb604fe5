"""Meta files: read, validate and normalise a corpus's list of audio files and labels.

Two formats are read:
- ``named``: a header row with column names; labels are strings or integers.
- ``original``: the DEEPSER format (header ``n_train_data.name class sid ...``, path in column 0,
  integer codes); columns are chosen by 0-based index (names from its header work too).

Validation collects every problem (``file:line: what``) before failing. Accepted silently: CRLF
(or CR) line ends, a UTF-8 BOM (UTF-16 with a BOM too, as spreadsheets export "Unicode text"),
blank lines, comment lines (first non-blank character ``#``), whitespace around a field (it is
stripped) and empty trailing fields (a trailing tab). Paths are relative to the meta file's folder
(the corpus folder); ``\\`` separators are read as ``/``.

**Paths outside the corpus folder.** A path is judged lexically, after normalisation
(``a/../b`` is ``b``), never by resolving symbolic links: a corpus folder that is (or holds) a
symbolic link to audio elsewhere is fine. An absolute path, or one whose normalised form starts
with ``..`` (it leaves the corpus folder), is a problem unless the corpus sets
``allow_outside_paths: true``. The file read is the normalised path (``link/../a.wav`` is
``a.wav`` in the corpus folder, whatever ``link`` points to).

**Utterance ids** (:func:`audio_location`), stable across runs and machines:
- a path inside the corpus folder: the normalised path relative to it, without the extension
  (``./wav/s1/a.wav`` -> ``wav/s1/a``);
- with ``allow_outside_paths``, an absolute path that points into the corpus folder: the same;
- with ``allow_outside_paths``, any other path: ``<parent>/<stem>~<hash>``, the last folder
  name of the path as written (none for ``../a.wav``), the file name without the extension and
  the first 8 hex digits of the SHA-256 of the path as written (normalised):
  ``../other/s1/a.wav`` -> ``s1/a~39862906`` wherever the corpus lies. An id never holds an
  absolute path or a ``..`` component.
Two rows naming one file (after resolving links) are a ``duplicate audio path``; two rows whose
ids are equal are a problem too, so no two files ever share an id. An id may not end like an
augmented copy's (``#aug<k>``).
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
import re
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from deepser.corpus.audio import check_audio
from deepser.errors import AudioError, MetaError, Problem
from deepser.files import read_tsv

META_FIXED_COLUMNS = ("utt_id", "audio", "shard", "line")
OUTSIDE_OPTION = "allow_outside_paths"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")
_AUGMENTED_ID = re.compile(r"#aug\d+$")  # deepser.features.augment's mark of a copy
_LINE_END = re.compile(r"\r\n|\r|\n")
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".sph", ".raw")


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
    allow_outside_paths: bool = False

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
            allow_outside_paths=bool(cfg.get(OUTSIDE_OPTION, False)),
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


@dataclass(frozen=True)
class AudioLocation:
    """Where a meta row's audio path points, judged lexically (see the module docstring).

    ``written``: the path as written, normalised (``/`` separators, no ``.`` or inner ``..``);
    ``absolute``: it is absolute (``/...``, ``//server/...`` or ``C:/...``); ``leaves``: it is
    relative and its normalised form starts with ``..``; ``inside``: the path relative to the
    corpus folder when it points into it (``None`` otherwise); ``utt_id``: the utterance id."""

    written: str
    absolute: bool
    leaves: bool
    inside: str | None
    utt_id: str

    @property
    def outside(self) -> bool:
        """Whether the path needs ``allow_outside_paths``."""
        return self.absolute or self.leaves


def _relative_inside(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` (both normalised, absolute, ``/``) when it is inside."""
    if path == root:
        return ""
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def outside_utt_id(written: str) -> str:
    """The id of audio outside the corpus folder: ``<parent>/<stem>~<hash>`` from ``written``,
    the normalised path as written: the name of the folder it names last (left out when it names
    none, as in ``../a.wav``), the file name without the extension, and 8 hex digits of the
    SHA-256 of ``written``. It depends on the path as written only, not on where the corpus
    lies."""
    parent = posixpath.basename(posixpath.dirname(written))
    if parent in ("", "..") or parent.endswith(":"):  # no folder name (or a Windows drive)
        parent = ""
    stem = posixpath.splitext(posixpath.basename(written))[0]
    digest = hashlib.sha256(written.encode("utf-8")).hexdigest()[:8]
    return f"{parent}/{stem}~{digest}" if parent else f"{stem}~{digest}"


def audio_location(path: str, folder: str | Path) -> AudioLocation:
    """Judge a meta row's audio ``path`` (relative to the corpus ``folder``) and derive its
    utterance id: see the module docstring for the rule."""
    written = posixpath.normpath(path.replace("\\", "/"))
    absolute = written.startswith("/") or bool(_WINDOWS_DRIVE.match(written))
    leaves = not absolute and (written == ".." or written.startswith("../"))
    root = posixpath.normpath(Path(os.path.abspath(folder)).as_posix())
    lexical = written if absolute else posixpath.normpath(posixpath.join(root, written))
    inside = _relative_inside(lexical, root)
    if inside is None and absolute:  # the corpus folder reached through a link
        inside = _relative_inside(lexical, Path(folder).resolve().as_posix())
    if inside is not None:
        utt_id = posixpath.splitext(inside)[0]
    else:
        utt_id = outside_utt_id(written)
    return AudioLocation(written, absolute, leaves, inside, utt_id)


def _decode(path: Path) -> str:
    """The text of a meta file (UTF-8, with or without a BOM; UTF-16 with a BOM), or
    :class:`MetaError` naming the line of the first byte that is not UTF-8."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise MetaError([Problem(str(path), 0, f"not UTF-16 text ({exc.reason})")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise MetaError(
            [
                Problem(
                    str(path),
                    line,
                    f"not UTF-8 text (byte 0x{byte}: {exc.reason}); save the meta file as UTF-8",
                )
            ]
        ) from None


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, tab-separated fields) of every line that is not blank or a comment."""
    rows = []
    for number, line in enumerate(_LINE_END.split(_decode(path)), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            rows.append((number, line.split("\t")))
    return rows


def list_audio(path: str | Path, column: str = "path") -> list[tuple[str, Path]]:
    """(path as written, path relative to the meta folder) of every row of a meta file's
    ``column``: the audio a recogniser reads from ``--meta``. Problems raise :class:`MetaError`
    naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise MetaError([Problem(str(path), 0, "meta file not found")])
    rows = _read_rows(path)
    if not rows:
        raise MetaError([Problem(str(path), 1, "meta file is empty")])
    (header_line, header), data = rows[0], rows[1:]
    header = [h.strip().lstrip("\ufeff") for h in header]
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


def _header_problems(
    spec: CorpusSpec, fname: str, header_line: int, header: list[str]
) -> tuple[int | None, dict[str, int], list[Problem]]:
    """The audio column's index, each label column's index, and the header's problems."""
    problems: list[Problem] = []
    counts = Counter(header)
    columns = ", ".join(header) if spec.format == "named" else f"0..{len(header) - 1}"
    first = next((h for h in header if h.lower().endswith(_AUDIO_SUFFIXES)), None)
    hint = (
        f"; the first line is read as the header, but {first!r} looks like an audio path: "
        "add a header line"
        if first
        else ""
    )

    def duplicated(ref: str | int, what: str) -> None:
        if isinstance(ref, str) and counts[ref] > 1:
            fields = [str(k + 1) for k, h in enumerate(header) if h == ref]
            problems.append(
                Problem(
                    fname,
                    header_line,
                    f"column {ref!r} ({what}) appears {counts[ref]} times in the header "
                    f"(fields {', '.join(fields)}); rename all but one",
                )
            )

    audio_ref = spec.audio_column
    if audio_ref is None:
        audio_ref = 0 if spec.format == "original" else "path"
    audio_idx = _resolve_column(audio_ref, header)
    if audio_idx is None:
        problems.append(
            Problem(
                fname,
                header_line,
                f"unknown audio column {audio_ref!r} (columns: {columns}); name the column of "
                f"audio paths 'path' or set audio_column under corpora.{spec.name}{hint}",
            )
        )
    duplicated(audio_ref, "the audio paths")
    col_idx: dict[str, int] = {}
    for col in spec.columns:
        idx = _resolve_column(col.column, header)
        if idx is None:
            problems.append(
                Problem(
                    fname,
                    header_line,
                    f"unknown column {col.column!r} for {col.name!r} (known: {columns}){hint}",
                )
            )
        else:
            col_idx[col.name] = idx
            duplicated(col.column, f"label {col.name!r}")
    return audio_idx, col_idx, problems


def _outside_problem(rel: str, where: AudioLocation, folder: Path, corpus: str) -> str:
    """The message for a path outside the corpus folder without ``allow_outside_paths``."""
    option = f"set {OUTSIDE_OPTION}: true under corpora.{corpus} to accept it"
    shown = _display_path(folder)
    if where.absolute:
        return (
            f"audio path {rel!r} is absolute; write it relative to the meta file's folder "
            f"({shown}), or {option}"
        )
    back = f" (it comes back in: write {where.inside!r})" if where.inside else ""
    return (
        f"audio path {rel!r} leaves the corpus folder ({shown}; paths are relative to the "
        f"meta file's folder){back}; move the audio under it, or {option}"
    )


def _audio_problem(path: Path) -> str | None:
    """Why the audio file ``path`` cannot be used (None: it can)."""
    if path.is_dir():
        return "is a folder, not an audio file"
    try:
        check_audio(path)
    except AudioError as exc:
        return exc.reason
    return None


def read_meta(spec: CorpusSpec, check_files: bool = True) -> MetaResult:
    """Read and validate ``spec.meta``; raise :class:`MetaError` listing every problem
    (``file:line: what``).

    Audio paths outside the corpus folder are problems unless ``spec.allow_outside_paths``;
    utterance ids follow :func:`audio_location` (the module docstring has the rule). Audio files
    that are missing, unreadable, empty or folders are problems when ``on_bad_audio`` is
    ``fail``; with ``skip`` they are left out and listed in ``rejected``.
    """
    meta_path = Path(spec.meta)
    fname = str(meta_path)
    if meta_path.is_dir():
        raise MetaError([Problem(fname, 0, "is a folder, not a meta file")])
    if not meta_path.is_file():
        raise MetaError([Problem(fname, 0, "meta file not found")])
    rows = _read_rows(meta_path)
    if not rows:
        raise MetaError(
            [Problem(fname, 1, "meta file is empty: it needs a header line and a row per audio")]
        )
    header_line, header = rows[0]
    header = [h.strip().lstrip("\ufeff") for h in header]
    data_rows = rows[1:]
    audio_idx, col_idx, problems = _header_problems(spec, fname, header_line, header)
    if problems or audio_idx is None:
        raise MetaError(problems)
    if not data_rows:
        raise MetaError(
            [Problem(fname, header_line, "no data rows after the header (one row per audio)")]
        )

    folder = meta_path.parent
    records: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    seen_paths: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for line, cells in data_rows:
        cells = [c.strip() for c in cells]
        while len(cells) > len(header) and cells[-1] == "":  # trailing tabs
            cells.pop()
        if len(cells) != len(header):
            hint = ""
            if len(cells) == 1 and len(cells[0].split()) >= len(header):
                hint = " (no tab on this line: separate the fields with tabs, not spaces)"
            problems.append(
                Problem(fname, line, f"{len(cells)} fields, the header has {len(header)}{hint}")
            )
            continue
        rel = cells[audio_idx]
        if not rel:
            problems.append(Problem(fname, line, "empty audio path"))
            continue
        where = audio_location(rel, folder)
        if where.inside == "" or posixpath.basename(where.written) in ("", ".", ".."):
            problems.append(Problem(fname, line, f"audio path {rel!r} does not name a file"))
            continue
        if where.outside and not spec.allow_outside_paths:
            problems.append(Problem(fname, line, _outside_problem(rel, where, folder, spec.name)))
            continue
        audio_path = (folder / where.written).resolve()
        key = audio_path.as_posix()
        if key in seen_paths:
            problems.append(
                Problem(
                    fname, line, f"duplicate audio path {rel!r} (first on line {seen_paths[key]})"
                )
            )
            continue
        seen_paths[key] = line
        utt_id = where.utt_id
        if utt_id in seen_ids:
            problems.append(
                Problem(
                    fname,
                    line,
                    f"utterance id {utt_id!r} also on line {seen_ids[utt_id]} (an id is the "
                    "path without its extension); rename one of the two files",
                )
            )
            continue
        seen_ids[utt_id] = line
        if _AUGMENTED_ID.search(utt_id):
            problems.append(
                Problem(
                    fname,
                    line,
                    f"utterance id {utt_id!r} ends like an augmented copy's ('#aug<k>'); "
                    "rename the file",
                )
            )
            continue
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
                    number = float(value)
                except ValueError:
                    number = None
                if number is None or not math.isfinite(number):
                    kind = "a number" if number is None else "a finite number"
                    problems.append(Problem(fname, line, f"{col.name!r}: {value!r} is not {kind}"))
                    row_ok = False
                else:
                    record[col.name] = number
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
            reason = _audio_problem(audio_path)
            if reason is not None:
                if spec.on_bad_audio == "skip":
                    rejected.append(
                        {
                            "utt_id": utt_id,
                            "audio": record["audio"],
                            "line": line,
                            "stage": "meta",
                            "reason": reason,
                        }
                    )
                    continue
                problems.append(Problem(fname, line, f"{rel}: {reason}"))
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
