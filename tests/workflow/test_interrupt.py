"""SIGKILL of the whole workflow (Snakemake and its jobs) during feature extraction and during
training: nothing half-written is taken as complete, and the next run (`snakemake --unlock`,
then the profile's rerun-incomplete) ends with the results of an uninterrupted run."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from deepser.features.shards import FeatureShard, write_feature_shard
from deepser.files import stale_temporaries

from ..helpers import CONFIG, REPO, SNAKEMAKE, results, run_workflow

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# the writers themselves, killed mid-write (deterministic: the child says when it is mid-write)

WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from deepser.database.store import DatabaseWriter
    from deepser.features.shards import write_feature_shard

    kind, path = sys.argv[1], sys.argv[2]

    def mid_write():
        print("mid-write", flush=True)
        time.sleep(60)

    if kind == "shard":
        def items():
            for i in range(3):
                yield f"u{i}", np.ones((5, 4), np.float32)
            mid_write()
        write_feature_shard(path, items(), {})
    else:
        writer = DatabaseWriter(path, 4, (2, 1, 3, 4), 1, block_rows=1)
        for i in range(3):
            writer.append(np.ones((2, 1, 3, 4)), np.zeros(1), 2, 0, f"u{i}", "s", "c")
        mid_write()
    """
)


@pytest.mark.parametrize("kind", ["shard", "database"])
def test_killed_h5_writer_leaves_no_file_and_its_leftover_is_cleaned(
    tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "sub" / f"{kind}.h5"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, kind, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "mid-write"
    child.kill()
    child.wait()
    assert not out.exists()  # nothing at the final name ...
    (leftover,) = stale_temporaries(out)  # ... only the half-written temporary
    assert leftover.stat().st_size > 0 and leftover.name.startswith(f".{out.name}.")
    # the next writer of the same file completes it and removes the leftover
    n = write_feature_shard(out, [("a", np.zeros((2, 3), np.float32))], {"k": 1})
    assert n == 1 and stale_temporaries(out) == []
    with FeatureShard(out) as shard:
        assert shard.attrs["k"] == 1 and shard["a"].shape == (2, 3)


# ---------------------------------------------------------------------------------------------
# the real workflow, killed as a whole


def start(work: Path) -> subprocess.Popen:
    """The workflow (local, the default profile) in its own process group."""
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work)]
    cmd += ["--configfile", str(cfg), "--cores", "2"]
    log = open(work / "interrupted-run.log", "w")  # noqa: SIM115 (closed below)
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def wait_for(what: str, found: Callable[[], object], proc: subprocess.Popen, timeout=300):
    """Poll (every 5 ms) until ``found()`` is truthy; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the workflow ended ({proc.returncode}) before {what}")
        time.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}")


def group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # pgrp, not a zombie
            members.append(int(stat.parent.name))
    return members


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every job it runs (they share its process group)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(proc.pid) == [], "a job survived the kill"


def incomplete_outputs(work: Path) -> set[str]:
    """Outputs Snakemake has marked as being written (its jobs were running when killed)."""
    folder = work / ".snakemake/incomplete"
    if not folder.is_dir():
        return set()
    return {base64.b64decode(p.name).decode() for p in folder.iterdir() if p.is_file()}


def assert_complete_or_marked(work: Path) -> set[str]:
    """Every H5 file and model at its final name is complete, unless Snakemake marked it as
    incomplete (then the next run re-makes it). Returns the marked outputs."""
    marked = incomplete_outputs(work)
    for path in (work / "results").rglob("*"):
        rel = str(path.relative_to(work))
        if path.name.startswith(".") or rel in marked or not path.is_file():
            continue
        if path.suffix == ".h5":
            with h5py.File(path, "r") as h5:  # a truncated file does not open
                assert "format_version" in h5.attrs and "feat" in h5, rel
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as zf:
                assert zf.testzip() is None and "model.weights.h5" in zf.namelist(), rel
    return marked


def rerun(work: Path) -> str:
    """What a user does after a killed run: unlock, then run again (the default profile sets
    rerun-incomplete). Returns the run's output."""
    run_workflow(work, CONFIG, "--unlock")
    proc = run_workflow(work, CONFIG)
    return proc.stdout + proc.stderr


