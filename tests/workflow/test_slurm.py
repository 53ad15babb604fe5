"""The demo workflow on a real SLURM (single node on localhost) with `--profile profiles/slurm`.

Runs where the test can be root and Debian's slurm-wlm and munge are installed (CI: .ci/run
installs them and sets DEEPSER_REQUIRE_SLURM=1, so there it fails instead of skipping). The run
starts with the test session (``tests/conftest.py``): most of its two minutes are spent waiting
for job states, which overlaps the other tests; the test here waits for it and checks it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from ..helpers import CONFIG, REPO, planned, results, run_workflow, workflow_command
from .slurm_cluster import BackgroundRun

pytestmark = pytest.mark.slow

REQUIRED = bool(os.environ.get("DEEPSER_REQUIRE_SLURM"))
# The profile as a cluster user runs it; the test only polls faster and keeps the job logs.
SLURM_ARGS = (
    "--profile",
    str(REPO / "profiles/slurm"),
    # status checks 1, 12, 33 s after a job ended (the plugin adds 10 s each time): most jobs
    # here take 6-10 s from submission to end
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
    "--slurm-keep-successful-logs",
    "--latency-wait",
    "5",
)
# rules marked `localrule: True` (and the target rule) run on the submitting machine
LOCAL_RULES = {
    "all",
    "code_stamp",
    "synthesize_demo",
    "merge_gain",
    "summarize",
    "compare_experiments",
    "fuse",
    "fuse_final",
    "select",
    "select_final",
    "model_card",
    "combination_card",
    "bundle",
}


def start_slurm_run(root: Path) -> BackgroundRun:
    """The reference workflow on a fresh local SLURM, started in the background."""
    run = BackgroundRun(root)
    return run.start(lambda work: workflow_command(work, CONFIG, *SLURM_ARGS), REQUIRED)


@pytest.fixture(scope="module")
def slurm(workflow_on_slurm: BackgroundRun | None) -> BackgroundRun:
    run = workflow_on_slurm
    assert run is not None, "the session did not start the SLURM run"
    if run.reason:
        if REQUIRED:
            pytest.fail(f"DEEPSER_REQUIRE_SLURM is set, but no local SLURM: {run.reason}")
        pytest.skip(f"no local SLURM: {run.reason}")
    return run


def job_blocks(out: str) -> dict[str, dict]:
    """Snakemake's description of each job it ran: jobid -> rule, threads, mem_mb."""
    jobs: dict[str, dict] = {}
    current = None
    for line in out.splitlines():
        if match := re.fullmatch(r"(local)?(?:rule|checkpoint) (\w+):", line):
            current = {"rule": match.group(2), "local": bool(match.group(1)), "threads": 1}
        elif current is not None and line.startswith(" "):
            key, _, value = line.strip().partition(": ")
            if key == "jobid":
                jobs[value] = current
            elif key == "threads":
                current["threads"] = int(value)
            elif key == "resources" and (mem := re.search(r"\bmem_mb=(\d+)", value)):
                current["mem_mb"] = int(mem.group(1))
        else:
            current = None
    return jobs


def rule_of(comment: str) -> str:
    """The rule of a job, from the comment the SLURM executor gives it."""
    match = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment)
    assert match, comment
    return match.group(1)


def test_demo_workflow_runs_through_sbatch_and_equals_a_local_run(
    slurm: BackgroundRun, reference: Path
) -> None:
    proc = slurm.wait()
    tmp_path, seconds = slurm.workdir, slurm.seconds
    assert proc.returncode == 0, proc.stdout[-6000:]
    out = proc.stdout + proc.stderr
    # every remote job was submitted with sbatch and ran to completion under SLURM
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out))
    described = job_blocks(out)
    remote = Counter(described[j]["rule"] for j in submitted)
    assert remote == {
        "prepare_meta": 1,
        "extract_features": 4,  # 2 shards of log-mel, 2 of the classic baseline's functionals
        "build_database": 1,
        "baseline": 1,
        "train_fold": 2,
        "evaluate_fold": 2,
        "train_final": 1,
    }, out[-3000:]
    # the first plan has every job but the shard jobs, which join once the meta is validated
    plan = Counter({r: n for r, n in planned(proc).items() if r not in LOCAL_RULES})
    assert plan == remote - Counter({"extract_features": 4})
    assert all(d["local"] == (d["rule"] in LOCAL_RULES) for d in described.values())
    jobs = {j["JobId"]: j for j in slurm.cluster.jobs()}
    ended = {j["JobId"]: j for j in slurm.cluster.completed_jobs()}
    ctld_log = slurm.cluster.ctld_log.read_text()
    slurm_logs = {p.stem: p for p in (tmp_path / ".snakemake/slurm_logs").rglob("*.log")}
    for job, slurm_id in submitted.items():
        rule = described[job]["rule"]
        assert f"_slurm_rpc_submit_batch_job: JobId={slurm_id} " in ctld_log
        assert ended[slurm_id]["JobState"] == "COMPLETED" and ended[slurm_id]["ExitCode"] == "0:0"
        record = jobs[slurm_id]
        assert record["BatchFlag"] == "1"  # a batch job (sbatch), not an srun
        assert rule_of(record["Comment"]) == rule
        # SLURM was asked for the rule's threads and memory: the training jobs bind TensorFlow
        # to their threads (2), reproducible only for a fixed thread count
        assert record["CPUs/Task"] == str(described[job]["threads"]), (rule, record)
        assert record["MinMemoryNode"] == f"{described[job]['mem_mb']}M", (rule, record)
        log = slurm_logs[slurm_id].read_text()  # the job's own log, written on the node
        assert re.search(rf"^(rule|checkpoint) {rule}:$", log, re.M) and "Finished jobid" in log
        if rule in {"train_fold", "train_final"}:
            assert record["CPUs/Task"] == "2" and "threads: 2" in log

    # the same seed gives the same models and metrics as the local run
    assert results(tmp_path) == results(reference)

    # a second invocation submits nothing
    again = run_workflow(tmp_path, CONFIG, *SLURM_ARGS, "--dry-run")
    assert planned(again) == {}
    print(f"SLURM run: {seconds:.1f} s, {len(submitted)} sbatch jobs")
