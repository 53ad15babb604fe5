"""The optional ``opensmile`` feature type (deepser[opensmile]; skipped without the package)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deepser.features.registry import resolve_spec
from deepser.workflow.config import check_config


def test_spec_names_the_set_and_refuses_an_unknown_one():
    assert resolve_spec({"type": "opensmile", "sample_rate": 16000}) == {
        "type": "opensmile",
        "sample_rate": 16000,
        "opensmile_set": "eGeMAPSv02",
    }
    with pytest.raises(ValueError, match="opensmile_set must be one of"):
        resolve_spec({"type": "opensmile", "sample_rate": 16000, "opensmile_set": "IS09"})


def test_an_opensmile_database_needs_one_window_per_utterance():
    config = {
        "corpora": {"c": {"columns": {"emotion": "emotion"}}},
        "feature_sets": {"egemaps": {"type": "opensmile", "sample_rate": 16000}},
        "databases": {
            "db": {"corpora": ["c"], "feature_set": "egemaps", "c_len": 10, "max_steps": 100,
                   "tasks": ["emotion"], "fold_by": None}
        },
    }  # fmt: skip
    assert any("one vector per utterance" in p for p in check_config(config))


# openSMILE's native library aborts a process in which TensorFlow loaded before it first ran
# (other tests of this session load TensorFlow): the extraction runs in a fresh process, which
# also checks that prepare_extractor keeps it working after TensorFlow loads.
SCRIPT = """
import json, sys
import numpy as np
from deepser.features.registry import extract, prepare_extractor, resolve_spec
spec = resolve_spec({"type": "opensmile", "sample_rate": 16000})
prepare_extractor(spec)
import tensorflow  # noqa: F401  (loaded after openSMILE started, as in the recogniser)
t = np.arange(32000) / 16000
out = [extract((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), spec) for f in (120, 240)]
print(json.dumps([o.tolist() for o in out]))
"""


def test_egemaps_gives_88_finite_values_that_follow_the_voice():
    pytest.importorskip("opensmile", reason="the optional openSMILE package is not installed")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = (np.array(v) for v in json.loads(proc.stdout.strip().splitlines()[-1]))
    assert a.shape == b.shape == (1, 88) and np.isfinite(a).all()
    # the first eGeMAPS value is the mean F0 in semitones from 27.5 Hz: one octave = 12
    assert b[0, 0] - a[0, 0] == pytest.approx(12.0, abs=1.0)
