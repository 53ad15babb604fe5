"""Test tiers and shared fixtures.

- ``tests/unit``: in-process, no Snakemake subprocess, no training beyond a few steps
  (``make test-fast``);
- ``tests/integration``: in-process training and model round trips;
- ``tests/workflow``: the real workflow through Snakemake (re-runs, interruption, SLURM);
- ``tests/e2e``: the recogniser and the command line on real bundles, live input.

Everything outside ``tests/unit`` is marked ``slow``. Workflow runs in this session fail a job
that ran library code its rule does not track as an input (``DEEPSER_STRICT_CODE_INPUTS``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from .helpers import reference_run

os.environ["DEEPSER_STRICT_CODE_INPUTS"] = "1"  # inherited by every workflow run's jobs

SLOW_TIERS = ("integration", "workflow", "e2e")
SLURM_SELECTED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if Path(item.fspath).parent.name in SLOW_TIERS:
            item.add_marker(pytest.mark.slow)
    config.stash[SLURM_SELECTED] = any(Path(i.fspath).name == "test_slurm.py" for i in items)


@pytest.fixture(scope="session", autouse=True)
def workflow_on_slurm(request, tmp_path_factory):
    """When the SLURM test is selected: the reference workflow started on a local SLURM as the
    session starts, in the background (``tests/workflow/test_slurm.py`` checks it)."""
    if not request.config.stash.get(SLURM_SELECTED, False):
        yield None
        return
    from .workflow.test_slurm import start_slurm_run

    run = start_slurm_run(tmp_path_factory.mktemp("slurm-run"))
    try:
        yield run
    finally:
        run.stop()  # raises if a daemon it started is still running


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """The shared reference workflow (``helpers.CONFIG``), run once per session: demo corpus
    -> log-mel -> database -> 2 folds x 1 experiment -> report and bundle. Read it; copy it
    before changing anything."""
    return reference_run(tmp_path_factory)
