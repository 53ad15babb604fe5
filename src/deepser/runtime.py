"""Process set-up shared by the workflow's jobs and the command-line tools: backend threads and
seeds, and silencing C-level start-up chatter (TensorFlow, ALSA) on stderr."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def configure_backend(threads: int, seed: int, deterministic: bool = True) -> None:
    """Bind the backend's thread pools to ``threads`` and seed everything (call before Keras
    builds anything). TensorFlow also gets deterministic ops."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)
        except RuntimeError:  # already initialised in this process
            pass
        if deterministic:
            tf.config.experimental.enable_op_determinism()
    elif keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(threads)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    keras.utils.set_random_seed(seed)


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def ensure_std_streams() -> None:
    """Make a closed stdout or stderr (``>&-``, ``2>&-``) harmless: /dev/null takes over the
    closed file descriptor 1 or 2 (so no file opened later gets it, and C libraries' writes go
    nowhere), and a missing ``sys.stderr`` becomes /dev/null (``print(file=None)`` would
    write to stdout). ``sys.stdout`` stays None: whoever writes rows must check it."""
    for fd in (1, 2):
        if not _fd_open(fd):
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (for the process)


@contextlib.contextmanager
def redirect_fds(target: int, fds: tuple[int, ...]) -> Iterator[dict[int, int]]:
    """Point the file descriptors ``fds`` at ``target`` for the block, so that what C
    libraries write there goes too; yield copies of the originals ({fd: copy})."""
    for stream in (sys.stdout, sys.stderr):  # None when the process started with it closed
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    try:
        for fd in fds:
            os.dup2(target, fd)
        yield saved
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr for the block: ALSA/JACK chatter when PortAudio starts, and
    TensorFlow's start-up notices (printed whatever TF_CPP_MIN_LOG_LEVEL says)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with redirect_fds(devnull, (fd,)):
            yield
    finally:
        os.close(devnull)


def start_keras_quietly() -> None:
    """Import Keras and run one op with C-level stderr silenced, so TensorFlow's start-up
    notices never reach a user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_stderr():
        import keras

        keras.ops.convert_to_numpy(keras.ops.zeros((1,)) + 1)
