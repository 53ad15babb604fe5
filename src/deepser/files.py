"""Atomic file writing (nothing half-written is ever taken as complete), JSON and TSV files,
the canonical hash of a config entry, and a check that a file is a Keras model file (without
Keras)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepser.errors import BundleError, DamagedFileError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` only if the block succeeds.

    The temporary is ``.<name>.<pid>.tmp<suffix>`` (``suffix`` for writers that insist on an
    extension, e.g. ``".keras"``). A writer killed with SIGKILL leaves its temporary behind but
    never a file at ``path``; such leftovers of ``path`` are removed by its next writer (each
    output has one writer at a time: one workflow job).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    for stale in stale_temporaries(path):
        if stale != tmp:
            stale.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporaries of :func:`atomic_path` for ``path`` that are still on disk."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix = f".{path.name}."
    pattern = re.compile(rf"{re.escape(prefix)}\d+\.tmp.*")
    with os.scandir(path.parent) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix)]
    return sorted(path.parent / n for n in names if pattern.fullmatch(n))


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Mapping[str, Any] | list, sort_keys: bool = True) -> None:
    """Write JSON (indented; keys sorted unless their order means something) atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; one that is not valid JSON (damaged, truncated) raises
    :class:`~deepser.errors.DamagedFileError` naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DamagedFileError(
            f"{path}: not a valid JSON file ({type(exc).__name__}{where})", path
        ) from None


def write_tsv(path: str | Path, table: pd.DataFrame) -> None:
    """Write a table as tab-separated text with a header, atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def read_tsv(path: str | Path) -> pd.DataFrame:
    """Read a tab-separated table with every column as text (nothing converted)."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def read_tsv_header(path: str | Path) -> list[str]:
    """The column names of a tab-separated table."""
    import pandas as pd

    return list(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, nrows=0).columns)


def read_tsv_batches(
    path: str | Path, rows: int, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """A tab-separated table in batches of ``rows`` rows (only ``columns``, when given), every
    column as text."""
    import pandas as pd

    options = {"sep": "\t", "dtype": str, "keep_default_na": False, "usecols": columns}
    with pd.read_csv(path, chunksize=rows, **options) as reader:
        yield from reader


def config_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 of a canonical JSON form of ``data``."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def check_model_file(path: str | Path) -> None:
    """Check, without Keras, that ``path`` looks like a ``.keras`` file (a zip archive holding
    ``config.json``); else raise :class:`BundleError` "<path>: not a Keras model file (why)"."""
    path = Path(path)

    def bad(reason: str) -> BundleError:
        return BundleError(f"{path}: not a Keras model file ({reason})")

    if not path.exists():
        raise BundleError(f"{path}: file not found")
    if path.is_dir():
        raise bad("it is a folder")
    try:
        if path.stat().st_size == 0:
            raise bad("an empty file, 0 bytes")
        with open(path, "rb") as fh:
            head = fh.read(16)
        if not zipfile.is_zipfile(path):
            raise bad(
                "a truncated or damaged zip archive"
                if head.startswith(b"PK")
                else f"not a zip archive; it starts with {head!r}"
            )
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise bad(f"unreadable: {exc}") from None
    if "config.json" not in names:
        raise bad(f"a zip archive without the Keras config.json; it holds {names[:5]}")
