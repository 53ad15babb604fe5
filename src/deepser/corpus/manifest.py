"""Shard manifests: what a shard's jobs read, as one small file instead of its audio files.

The meta stage writes one manifest per shard (``shard-<k>.tsv``: ``utt_id``, ``audio``,
``size``, ``mtime_ns``). The shard's jobs (gain statistics, feature extraction) take the
manifest as their input instead of the audio files themselves, so the workflow examines one
file per shard, not one per utterance, each time it plans (a million audio files took a minute).

The re-run semantics stay those of content: a changed or replaced audio file re-runs exactly
its shard, a ``touch`` re-runs nothing. :func:`refresh_manifest` (called while the workflow is
planned) compares each file's size and modification time with its manifest entry; for a file
that differs it decides whether its content is still the one the features were extracted from
(the BLAKE2b digest recorded in a feature shard, see :func:`recorded_sources`):

- the same content (a ``touch``, a copy of the same bytes): the entry is kept, or put back to
  the one the extraction read, and the file's new state is remembered in
  ``.shard-<k>.seen.json`` so it is not hashed again;
- other content (or no record of it): the entry becomes the file's new state; the manifest is
  rewritten and its shard's jobs run again.

A manifest's content is thus a function of the audio's content relative to what was extracted,
so the workflow's checksum of it decides like a checksum of the audio would, for audio of any
size (Snakemake checksums only inputs under 1 MB). A missing or unreadable manifest is rebuilt
from the shard's rows.

Only the manifests of shards that a shard job has written an output of are compared with their
files (:func:`shards_with_outputs`): a shard with nothing extracted runs whatever its files'
states are, so its manifest, as the meta stage wrote it, only needs to read as one
(:func:`manifest_is_whole`). A fresh corpus of a million files is thus planned without a
million ``stat`` calls.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deepser.files import atomic_path

MANIFEST_COLUMNS = ("utt_id", "audio", "size", "mtime_ns")
MISSING = (-1, 0)  # the state of a file that cannot be found


@dataclass(frozen=True)
class Entry:
    """One utterance of a manifest: its id, audio path and the file's state (size, mtime)."""

    utt_id: str
    audio: str
    size: int
    mtime_ns: int

    @property
    def state(self) -> tuple[int, int]:
        return self.size, self.mtime_ns


@dataclass(frozen=True)
class Source:
    """An audio file as a feature shard's extraction read it: content digest and the state its
    manifest entry gave."""

    digest: str
    size: int
    mtime_ns: int


def manifest_name(shard: int | str) -> str:
    return f"shard-{shard}.tsv"


def file_state(path: str | Path) -> tuple[int, int]:
    """(size, modification time in ns) of a file; :data:`MISSING` when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    return st.st_size, st.st_mtime_ns


def file_digest(path: str | Path) -> str:
    """BLAKE2b (128-bit) hex digest of a file's bytes; "" when it cannot be read."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def write_manifest(path: str | Path, entries: Iterable[Entry]) -> None:
    """Write a manifest atomically (tab-separated, a header line)."""
    _write_rows(path, ((e.utt_id, e.audio, e.size, e.mtime_ns) for e in entries))


_QUOTED = ("\t", '"', "\n", "\r")  # characters the csv module would quote a field for


def _write_rows(path: str | Path, rows: Iterable[tuple[str, str, int, int]]) -> None:
    """Write a manifest of (utt_id, audio, size, mtime_ns) rows atomically: plain lines when no
    name needs quoting (3 times faster than the csv writer, which writes the same), else
    through the csv writer."""
    rows = list(rows)
    names = "".join(f"{utt_id}{audio}" for utt_id, audio, _, _ in rows)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        if any(c in names for c in _QUOTED):
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows(rows)
            return
        f.write("\t".join(MANIFEST_COLUMNS) + "\n")
        f.write("".join(f"{u}\t{a}\t{s}\t{m}\n" for u, a, s, m in rows))


def read_manifest(path: str | Path) -> list[Entry]:
    """The entries of a manifest; :class:`ValueError` when it is not one."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        if tuple(next(reader, ())) != MANIFEST_COLUMNS:
            raise ValueError(f"{path}: not a shard manifest (header {MANIFEST_COLUMNS})")
        return [Entry(u, a, int(s), int(m)) for u, a, s, m in reader]


def shard_rows(path: str | Path) -> list[tuple[str, str]]:
    """(utt_id, audio path) of every utterance of a manifest: the rows a shard's job reads."""
    return [(e.utt_id, e.audio) for e in read_manifest(path)]


