"""A failed job on the console: one block (rule, wildcards, the job's message, its log file); the
traceback only in the log. Tests the job side (``rule_log``) in a real subprocess and the
workflow's logger plugin on real log records (the whole chain runs in
``tests/workflow/test_torture_workflow.py``)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from snakemake_interface_logger_plugins.common import LogEvent

from deepser.workflow.rulelog import ERROR_MARK, error_text, job_error_message
from deepser.workflow.schema import load_schema, validate_config
from snakemake_logger_plugin_deepser import JobFormatter

from ..helpers import REPO

JOB = """
import types
from deepser.workflow.rulelog import rule_log
from deepser.errors import MetaError, Problem

sm = types.SimpleNamespace(log=[{log!r}], rule="prepare_meta", wildcards={{"corpus": "demo"}})
sm.input = types.SimpleNamespace()
with rule_log(sm) as log:
    log.info("working")
    print("printed by the job")
    {fail}
print("not reached")
"""


def run_job(
    tmp_path: Path, fail: str, console: str | None = None
) -> tuple[Path, subprocess.CompletedProcess]:
    log = tmp_path / "job.log"
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB).format(log=str(log), fail=fail))
    env = {"PATH": "/usr/bin:/bin"}
    if console is not None:
        env["DEEPSER_CONSOLE_ERRORS"] = console
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )
    return log, proc


def test_a_failed_job_writes_traceback_and_message_to_its_log_only(tmp_path: Path) -> None:
    fail = "raise MetaError([Problem('meta.tsv', 14, 'wav/x.wav: file not found')])"
    log, proc = run_job(tmp_path, fail, console="0")
    assert proc.returncode == 1
    assert proc.stdout == "" and proc.stderr == ""  # nothing on the console: the plugin says it
    text = log.read_text()
    assert "printed by the job" in text and "Traceback" in text and "not reached" not in text
    assert text.rstrip().endswith(
        f"{ERROR_MARK}\n1 problem(s) in the meta file:\n  meta.tsv:14: wav/x.wav: file not found"
    )
    assert job_error_message(log) == (
        "1 problem(s) in the meta file:\n  meta.tsv:14: wav/x.wav: file not found"
    )


def test_without_the_plugin_the_job_prints_its_message_in_one_line(tmp_path: Path) -> None:
    log, proc = run_job(tmp_path, "raise ValueError('bad value 3')")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        "[prepare_meta] ValueError: bad value 3 (unexpected: the traceback is in the log)\n"
    )
    assert "Traceback" in log.read_text()


def test_a_job_that_succeeds_leaves_no_error(tmp_path: Path) -> None:
    log, proc = run_job(tmp_path, "pass")
    assert proc.returncode == 0 and proc.stdout == "not reached\n"  # after the block: console
    assert "printed by the job" in log.read_text() and job_error_message(log) is None
    assert job_error_message(tmp_path / "missing.log") is None


def test_error_text_keeps_user_errors_as_they_are() -> None:
    from deepser.errors import AudioError

    assert error_text(AudioError("a.wav", "unreadable")) == "a.wav: unreadable"
    assert "unexpected" in error_text(KeyError("x"))


def record(event: LogEvent, msg: str = "", **fields) -> logging.LogRecord:
    rec = logging.LogRecord("snakemake", logging.ERROR, __file__, 1, msg, None, None)
    rec.event = event
    rec.__dict__.update(fields)
    return rec


def job_fields(log: Path, **extra) -> dict:
    base = {
        "rule_name": "extract_features",
        "jobid": 7,
        "input": ["results/corpora/c/meta.tsv", "/repo/scripts/extract_features.py"],
        "output": ["results/corpora/c/features/logmel/shard-1.h5"],
        "log": [str(log)],
        "wildcards": {"corpus": "c", "featureset": "logmel", "shard": "1"},
        "local": False,
        "is_checkpoint": False,
        "benchmark": None,
        "reason": "Missing output files",
        "priority": 0,
        "threads": 1,
        "resources": {},
        "rule_msg": None,
        "indent": False,
        "conda_env": None,
        "shellcmd": None,
        "aux": {},
    }
    return {**base, **extra}


def test_the_plugin_prints_one_block_per_failed_job(tmp_path: Path) -> None:
    log = tmp_path / "shard-1.log"
    log.write_text(f"Traceback ...\nOSError: x\n{ERROR_MARK}\nshard-1.h5: truncated\n")
    fmt = JobFormatter(set(), False)
    info = fmt.format(record(LogEvent.JOB_INFO, **job_fields(log)))
    assert "input: results/corpora/c/meta.tsv (+ 1 code file)" in info
    assert "scripts/extract_features.py" not in info
    block = fmt.format(record(LogEvent.JOB_ERROR, **job_fields(log)))
    lines = block.splitlines()[1:]
    assert lines == [
        "Error in rule extract_features (corpus=c, featureset=logmel, shard=1):",
        "    shard-1.h5: truncated",
        f"    log: {log}",
    ]


def test_a_job_killed_without_a_message_says_so(tmp_path: Path) -> None:
    log = tmp_path / "killed.log"
    log.write_text("started\n")
    fmt = JobFormatter(set(), False)
    block = fmt.format(record(LogEvent.JOB_ERROR, **job_fields(log, rule_msg="exit code 137")))
    assert "exit code 137" in block and "without a message of its own" in block


def test_the_script_exit_dump_and_empty_shell_command_are_left_out() -> None:
    fmt = JobFormatter(set(), False)
    dump = (
        "RuleException:\nCalledProcessError in file rules/data.smk, line 53:\nCommand 'set -euo "
        "pipefail; python .snakemake/scripts/tmp.prepare_meta.py' returned non-zero exit status 1."
    )
    assert fmt.format(record(LogEvent.ERROR, dump)) == ""
    assert fmt.format(record(LogEvent.SHELLCMD, "Shell command: None", cmd=None)) == ""
    assert fmt.format(record(LogEvent.ERROR, "WorkflowError: something else")) != ""


@pytest.fixture(scope="module")
def schema() -> dict:
    return load_schema(REPO / "config" / "schema.yaml")


def minimal_config() -> dict:
    return {
        "corpora": {"c": {"meta": "m.tsv", "columns": {"emotion": "emotion"}}},
        "feature_sets": {"f": {"type": "logmel", "sample_rate": 16000}},
        "databases": {
            "d": {"corpora": ["c"], "feature_set": "f", "c_len": 5, "max_steps": 10, "tasks": [0]}
        },
    }


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c["feature_sets"]["f"].update(n_mel=40),
            "feature_sets.f: unknown key 'n_mel' (did you mean 'n_mels'?)",
        ),
        (
            lambda c: c["feature_sets"]["f"].update(type="logmell"),
            "feature_sets.f.type: 'logmell' is not one of",
        ),
        (
            lambda c: c["databases"]["d"].update(c_len="five"),
            "databases.d.c_len: 'five' is not of type integer",
        ),
        (lambda c: c["databases"]["d"].pop("tasks"), "databases.d: missing key 'tasks'"),
        (
            lambda c: c["feature_sets"]["f"].update(sample_rate=10),
            "feature_sets.f.sample_rate: 10 must be at least 1000",
        ),
        (lambda c: c.update(experimentz={}), "the config: unknown key 'experimentz'"),
    ],
)
def test_schema_problems_are_one_line_naming_the_key(schema, edit, expected) -> None:
    config = minimal_config()
    edit(config)
    problems = validate_config(config, schema)
    assert any(p.startswith(expected) for p in problems), problems
    assert all("\n" not in p and len(p) < 300 for p in problems)


def test_a_valid_config_gets_the_schema_defaults(schema) -> None:
    config = minimal_config()
    assert validate_config(config, schema) == []
    assert config["corpora"]["c"]["n_shards"] >= 1  # filled in from the schema's default


def test_ctrl_c_in_a_job_leaves_no_traceback_and_says_so_in_the_log(tmp_path: Path) -> None:
    log, proc = run_job(tmp_path, "raise KeyboardInterrupt", console="0")
    assert proc.returncode == 130 and proc.stderr == ""
    assert job_error_message(log) == "interrupted (Ctrl-C); a re-run redoes this job"
    fmt = JobFormatter(set(), False)
    dump = (
        "RuleException:\nCalledProcessError in file rules/features.smk, line 28:\nCommand "
        "'python .snakemake/scripts/tmp.extract_features.py' died with <Signals.SIGINT: 2>."
    )
    assert fmt.format(record(LogEvent.ERROR, dump)) == ""
