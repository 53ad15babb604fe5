"""The light recogniser: the shared reference run's bundle exported with ``deepser export`` and
recognised without TensorFlow or Keras, in this venv and in a fresh venv holding only
``deepser[runtime]``: the same timeline as the Keras bundle (labels equal, probabilities
within 1e-4)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pandas as pd
import pytest

from ..helpers import REPO, write_wav
from .test_recognizer import utterance_stream

pytestmark = pytest.mark.slow

FORMATS = ("litert", "onnx")
HEAVY = ("keras", "tensorflow", "h5py", "librosa", "pandas", "matplotlib", "sklearn", "snakemake")


def deepser(*args: object, python: str = sys.executable, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "deepser.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def bundle(reference: Path) -> Path:
    return reference / "results/experiments/exp/final"


@pytest.fixture(scope="module")
def exported(reference: Path, bundle: Path, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exported")
    paths = {}
    for fmt in FORMATS:
        done = deepser(
            "export", bundle, "--format", fmt, "--out", out / fmt,
            "--database", reference / "results/db/db.h5",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "largest difference from Keras" in done.stderr
        paths[fmt] = out / fmt
    return paths


@pytest.fixture(scope="module")
def stream(reference: Path, tmp_path_factory) -> Path:
    x, _ = utterance_stream(reference, 6, seed=4)
    path = tmp_path_factory.mktemp("light-stream") / "stream.wav"
    write_wav(path, x, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def keras_timeline(bundle: Path, stream: Path) -> pd.DataFrame:
    done = deepser("recognize", "--model", bundle, "--wav", stream, "-q")
    assert done.returncode == 0, done.stderr
    return pd.read_csv(io.StringIO(done.stdout))


def same_timeline(a: pd.DataFrame, b: pd.DataFrame, tolerance: float = 1e-4) -> None:
    assert len(a) >= 3 and list(a.columns) == list(b.columns)
    assert a[["start_s", "end_s"]].equals(b[["start_s", "end_s"]])
    assert a["emotion"].tolist() == b["emotion"].tolist()
    probs = [c for c in a.columns if "_p_" in c]
    assert probs and float((a[probs] - b[probs]).abs().to_numpy().max()) <= tolerance


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_bundle_recognises_without_tensorflow_or_keras(
    fmt: str, exported: dict[str, Path], stream: Path, keras_timeline: pd.DataFrame
) -> None:
    code = (
        "import io, json, sys, contextlib\n"
        "from deepser.cli.recognize import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main(['--model', {str(exported[fmt])!r}, '--wav', {str(stream)!r}, '-q'])\n"
        "mods = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print(json.dumps({'rc': rc, 'csv': out.getvalue(), 'modules': mods}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["rc"] == 0
    loaded = set(result["modules"])
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert {"ai_edge_litert" if fmt == "litert" else "onnxruntime"} <= loaded
    same_timeline(keras_timeline, pd.read_csv(io.StringIO(result["csv"])))


def test_exported_bundle_keeps_the_calibration_and_the_card(
    bundle: Path, exported: dict[str, Path], stream: Path
) -> None:
    before = json.loads((bundle / "bundle.json").read_text())
    for path in exported.values():
        after = json.loads((path / "bundle.json").read_text())
        assert after["calibration"] == before["calibration"]
        assert after["runtime"]["check"]["max_abs_diff"] <= 1e-5
        assert (path / "model_card.md").read_text() == (bundle / "model_card.md").read_text()
    # raw probabilities differ from the calibrated ones the same way on both paths
    raw = [
        pd.read_csv(io.StringIO(deepser("recognize", "--model", m, "--wav", stream, "-q",
                                        "--no-calibration").stdout))
        for m in (bundle, exported["litert"])
    ]  # fmt: skip
    same_timeline(raw[0], raw[1])


def test_a_fresh_venv_with_only_the_runtime_extra(
    tmp_path: Path, exported: dict[str, Path], bundle: Path, stream: Path, keras_timeline
) -> None:
    """``pip install 'deepser[runtime]'`` into an empty venv: no TensorFlow, no Keras, no
    librosa or scipy; the exported bundle gives the Keras bundle's timeline; the Keras bundle
    is refused with what to do."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    pip = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{REPO}[runtime]"],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip.returncode != 0 and not os.environ.get("CI") and "connection" in pip.stderr.lower():
        pytest.skip(f"pip cannot reach the package index: {pip.stderr.strip()[-200:]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u; print([m for m in "
         "('tensorflow','keras','librosa','scipy','h5py','pandas') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "[]"
    done = subprocess.run(
        [str(env_dir / "bin" / "deepser-recognize"), "--model", exported["litert"], "--wav",
         stream, "-q"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    same_timeline(keras_timeline, pd.read_csv(io.StringIO(done.stdout)))
    refused = deepser("recognize", "--model", bundle, "--wav", stream, python=python)
    assert refused.returncode == 1
    assert "pip install 'deepser[train]'" in refused.stderr
    assert "deepser export" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
