"""What every HDF5 file of deepser shares: UTF-8 string datasets, JSON-encoded attributes and a
format version (feature shards: :mod:`deepser.features.shards`; databases:
:mod:`deepser.database.store`), and reading them checked (:class:`H5File`).

Every reader opens its file through :class:`H5File`: a file that is missing, empty, not HDF5,
truncated or damaged, without a dataset it needs or with one of the wrong shape raises
:class:`~deepser.errors.DamagedFileError` (or the reader's own error class) naming the file,
what is wrong and, for a file the workflow writes, how to recover. Reads that come later (a
damaged file may fail only when a chunk is read) go through :meth:`H5File.reading`, which turns
h5py's errors into the same message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from deepser.errors import DamagedFileError, DeepserError

STR = h5py.string_dtype(encoding="utf-8")
FORMAT_VERSION = 1
SIGNATURE = b"\x89HDF\r\n\x1a\n"  # at offset 0, 512, 1024, ... (after a user block)
WRITTEN_WHOLE = (
    "damaged after it was written: deepser renames a file into place only once it is complete, "
    "so no interrupted run leaves one"
)


def write_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Store each value JSON-encoded, plus the format version."""
    for key, value in {**attrs, "format_version": FORMAT_VERSION}.items():
        obj.attrs[key] = json.dumps(value, sort_keys=True)


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """Attributes written by :func:`write_attrs` as Python values."""
    out = {}
    for key, value in obj.attrs.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            out[key] = value
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _is_hdf5(path: Path) -> bool:
    """Whether the HDF5 signature is where the format puts it (0, 512, 1024, 2048, ...)."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            fh.seek(offset)
            head = fh.read(len(SIGNATURE))
            if len(head) < len(SIGNATURE):
                return False
            if head == SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2


def _head(path: Path, n: int = 16) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


@dataclass(frozen=True)
class H5File:
    """A file to read, described for error messages: ``kind`` ("feature shard", "database"),
    ``recover`` (a sentence: how to recover, or None), ``written_whole`` (its writer writes it
    under a temporary name and renames it once complete, so damage happened afterwards) and
    ``error``, the class raised (called with the message)."""

    path: Path
    kind: str = "HDF5 file"
    recover: str | None = None
    written_whole: bool = False
    error: type[Exception] = DamagedFileError

    def fail(self, problem: str) -> Exception:
        """The error for ``problem`` (a phrase: what is wrong with the file)."""
        message = f"{self.kind} {self.path}: {problem}"
        if self.recover:
            message += f". {self.recover}"
        if self.error is DamagedFileError:
            return DamagedFileError(message, self.path)
        return self.error(message)

    def _damage(self, problem: str) -> Exception:
        return self.fail(f"{problem}; {WRITTEN_WHOLE}" if self.written_whole else problem)

    def open(self, chunk_cache: int | None = None) -> h5py.File:
        """Open read-only; every way it can fail raises :meth:`fail`'s error. ``chunk_cache``:
        bytes of HDF5's chunk cache (default 1 MiB; 0 for files read in contiguous slices that
        stay open by the hundred, such as a database build's feature shards)."""
        path = self.path
        if not path.exists():
            raise self.fail("file not found")
        if path.is_dir():
            raise self.fail("is a folder, not a file")
        try:
            size = path.stat().st_size
            if size == 0:
                raise self._damage("empty file (0 bytes)")
            if not _is_hdf5(path):
                raise self.fail(f"not an HDF5 file (it starts with {_head(path)!r})")
            if chunk_cache is None:
                return h5py.File(path, "r")
            return h5py.File(path, "r", rdcc_nbytes=chunk_cache)
        except DeepserError:
            raise
        except OSError as exc:
            text = _one_line(exc)
            truncated = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
            if truncated:
                eof, stored = truncated.groups()
                raise self._damage(
                    f"truncated ({eof} bytes on disk, {stored} when written)"
                ) from None
            raise self._damage(f"cannot be opened ({text})") from None

    @contextmanager
    def opened(self) -> Iterator[h5py.File]:
        """:meth:`open` as a context: the file, closed at the end, its reads checked."""
        h5 = self.open()
        try:
            with self.reading():
                yield h5
        finally:
            h5.close()

    @contextmanager
    def reading(self, what: str = "") -> Iterator[None]:
        """Turn h5py's errors raised inside the block (a damaged chunk, a missing object) into
        :meth:`fail`'s error; ``what``: what the block reads, for the message."""
        try:
            yield
        except DeepserError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            subject = f"reading {what} failed" if what else "reading it failed"
            raise self._damage(f"{subject} ({_one_line(exc)})") from None

    def dataset(
        self,
        h5: h5py.Group,
        name: str,
        ndim: int | Sequence[int] | None = None,
        rows: int | None = None,
    ) -> h5py.Dataset:
        """The dataset ``name``, checked: present, a dataset, ``ndim`` dimensions (one of them),
        ``rows`` long."""
        with self.reading(f"dataset {name!r}"):
            if name not in h5:
                has = ", ".join(sorted(h5.keys())) or "nothing"
                raise self.fail(
                    f"no dataset {name!r} (it holds: {has}); not a complete {self.kind}"
                )
            obj = h5[name]
        if not isinstance(obj, h5py.Dataset):
            raise self.fail(f"{name!r} is a group, not a dataset")
        dims = (ndim,) if isinstance(ndim, int) else ndim
        if dims is not None and obj.ndim not in dims:
            want = " or ".join(str(d) for d in dims)
            raise self.fail(f"dataset {name!r} has shape {obj.shape}, expected {want} dimension(s)")
        if rows is not None and (obj.ndim == 0 or obj.shape[0] != rows):
            raise self.fail(f"dataset {name!r} has shape {obj.shape}, expected {rows} rows")
        return obj

    def attrs(self, h5: h5py.Group, required: Sequence[str] = ()) -> dict[str, Any]:
        """The attributes (:func:`read_attrs`), checked: a format version this deepser reads,
        and every ``required`` key."""
        with self.reading("its attributes"):
            attrs = read_attrs(h5)
        version = attrs.get("format_version")
        if version is None:
            raise self.fail(
                "no format_version attribute (every file deepser writes has one): not written "
                "by deepser"
            )
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise self.fail(
                f"format version {version!r}"
                + (", written by a newer deepser" if newer else "")
                + f" (this deepser reads format {FORMAT_VERSION})"
            )
        missing = [k for k in required if k not in attrs]
        if missing:
            raise self.fail(f"no {', '.join(missing)} attribute(s); not a complete {self.kind}")
        return attrs


def open_h5(
    path: str | Path,
    kind: str = "HDF5 file",
    recover: str | None = None,
    written_whole: bool = False,
) -> h5py.File:
    """Open an HDF5 file read-only, every failure a :class:`DamagedFileError` naming it."""
    return H5File(Path(path), kind, recover, written_whole).open()
