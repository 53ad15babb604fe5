"""The log of a rule's job: everything the job prints goes to its ``log:`` file.

Python's stdout, stderr, logging and progress bars, and also what C libraries write to the file
descriptors 1 and 2 (TensorFlow's start-up notices), so the console of a run shows Snakemake's
progress; a failed job adds its error message (and Snakemake its traceback). After the job, the
library modules it loaded are checked against its code inputs (:mod:`deepser.workflow.code`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import deepser
from deepser.runtime import redirect_fds
from deepser.workflow.code import untracked_modules

# set to 1 (the test suite does) to fail a job that ran library code its rule does not track
STRICT_CODE_INPUTS = "DEEPSER_STRICT_CODE_INPUTS"


def _check_code_inputs(snakemake: Any, logger: logging.Logger) -> None:
    code = list(getattr(snakemake.input, "code", []) or [])
    if not code:
        return
    root = Path(deepser.__file__).parent
    missing = untracked_modules(root, code)
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
    """Send everything the block prints to the rule's ``log:`` file; on failure, also print one
    line with the error on the console, and re-raise."""
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
            logger.error("%s: %s", type(exc).__name__, exc)
            os.write(originals[2], f"[{snakemake.rule}] {type(exc).__name__}: {exc}\n".encode())
            raise
