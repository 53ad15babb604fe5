"""What every ``deepser`` command shares: one-line errors and the ``--gain -1,1`` argv fix."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from deepser.errors import UsageError


def error_exit(prog: str, message: object, status: int = 1) -> int:
    """Print ``prog: error: message`` on one line (whitespace collapsed); return ``status``."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return status


def join_negative_gain(argv: Sequence[str]) -> list[str]:
    """``--gain -1,1`` -> ``--gain=-1,1`` (argparse would take ``-1,1`` for an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--gain" and re.match(r"^-([0-9.]|inf|nan)", arg, re.IGNORECASE):
            out[-1] = f"--gain={arg}"
        else:
            out.append(arg)
    return out


def int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (a bad value exits 2 with argparse's message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {low}")
        return value

    return parse


def check_output(out: str | Path, inputs: Sequence[str | Path], folder: bool = False) -> None:
    """Refuse (:class:`UsageError`, exit 2) an output that is not a regular file (a device, a
    fifo) or a folder where a file is written, that is one of the inputs, or, for a ``folder``
    output, an existing folder that is not empty (nothing of another run is overwritten)."""
    out = Path(out)
    if not out.exists():
        return
    for source in inputs:
        if Path(source).exists() and os.path.samefile(out, source):
            raise UsageError(f"--out {out} is the input {source}: choose another path")
    if folder:
        if not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a folder")
        if any(out.iterdir()):
            raise UsageError(
                f"--out {out} is a folder that is not empty: delete it or choose another"
            )
    elif not out.is_file():
        raise UsageError(f"--out {out} exists and is not a regular file: choose another path")
