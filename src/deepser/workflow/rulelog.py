"""The log of a rule's job: everything the job prints goes to its ``log:`` file.

Python's stdout, stderr, logging and progress bars, and also what C libraries write to the file
descriptors 1 and 2 (TensorFlow's start-up notices), so the console of a run shows Snakemake's
progress. A failed job writes its traceback and then its message, under :data:`ERROR_MARK`,
to the log and exits with status 1 without printing the traceback: the workflow's logger plugin
(``snakemake_logger_plugin_deepser``) shows the message with the rule, wildcards and log file in
one block (:func:`job_error_message` reads it back). Run without that plugin, the job also prints
its message on the console in one line. After the job, the library modules it loaded are checked
against its code inputs (:mod:`deepser.workflow.code`).
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import deepser
from deepser.errors import DeepserError
from deepser.runtime import redirect_fds
from deepser.workflow.code import code_files, untracked_modules

# set to 1 (the test suite does) to fail a job that ran library code its rule does not track
STRICT_CODE_INPUTS = "DEEPSER_STRICT_CODE_INPUTS"
# "0": the logger plugin shows failed jobs' messages, the jobs print nothing on the console
CONSOLE_ERRORS = "DEEPSER_CONSOLE_ERRORS"
# the line above a failed job's message, the last thing in its log
ERROR_MARK = "---- the job's error ----"


def error_text(exc: BaseException) -> str:
    """A failed job's message: a user error's own text (it names the file, line or option), or
    the type and text of an unexpected one, which points to the traceback above it."""
    if isinstance(exc, DeepserError):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (unexpected: the traceback is in the log)"


def job_error_message(log: str | Path, max_lines: int = 40) -> str | None:
    """The message a failed job left at the end of its log (None: none there, or no log)."""
    try:
        with open(log, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    _, mark, message = text.rpartition(ERROR_MARK + "\n")
    if not mark:
        return None
    lines = message.rstrip("\n").splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines in the log)"]
    return "\n".join(lines)


def _check_code_inputs(snakemake: Any, logger: logging.Logger) -> None:
    code = getattr(snakemake.input, "code", None) or []
    code = [code] if isinstance(code, str) else list(code)  # one file (a code stamp) or several
    if not code:
        return
    root = Path(deepser.__file__).parent
    missing = untracked_modules(root, code_files(code, root))
    if not missing:
        logger.info("code inputs: every library module this job ran is an input of its rule")
        return
    message = (
        f"library modules ran but are not code inputs of rule {snakemake.rule} (edits to them "
        f"would not re-run it): {', '.join(missing)}"
    )
    if os.environ.get(STRICT_CODE_INPUTS) == "1":
        raise RuntimeError(message)
    logger.warning("%s", message)


@contextmanager
def rule_log(snakemake: Any) -> Iterator[logging.Logger]:
    """Send everything the block prints to the rule's ``log:`` file. On failure write the
    traceback and the message (under :data:`ERROR_MARK`) there, print the message on the console
    unless the logger plugin does, and exit with status 1 (``SystemExit``: no traceback)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    path = snakemake.log[0]
    with (
        open(path, "w", buffering=1, encoding="utf-8") as fh,
        redirect_fds(fh.fileno(), (1, 2)) as originals,
        redirect_stderr(fh),
        redirect_stdout(fh),
    ):
        logging.basicConfig(
            stream=fh,
            level=logging.INFO,
            force=True,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        logger = logging.getLogger(f"deepser.rule.{snakemake.rule}")
        logger.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards.items()))
        try:
            yield logger
            _check_code_inputs(snakemake, logger)
        except Exception as exc:
            message = error_text(exc)
            logger.error("the job failed:\n%s", "".join(traceback.format_exception(exc)))
            fh.write(f"{ERROR_MARK}\n{message}\n")
            fh.flush()
            if os.environ.get(CONSOLE_ERRORS) != "0":
                os.write(originals[2], f"[{snakemake.rule}] {message}\n".encode())
            failed = 1
        except KeyboardInterrupt:  # Ctrl-C reaches the jobs too: no traceback, a re-run resumes
            logger.error("interrupted (SIGINT)")
            fh.write(f"{ERROR_MARK}\ninterrupted (Ctrl-C); a re-run redoes this job\n")
            fh.flush()
            failed = 130
        else:
            failed = 0
    if failed:
        raise SystemExit(failed)
