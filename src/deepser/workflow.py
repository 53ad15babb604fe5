"""Helpers for the thin Snakemake scripts: logging into the rule's log file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any


@contextmanager
def rule_log(snakemake: Any) -> Iterator[logging.Logger]:
    """Send stdout, stderr, logging and progress bars of a rule's script to its ``log:`` file.

    On failure the error is written to the log and re-raised, so it is also shown on the console.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    path = snakemake.log[0]
    with (
        open(path, "w", buffering=1, encoding="utf-8") as fh,
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
        except Exception as exc:
            logger.error("%s: %s", type(exc).__name__, exc)
            print(f"[{snakemake.rule}] {type(exc).__name__}: {exc}", file=sys.__stderr__)
            raise
