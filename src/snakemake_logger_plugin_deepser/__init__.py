"""Snakemake logger plugin ``deepser`` (``--logger deepser``, set by the workflow profile).

Snakemake's own console output, with three changes that make a failed run readable:

- a failed job is one block: the rule and its wildcards, the job's own error message (read
  from its log, where :func:`deepser.workflow.rulelog.rule_log` puts it under a marker with the
  traceback above it) and the log file; Snakemake's ``CalledProcessError`` dump of the script
  command, which says nothing more, is left out;
- a job's inputs list data files and only count the code files (the rule's script and library
  modules, inputs so that edits re-run it);
- the ``Shell command: None`` line of script rules is left out, and so is the traceback of a
  check the workflow makes on purpose in an input function (a ``WorkflowError`` with its
  message, e.g. folds that cannot be trained).

Everything else (progress, warnings, workflow errors) is printed as Snakemake prints it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from snakemake.logging import (
    ColorizingTextHandler,
    DefaultFilter,
    DefaultFormatter,
    format_wildcards,
    get_event,
    timestamp,
)
from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

from deepser.workflow.rulelog import CONSOLE_ERRORS, job_error_message

CODE_SUFFIXES = (".py", ".smk")


def _is_code(path: str) -> bool:
    return path.endswith(CODE_SUFFIXES)


def _split_code(files: list[str]) -> tuple[list[str], int]:
    data = [f for f in files if not _is_code(f)]
    return data, len(files) - len(data)


class JobFormatter(DefaultFormatter):
    """Snakemake's formatter with compact job blocks (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wildcards: dict[Any, Any] = {}  # jobid -> wildcards (an error record has none)

    def format(self, record: logging.LogRecord) -> str:
        event = get_event(record)
        if event == LogEvent.SHELLCMD and not getattr(record, "cmd", None):
            return ""  # "Shell command: None" of a script rule
        if event == LogEvent.ERROR and _is_script_exit(record):
            return ""  # the job's block says it better
        text = super().format(record)
        if event == LogEvent.ERROR and _is_workflow_check(text):
            text = text.split("\nTraceback:", 1)[0]  # a check's own message: no traceback
        return text

    def _format_job_info(self, msg: dict[str, Any]) -> list[str]:
        self.wildcards[msg.get("jobid")] = msg.get("wildcards")
        data, n_code = _split_code(list(msg.get("input") or []))
        lines = super()._format_job_info({**msg, "input": data})
        if n_code:
            note = f"{n_code} code file{'s' if n_code > 1 else ''}"
            if data:
                lines = [
                    f"{line} (+ {note})" if line.startswith("    input:") else line
                    for line in lines
                ]
            else:
                lines.insert(1, f"    input: {note}")
        return lines

    def format_job_error(self, msg: dict[str, Any]) -> str:
        return "\n".join([timestamp(), *self._format_job_error(msg)])

    def _format_job_error(self, msg: dict[str, Any]) -> list[str]:
        wildcards = format_wildcards(self.wildcards.get(msg.get("jobid")) or {})
        head = f"Error in rule {msg['rule_name']}"
        head += f" ({wildcards})" if wildcards else ""
        lines = [f"{head}:"]
        if msg.get("rule_msg"):  # the executor's message (a cluster job's exit code, ...)
            lines.append(f"    {msg['rule_msg']}")
        logs = list(msg.get("log") or [])
        message = None
        for log in logs:
            message = message or job_error_message(log)
        if message:
            lines += [f"    {line}" for line in message.splitlines()]
        elif msg.get("shellcmd"):
            lines.append(f"    command failed: {msg['shellcmd']}")
        else:
            lines.append(
                "    the job stopped without a message of its own (killed by a signal, out of "
                "memory, or Ctrl-C before it started); a re-run redoes it"
            )
        for log in logs:
            lines.append(f"    log: {log}")
        if not logs:
            data, _ = _split_code(list(msg.get("output") or []))
            lines.append(f"    output: {', '.join(data)}")
        return lines


def _is_script_exit(record: logging.LogRecord) -> bool:
    """The ``RuleException`` of a rule whose script exited non-zero."""
    text = str(record.getMessage())
    return "CalledProcessError" in text and (
        "returned non-zero exit status" in text or "died with <Signals." in text
    )


def _is_workflow_check(text: str) -> bool:
    """A ``WorkflowError`` the workflow raised on purpose in an input function (a check that
    needs the validated meta, such as the fold checks): its message says it all."""
    return text.startswith("InputFunctionException") and "\n  WorkflowError:\n" in text


class LogHandler(LogHandlerBase):
    """Snakemake's console handler with :class:`JobFormatter`."""

    def __post_init__(self) -> None:
        s = self.common_settings
        self._console = ColorizingTextHandler(
            nocolor=s.nocolor, stream=sys.stdout if s.stdout else sys.stderr
        )
        self._console.addFilter(
            DefaultFilter(s.quiet, s.debug_dag, s.verbose, s.dryrun, s.printshellcmds)
        )
        self._console.setFormatter(JobFormatter(s.quiet, s.show_failed_logs))
        # jobs leave their error message to this handler (not their own console line)
        os.environ[CONSOLE_ERRORS] = "0"

    def emit(self, record: logging.LogRecord) -> None:
        self._console.handle(record)

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