def write_manifests(
    folder: str | Path,
    rows: Sequence[tuple[str, str, int]],
    n_shards: int,
    states: Sequence[tuple[int, int]] | None = None,
) -> None:
    """One manifest per shard (empty shards too) from (utt_id, audio, shard) rows, with each
    file's state: ``states`` (one per row, as the meta check's ``stat`` saw them) or, without,
    a ``stat`` of each file now."""
    per_shard: list[list[tuple[str, str, int, int]]] = [[] for _ in range(n_shards)]
    if states is None:
        states = [file_state(audio) for _, audio, _ in rows]
    for (utt_id, audio, shard), (size, mtime_ns) in zip(rows, states, strict=True):
        per_shard[int(shard)].append((utt_id, audio, size, mtime_ns))
    for k, entries in enumerate(per_shard):
        _write_rows(Path(folder) / manifest_name(k), entries)


def _seen_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.seen.json")


def _read_seen(path: Path) -> dict[str, list[int]]:
    try:
        seen = json.loads(_seen_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return seen if isinstance(seen, dict) else {}


def _canonical(audio: str, state: tuple[int, int], sources: Sequence[Source]) -> tuple[int, int]:
    """The manifest state of ``audio``, now in ``state`` and differing from its entry: the
    recorded one when its content is one a feature shard was extracted from, else ``state``.
    The digest decides, not the size: a recorded state is the manifest's at extraction, which
    may predate an edit made before the shard was extracted (see :func:`manifest_is_whole`)."""
    if state != MISSING and sources:
        digest = file_digest(audio)
        for source in sources:
            if source.digest == digest:
                return source.size, source.mtime_ns
    return state


def manifest_is_whole(path: str | Path) -> bool:
    """Whether a manifest reads as one (its header, and a complete last row), looking at its
    first and last lines only: what a shard with nothing extracted yet needs, as its jobs run
    whatever its files' states are (a damaged one is rebuilt by :func:`refresh_manifest`)."""
    try:
        with open(path, "rb") as f:
            if f.readline().decode("utf-8").rstrip("\n").split("\t") != list(MANIFEST_COLUMNS):
                return False
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 65536))
            tail = f.read().decode("utf-8", errors="replace")
    except (OSError, UnicodeDecodeError):
        return False
    if not tail.endswith("\n"):
        return False
    last = next(csv.reader([tail[:-1].rsplit("\n", 1)[-1]], delimiter="\t"), [])
    if last == list(MANIFEST_COLUMNS):  # an empty shard
        return True
    return len(last) == len(MANIFEST_COLUMNS) and all(v.lstrip("-").isdigit() for v in last[2:])


def shards_with_outputs(folders: Iterable[str | Path]) -> frozenset[int]:
    """The shard numbers ``k`` of the files ``shard-<k>.<ext>`` in ``folders`` (missing ones
    skipped): the shards that a shard job has already written an output of."""
    found: set[int] = set()
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    stem, dot, _ = entry.name.partition(".")
                    number = stem.removeprefix("shard-")
                    if dot and number != stem and number.isdigit():
                        found.add(int(number))
        except OSError:
            continue
    return frozenset(found)


def _all_unchanged(path: Path) -> bool:
    """Whether every file of a manifest is in its entry's state: the common case, checked
    without building entries (a million files are stat'ed while the workflow plans)."""
    stat = os.stat
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if f.readline().rstrip("\n").split("\t") != list(MANIFEST_COLUMNS):
                return False
            for line in f:
                _, audio, size, mtime_ns = line.rstrip("\n").split("\t")
                st = stat(audio)
                if st.st_size != int(size) or st.st_mtime_ns != int(mtime_ns):
                    return False
    except (OSError, ValueError):  # unreadable, a missing file, ...: the careful path decides
        return False
    return True


def unchanged_manifests(paths: Sequence[str | Path], workers: int = 1) -> list[bool]:
    """For each manifest, whether every file of it is in its entry's state (the fast check of
    :func:`refresh_manifest`), checked in ``workers`` child processes: see
    :class:`UnchangedCheck`."""
    return UnchangedCheck(paths, workers).results()


