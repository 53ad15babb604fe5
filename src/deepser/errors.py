"""deepser's errors: one base, :class:`DeepserError`, for every problem a user can fix.

Each message says what is wrong and where (file, line, option) in one line or a short list; the
command-line tools print it without a traceback (exit status 1, or 2 for :class:`UsageError`).
The domain classes also derive from the built-in type they replace (``ValueError`` or
``RuntimeError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DeepserError(Exception):
    """A problem the user can fix: bad input, bad option, unusable file."""


class UsageError(DeepserError, ValueError):
    """A bad command-line value (exit status 2, like argparse's own errors)."""


@dataclass(frozen=True)
class Problem:
    """One validation finding, located in a meta file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file  # 0: the whole file
        return f"{where}: {self.message}"


class MetaError(DeepserError, ValueError):
    """A meta file with problems; the message lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the meta file:\n{lines}")


class AudioError(DeepserError, ValueError):
    """An audio file that cannot be used: unreadable, empty or too short."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class FeatureError(DeepserError, ValueError):
    """The audio cannot give this feature (e.g. shorter than one frame)."""


class BadAudioError(DeepserError, RuntimeError):
    """Audio files that cannot be used, with ``on_bad_audio: fail``; names every one."""

    def __init__(self, bad: list[dict[str, Any]]) -> None:
        self.bad = bad
        lines = "\n".join(f"  {b['audio']}: {b['reason']}" for b in bad)
        super().__init__(
            f"{len(bad)} bad audio file(s) (set on_bad_audio: skip to leave them out):\n{lines}"
        )


class BundleError(DeepserError, ValueError):
    """A bundle that cannot be used (missing files, unknown format version)."""


class RecognizerError(DeepserError, RuntimeError):
    """A problem of a recognition run: bad input, no device, unusable bundle."""


class SpecError(DeepserError, ValueError):
    """A feature preset, task or gain given to the legacy tools that cannot be used."""


class LegacyModelError(DeepserError, ValueError):
    """A Keras-2 model file that cannot be rebuilt (the message names the layer and why)."""


class LegacyDatabaseError(DeepserError, ValueError):
    """An original database that cannot be converted as asked."""


class DamagedFileError(DeepserError, ValueError):
    """A file that cannot be read as what it should be (a feature shard, a database, ...):
    missing, empty, not HDF5, truncated or damaged, without a dataset or attribute it needs, or
    inconsistent. The message names the file, says what is wrong and, for a file the workflow
    writes, how to recover."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


def rerun_recovery(path: str | Path | Sequence[str | Path], what: str) -> str:
    """The recovery of a file the workflow writes: delete it (or ``path``'s files, the outputs of
    its job, deleted together), re-run; ``what`` the workflow then does (e.g. "re-extracts
    exactly this shard")."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    them = "it" if len(paths) == 1 else "it with the other files its job writes"
    return (
        f"To recover, delete {them} and re-run the workflow, which {what}: "
        f"rm {' '.join(str(p) for p in paths)} then snakemake --cores all (with your run's "
        "other options)"
    )
