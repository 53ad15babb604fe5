"""A feature shard damaged after it was written: the next run's failure names the shard and
the recovery, and following that recovery (delete it, re-run) re-extracts exactly that shard
and ends with a good database."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from deepser.database.store import read_info
from deepser.features.shards import FeatureShard

from ..helpers import demo_workflow_config, planned, planned_wildcards, run_workflow

pytestmark = pytest.mark.slow

CONFIG = demo_workflow_config(
    seed=1,
    n_speakers=3,
    utterances_per_emotion=1,
    n_shards=2,
    max_steps=100,
    n_folds=None,
    experiments={"exp": {"database": "db", "model": {"architecture": "dnn"}}},
)
DB = "results/db/db.h5"
SHARD = "results/corpora/demo/features/logmel/shard-1.h5"


def test_truncated_shard_is_named_and_its_recovery_works(tmp_path: Path) -> None:
    run_workflow(tmp_path, CONFIG, DB)
    n_rows = read_info(tmp_path / DB).n_rows
    os.truncate(tmp_path / SHARD, 2000)

    failed = run_workflow(tmp_path, CONFIG, DB, check=False)
    assert failed.returncode != 0
    log = (tmp_path / "results/logs/build_database/db.log").read_text()
    console = failed.stdout + failed.stderr
    for text in (log, console):
        assert f"feature shard {SHARD}: truncated (2000 bytes on disk" in text, text[-3000:]
        assert "re-extracts exactly this shard" in text
    recovery = re.search(r"rm (\S+) then (snakemake --cores all)", log)
    assert recovery and recovery.group(1) == SHARD, log[-2000:]

    (tmp_path / recovery.group(1)).unlink()  # the recovery, as the message says
    dry = run_workflow(tmp_path, CONFIG, DB, "--dry-run")
    assert planned(dry) == {"extract_features": 1, "build_database": 1}
    assert [w for w in planned_wildcards(dry) if "shard=" in w] == [
        "corpus=demo, featureset=logmel, shard=1"
    ]
    run_workflow(tmp_path, CONFIG, DB)
    with FeatureShard(tmp_path / SHARD) as shard:
        assert shard.index
    assert read_info(tmp_path / DB).n_rows == n_rows
