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

import gc
import hashlib
import math
import os
import posixpath
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from pathlib import Path
from typing import Any

import pandas as pd

from deepser.corpus.probe import AudioChecks
from deepser.errors import MetaError, Problem
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
    # the (size, mtime ns) of each row's audio file as its check saw it (None: not checked)
    states: list[tuple[int, int]] | None = None


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


class _CorpusFolder:
    """The corpus folder as audio paths are judged against it: absolute and normalised
    (``lexical``), and with links resolved (``resolved``, computed when first needed)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.lexical = posixpath.normpath(Path(os.path.abspath(folder)).as_posix())

    @cached_property
    def resolved(self) -> str:
        """The folder with its links resolved."""
        return self.folder.resolve().as_posix()


def _locate(path: str, root: _CorpusFolder) -> AudioLocation:
    """:func:`audio_location` against a :class:`_CorpusFolder`."""
    written = posixpath.normpath(path.replace("\\", "/"))
    absolute = written.startswith("/") or bool(_WINDOWS_DRIVE.match(written))
    leaves = not absolute and (written == ".." or written.startswith("../"))
    if absolute:
        inside = _relative_inside(written, root.lexical)
        if inside is None:  # the corpus folder reached through a link
            inside = _relative_inside(written, root.resolved)
    elif leaves:
        lexical = posixpath.normpath(posixpath.join(root.lexical, written))
        inside = _relative_inside(lexical, root.lexical)
    else:  # normalised, relative and not leaving: inside as written
        inside = "" if written == "." else written
    if inside is not None:
        utt_id = posixpath.splitext(inside)[0]
    else:
        utt_id = outside_utt_id(written)
    return AudioLocation(written, absolute, leaves, inside, utt_id)


def audio_location(path: str, folder: str | Path) -> AudioLocation:
    """Judge a meta row's audio ``path`` (relative to the corpus ``folder``) and derive its
    utterance id: see the module docstring for the rule."""
    return _locate(path, _CorpusFolder(folder))


class _Resolver:
    """The file a path relative to ``folder`` names, as ``Path.resolve`` gives it (links
    resolved), with each folder's links resolved once: a path's folder is looked up in a
    cache, its last component resolved only when it is a link."""

    def __init__(self, folder: str | Path) -> None:
        self.base = os.path.join(os.getcwd(), folder, "")  # ends with "/"
        self.folders: dict[str, str] = {}

    def __call__(self, written: str) -> str:
        """The file ``written`` (a normalised path naming a file) names, links resolved."""
        full = written if written.startswith("/") else self.base + written
        head, _, name = full.rpartition("/")
        real = self.folders.get(head)
        if real is None:
            real = self.folders[head] = os.path.realpath(head or "/")
        path = f"{real.rstrip('/')}/{name}"
        return os.path.realpath(path) if os.path.islink(path) else path


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
    text = _decode(path)
    lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
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


def _working_folder() -> str:
    """The working folder, links resolved."""
    return Path.cwd().resolve().as_posix()


def _shown(resolved: str, cwd: str) -> str:
    """A resolved path relative to the working folder ``cwd`` when inside it, else as is."""
    inside = _relative_inside(resolved, cwd)
    return resolved if inside is None else inside or "."


def _display_path(path: Path) -> str:
    """A path relative to the working folder when inside it, else absolute."""
    return _shown(path.resolve().as_posix(), _working_folder())


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


def _labels(
    spec: CorpusSpec, cells: list[str], col_idx: dict[str, int], where: tuple[str, int]
) -> tuple[dict[str, Any], list[Problem]]:
    """A row's label values (``cells`` stripped, of the header's length) and their problems;
    ``where`` is (meta file, line)."""
    fname, line = where
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for col in spec.columns:
        value = cells[col_idx[col.name]]
        if value == "":
            problems.append(Problem(fname, line, f"empty cell in column {col.name!r}"))
            continue
        if col.type == "continuous":
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is None or not math.isfinite(number):
                kind = "a number" if number is None else "a finite number"
                problems.append(Problem(fname, line, f"{col.name!r}: {value!r} is not {kind}"))
            else:
                values[col.name] = number
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
                continue
        values[col.name] = value
    return values, problems


def _keep_usable_audio(
    spec: CorpusSpec,
    fname: str,
    rows: list[tuple[dict[str, Any], str, str]],
    checks: list[tuple[str | None, tuple[int, int]]],
) -> tuple[list[dict[str, Any]], list[tuple[int, int]], list[Problem], list[dict[str, Any]]]:
    """Sort ``rows`` ((record, path as written, resolved audio path) each) by their audio's
    ``checks`` ((reason, state) each): (the records whose audio is usable, their files' states,
    the problems of the others with ``on_bad_audio: fail``, their ``rejected`` entries with
    ``skip``)."""
    kept: list[dict[str, Any]] = []
    states: list[tuple[int, int]] = []
    problems: list[Problem] = []
    rejected: list[dict[str, Any]] = []
    for (record, rel, _), (reason, state) in zip(rows, checks, strict=True):
        if reason is None:
            kept.append(record)
            states.append(state)
        elif spec.on_bad_audio == "skip":
            rejected.append(
                {
                    "utt_id": record["utt_id"],
                    "audio": record["audio"],
                    "line": record["line"],
                    "stage": "meta",
                    "reason": reason,
                }
            )
        else:
            problems.append(Problem(fname, record["line"], f"{rel}: {reason}"))
    return kept, states, problems, rejected


class _RowChecker:
    """Checks the data rows of a meta file one by one, collecting their problems (in line
    order) and remembering the audio files and utterance ids seen."""

    def __init__(
        self,
        spec: CorpusSpec,
        fname: str,
        n_fields: int,
        audio_idx: int,
        col_idx: dict[str, int],
    ) -> None:
        self.spec, self.fname, self.n_fields = spec, fname, n_fields
        self.audio_idx, self.col_idx = audio_idx, col_idx
        self.folder = Path(spec.meta).parent
        self.root = _CorpusFolder(self.folder)
        self.resolve = _Resolver(self.folder)
        self.cwd = _working_folder()
        self.seen_paths: dict[str, int] = {}
        self.seen_ids: dict[str, int] = {}
        self.problems: list[Problem] = []

    def _problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.fname, line, message))

    def _fields(self, line: int, cells: list[str]) -> list[str] | None:
        """The stripped fields, trailing empty ones dropped; None (a problem) if their number
        is not the header's."""
        cells = [c.strip() for c in cells]
        while len(cells) > self.n_fields and cells[-1] == "":  # trailing tabs
            cells.pop()
        if len(cells) == self.n_fields:
            return cells
        hint = ""
        if len(cells) == 1 and len(cells[0].split()) >= self.n_fields:
            hint = " (no tab on this line: separate the fields with tabs, not spaces)"
        self._problem(line, f"{len(cells)} fields, the header has {self.n_fields}{hint}")
        return None

    def _audio(self, line: int, rel: str) -> tuple[AudioLocation, str] | None:
        """Where the audio path ``rel`` points and the file it names (links resolved); None
        (a problem) if it names no file, leaves the corpus folder or repeats a file."""
        if not rel:
            self._problem(line, "empty audio path")
            return None
        where = _locate(rel, self.root)
        if where.inside == "" or where.written.rpartition("/")[2] in ("", ".", ".."):
            self._problem(line, f"audio path {rel!r} does not name a file")
            return None
        if where.outside and not self.spec.allow_outside_paths:
            self._problem(line, _outside_problem(rel, where, self.folder, self.spec.name))
            return None
        key = self.resolve(where.written)
        if key in self.seen_paths:
            first = self.seen_paths[key]
            self._problem(line, f"duplicate audio path {rel!r} (first on line {first})")
            return None
        self.seen_paths[key] = line
        return where, key

    def _utt_id(self, line: int, utt_id: str) -> bool:
        """Whether the utterance id is new and not like an augmented copy's (else a problem)."""
        if utt_id in self.seen_ids:
            self._problem(
                line,
                f"utterance id {utt_id!r} also on line {self.seen_ids[utt_id]} (an id is the "
                "path without its extension); rename one of the two files",
            )
            return False
        self.seen_ids[utt_id] = line
        if _AUGMENTED_ID.search(utt_id):
            self._problem(
                line,
                f"utterance id {utt_id!r} ends like an augmented copy's ('#aug<k>'); "
                "rename the file",
            )
            return False
        return True

    def check(self, line: int, cells: list[str]) -> tuple[dict[str, Any], str, str] | None:
        """(record, audio path as written, resolved audio path) of a valid row, else None (its
        problems are added). The audio file itself is not checked."""
        fields = self._fields(line, cells)
        if fields is None:
            return None
        rel = fields[self.audio_idx]
        found = self._audio(line, rel)
        if found is None or not self._utt_id(line, found[0].utt_id):
            return None
        where, key = found
        labels, problems = _labels(self.spec, fields, self.col_idx, (self.fname, line))
        if problems:
            self.problems.extend(problems)
            return None
        record: dict[str, Any] = {
            "utt_id": where.utt_id,
            "audio": _shown(key, self.cwd),
            "shard": shard_of(where.utt_id, self.spec.n_shards),
            "line": line,
            **labels,
        }
        return record, rel, key


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic garbage collection paused, then restored: a million rows make millions of small
    containers, none in a cycle, and the collections they trigger would cost a third of the
    time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_meta(spec: CorpusSpec, check_files: bool = True, workers: int = 1) -> MetaResult:
    """Read and validate ``spec.meta``; raise :class:`MetaError` listing every problem
    (``file:line: what``, in line order).

    Audio paths outside the corpus folder are problems unless ``spec.allow_outside_paths``;
    utterance ids follow :func:`audio_location` (the module docstring has the rule). Audio files
    that are missing, unreadable, empty or folders are problems when ``on_bad_audio`` is
    ``fail``; with ``skip`` they are left out and listed in ``rejected``. Their headers are
    checked as the rows are, in ``workers`` processes when there are many
    (:class:`deepser.corpus.probe.AudioChecks`); ``states`` holds each usable file's state.
    """
    with _gc_paused():
        return _read_meta(spec, check_files, workers)