class UnchangedCheck:
    """:func:`unchanged_manifests`'s check, started in ``workers`` child processes (threads
    would contend for the interpreter lock) while the caller goes on: ``check[i]`` tells
    whether manifest ``i`` is unchanged, waiting only until the child that has it has answered
    it (each child answers its manifests one at a time, in order), so the caller can use the
    first answers while the children work on. Fewer than 8 manifests are checked in this
    process when asked. A manifest that a child did not answer (it failed) or that was
    rewritten since the check started is checked again in this process."""

    def __init__(self, paths: Sequence[str | Path], workers: int = 1) -> None:
        self._names = [str(p) for p in paths]
        self._known: dict[int, bool] = {}
        self._procs: list[subprocess.Popen[bytes] | None] = []
        self._answers: list[list[bool]] = []
        if workers < 1 or len(self._names) < max(8, workers):
            return
        self._started = [file_state(p) for p in self._names]
        root = str(Path(__file__).resolve().parents[2])  # the folder that holds the package
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from deepser.corpus.manifest import _report_unchanged; _report_unchanged()"
        )
        for k in range(workers):
            proc = subprocess.Popen(
                [sys.executable, "-c", code, root],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            proc.stdin.write(("\n".join(self._names[k::workers]) + "\n").encode())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
            self._procs.append(proc)
            self._answers.append([])

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, i: int) -> bool:
        if i not in self._known:
            answer = self._child_answer(i)
            name = self._names[i]
            if answer is None or file_state(name) != self._started[i]:
                answer = _all_unchanged(Path(name))
            self._known[i] = answer
        return self._known[i]

    def results(self) -> list[bool]:
        """Every manifest's answer, in order."""
        return [self[i] for i in range(len(self))]

    def _child_answer(self, i: int) -> bool | None:
        """The answer of the child that checks manifest ``i`` (None: there is none)."""
        if not self._procs:
            return None
        child, position = i % len(self._procs), i // len(self._procs)
        answers = self._answers[child]
        while len(answers) <= position and (proc := self._procs[child]) is not None:
            out = os.read(proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
            if out.strip(b"01") or not out:  # the end, or not an answer: nothing more
                proc.stdout.close()  # type: ignore[union-attr]
                proc.kill()
                proc.wait()
                self._procs[child] = None
                break
            answers += [c == ord("1") for c in out]
        return answers[position] if position < len(answers) else None


def _report_unchanged() -> None:
    """A child of :class:`UnchangedCheck`: manifest paths on stdin, 1 or 0 out as each one is
    checked."""
    for path in sys.stdin.read().split("\n"):
        if path:
            sys.stdout.write("1" if _all_unchanged(Path(path)) else "0")
            sys.stdout.flush()


def refresh_manifest(
    path: str | Path,
    recorded: Callable[[], Mapping[str, Sequence[Source]]],
    rows: Callable[[], Sequence[tuple[str, str]]],
) -> bool:
    """Bring a shard's manifest up to date with its audio files (see the module docstring);
    return whether it was rewritten (its shard's jobs run again).

    ``recorded()`` gives the sources the shard's features were extracted from (called only
    when a file's state differs from its entry); ``rows()`` the shard's (utt_id, audio) rows,
    to rebuild a manifest that is missing or unreadable."""
    path = Path(path)
    if _all_unchanged(path):
        return False
    try:
        old: list[Entry] | None = read_manifest(path)
    except (OSError, ValueError, UnicodeDecodeError):
        old = None
    if old is None:
        pairs = list(rows())
        entries: list[Entry | None] = [None] * len(pairs)
        seen: dict[str, list[int]] = {}
    else:
        entries, pairs, seen = list(old), [(e.utt_id, e.audio) for e in old], _read_seen(path)
    new_seen: dict[str, list[int]] = {}
    sources: Mapping[str, Sequence[Source]] | None = None
    fresh: list[Entry] = []
    for entry, (utt_id, audio) in zip(entries, pairs, strict=True):
        state = file_state(audio)
        if entry is not None and (
            entry.state == state or seen.get(utt_id) == [*entry.state, *state]
        ):
            fresh.append(entry)
        else:
            if sources is None:
                sources = recorded()
            entry = Entry(utt_id, audio, *_canonical(audio, state, sources.get(utt_id, ())))
            fresh.append(entry)
        if entry.state != state:  # the same content in a new state (a touch): remember it
            new_seen[utt_id] = [*entry.state, *state]
    changed = old is None or fresh != old
    try:
        if changed:
            write_manifest(path, fresh)
        if new_seen != seen:
            with atomic_path(_seen_path(path)) as tmp:
                tmp.write_text(json.dumps(new_seen), encoding="utf-8")
    except OSError:  # another job planning the same shard wrote it: the same content
        pass
    return changed


def recorded_sources(shards: Iterable[str | Path]) -> dict[str, list[Source]]:
    """The sources recorded in feature shards (:func:`read_sources`), merged per utterance."""
    merged: dict[str, list[Source]] = {}
    for shard in shards:
        for utt_id, source in read_sources(shard).items():
            merged.setdefault(utt_id, []).append(source)
    return merged


def read_sources(path: str | Path) -> dict[str, Source]:
    """The audio sources a feature shard recorded (``source_*`` datasets); {} when it has none
    or cannot be read (a damaged shard is named by the stages that read its features)."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            if "source_utt_id" not in h5:
                return {}
            ids = h5["source_utt_id"].asstr()[()]
            digests = h5["source_digest"].asstr()[()]
            sizes = h5["source_size"][()]
            mtimes = h5["source_mtime_ns"][()]
    except Exception:  # noqa: BLE001 (any damage: no record, the shard is re-extracted)
        return {}
    rows = zip(ids, digests, sizes, mtimes, strict=False)
    return {u: Source(d, int(s), int(m)) for u, d, s, m in rows}
