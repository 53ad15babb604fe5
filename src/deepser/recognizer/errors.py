"""The recogniser's error type: what went wrong, in one line (the CLI prints it, no traceback)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


class RecognizerError(RuntimeError):
    """A problem the user can fix: bad input, bad option, no device, unusable bundle."""


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr for the block: ALSA/JACK chatter when PortAudio starts, and
    TensorFlow's start-up notices (printed whatever TF_CPP_MIN_LOG_LEVEL says)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture: nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