def _read_meta(spec: CorpusSpec, check_files: bool, workers: int) -> MetaResult:
    """:func:`read_meta`'s work."""
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

    checker = _RowChecker(spec, fname, len(header), audio_idx, col_idx)
    valid: list[tuple[dict[str, Any], str, str]] = []
    # the audio headers are checked in worker processes while the next rows are validated
    with AudioChecks(workers if check_files else 1, len(data_rows)) as checks:
        for line, cells in data_rows:
            row = checker.check(line, cells)
            if row is not None:
                valid.append(row)
                if check_files:
                    checks.add(row[2])
        audio = checks.results() if check_files else None
    problems = checker.problems
    records = [record for record, _, _ in valid]
    rejected: list[dict[str, Any]] = []
    states = None
    if audio is not None:
        records, states, bad_audio, rejected = _keep_usable_audio(spec, fname, valid, audio)
        problems = sorted(problems + bad_audio, key=attrgetter("line"))  # stable: line order
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
            list(col.classes) if col.classes else sorted(table[col.name].unique(), key=natural_key)
        )
        vocab[col.name] = {"type": "categorical", "classes": classes}
    return MetaResult(table=table, vocab=vocab, rejected=rejected, states=states)


def read_table(
    path: str | Path, vocab: Mapping[str, Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """Read a normalised meta TSV: labels stay strings, continuous ones (per ``vocab``) floats."""
    table = normalise_types(read_tsv(path), vocab)
    table["line"] = table["line"].astype(int)
    return table


def normalise_types(
    table: pd.DataFrame, vocab: Mapping[str, Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """A normalised meta table read as text (or a batch of it): ``shard`` an int, continuous
    labels (per ``vocab``) floats."""
    table["shard"] = table["shard"].astype(int)
    for name, entry in (vocab or {}).items():
        if entry["type"] == "continuous":
            table[name] = table[name].astype(float)
    return table