def leftovers(work: Path) -> list[Path]:
    return [p for p in (work / "results").rglob(".*") if ".tmp" in p.name]


def assert_same_databases(work: Path, reference: Path) -> None:
    with h5py.File(work / "results/db/db.h5") as a, h5py.File(reference / "results/db/db.h5") as b:
        for name in ("feat", "label", "n_valid", "fold"):
            np.testing.assert_array_equal(a[name][()], b[name][()])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One workflow folder, killed first during feature extraction, then during training."""
    return tmp_path_factory.mktemp("interrupted")


def test_sigkill_during_feature_extraction(work: Path, reference: Path) -> None:
    features = work / "results/corpora/demo/features/logmel"

    def half_written() -> list[Path]:
        return list(features.glob(".shard-*.h5.*.tmp")) if features.is_dir() else []

    for _ in range(3):  # the kill must land while a shard is half-written
        proc = start(work)
        wait_for("a feature shard being written", half_written, proc)
        kill_group(proc)
        if half_written():
            break
        run_workflow(work, CONFIG, "--unlock")  # missed (the shards were complete): again
        shutil.rmtree(features)
    else:
        pytest.fail("3 kills, none while a feature shard was being written")
    marked = assert_complete_or_marked(work)
    for tmp in half_written():
        final = features / f"{tmp.name[1:].split('.h5.')[0]}.h5"
        assert not final.exists(), "a half-written shard has its final name"
        assert str(final.relative_to(work)) in marked  # Snakemake knows its job did not end
    # the next run, up to the database and its baseline (whose functionals shards may have been
    # killed too): the interrupted shards are extracted again
    run_workflow(work, CONFIG, "--unlock")
    output = run_workflow(work, CONFIG, "results/db/db.h5", "results/baselines/db/metrics.json")
    output = output.stdout + output.stderr
    assert "rule extract_features:" in output
    assert leftovers(work) == []  # the killed writer's temporary is gone
    assert_same_databases(work, reference)


def test_sigkill_during_training(work: Path, reference: Path) -> None:
    proc = start(work)
    logs = work / "results/logs/train_fold/exp"

    def training() -> list[int]:
        """Folds whose training has started (split done, model being fit) and not ended."""
        if not logs.is_dir():
            return []
        texts = {int(p.stem.split("-")[1]): p.read_text() for p in logs.glob("fold-*.log")}
        return [k for k, t in texts.items() if "speakers:" in t and "trained:" not in t]

    folds = wait_for("a fold in training", training, proc)
    kill_group(proc)
    marked = assert_complete_or_marked(work)
    for k in folds:
        fold = f"results/experiments/exp/fold-{k}"
        assert {f"{fold}/model.keras", f"{fold}/training.json"} <= marked
        assert not (work / fold / "training.json").exists()
    db_mtime = (work / "results/db/db.h5").stat().st_mtime_ns
    output = rerun(work)
    assert re.search(r"rule train_fold:.*?wildcards: experiment=exp, fold=", output, re.S)
    assert "rule build_database:" not in output  # the database was complete: kept
    assert (work / "results/db/db.h5").stat().st_mtime_ns == db_mtime
    for k in folds:  # the interrupted folds were trained again, from scratch
        assert (work / f"results/experiments/exp/fold-{k}/training.json").is_file()
    assert leftovers(work) == []
    # the same models, predictions and metrics as the uninterrupted run
    assert_same_databases(work, reference)
    assert results(work) == results(reference)
    assert "Nothing to be done" in run_workflow(work, CONFIG, "--dry-run").stdout
