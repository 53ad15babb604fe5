"""What every ``deepser`` command shares: one-line errors and the ``--gain -1,1`` argv fix."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence


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
