"""The import walk of ``deepser.workflow.code`` against Python itself: importing every module a
script's rule tracks loads no library module outside that list.

Each script is checked in a fresh child process, forked from one process that has loaded the
heavy third-party libraries (Keras, TensorFlow, librosa, pandas, ...) but no deepser module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deepser.workflow.code import library_modules

from ..helpers import REPO

PACKAGE = REPO / "src" / "deepser"
SCRIPTS = sorted(p for p in (REPO / "scripts").glob("*.py") if p.name != "recognize.py")
FORKS = """
import importlib, json, os, sys
from pathlib import Path

import h5py, keras, librosa, matplotlib, pandas, scipy.signal, sklearn, soundfile, tqdm  # noqa

root = Path(sys.argv[1]).resolve()
assert not [m for m in sys.modules if m.startswith("deepser")]
results = {}
for script, names in json.loads(sys.argv[2]).items():
    read, write = os.pipe()
    if os.fork() == 0:  # the child: import the rule's modules, report what is loaded
        os.close(read)
        for name in names:
            importlib.import_module(name)
        loaded = sorted(
            str(Path(m.__file__).resolve().relative_to(root))
            for m in list(sys.modules.values())
            if getattr(m, "__file__", None) and Path(m.__file__).resolve().is_relative_to(root)
        )
        os.write(write, json.dumps(loaded).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        results[script] = json.loads(fh.read())
    os.wait()
print(json.dumps(results))
"""


def module_names(paths) -> list[str]:
    names = []
    for path in paths:
        parts = ("deepser", *path.relative_to(PACKAGE).with_suffix("").parts)
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    jobs = {s.name: module_names(library_modules(s, PACKAGE)) for s in SCRIPTS}
    proc = subprocess.run(
        [sys.executable, "-c", FORKS, str(PACKAGE), json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "", "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: set(files) for name, files in json.loads(proc.stdout.splitlines()[-1]).items()}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_importing_a_rules_modules_loads_nothing_else(script, loaded) -> None:
    tracked = {p.relative_to(PACKAGE).as_posix() for p in library_modules(script, PACKAGE)}
    assert loaded[script.name], "the child loaded nothing"
    assert loaded[script.name] <= tracked, loaded[script.name] - tracked
