"""Shared fixtures: paths, the EmoDB copy in ../shared, and real Snakemake runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "corpora" / "emodb"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def require_emodb() -> Path:
    """The EmoDB copy, or skip the test with the reason."""
    if not (EMODB / "meta.tsv").is_file():
        pytest.skip(
            f"EmoDB copy not found at {EMODB} (it lives in ../shared, absent in a fresh clone)"
        )
    return EMODB


def write_wav(path: Path, y: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    """Write a wav file (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: a deterministic test signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.2 / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 6))
    return (y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def voiced(seconds: float, sr: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A vowel-like burst: a glottal-like harmonic series with a slow pitch glide and a 10 ms
    fade in/out, loud enough for any VAD mode."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / sr
    y = sum((0.3 / k) * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 12))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return (y * ramp).astype(np.float32)


def noise(seconds: float, sr: int = 16000, level: float = 1e-3, seed: int = 1) -> np.ndarray:
    """Background noise (about -60 dBFS)."""
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(round(seconds * sr)))).astype(np.float32)


def demo_workflow_config(
    *,
    seed: int,
    n_speakers: int,
    utterances_per_emotion: int,
    n_shards: int,
    max_steps: int,
    n_folds: int,
    experiments: dict,
) -> dict:
    """A small real workflow: demo corpus -> log-mel (24 bands) -> database with emotion and
    arousal tasks -> the given experiments."""
    return {
        "demo_corpus": {
            "dir": "data/demo",
            "seed": seed,
            "n_speakers": n_speakers,
            "utterances_per_emotion": utterances_per_emotion,
        },
        "corpora": {
            "demo": {
                "meta": "data/demo/meta.tsv",
                "n_shards": n_shards,
                "columns": {"emotion": "emotion", "speaker": "speaker", "arousal": "arousal"},
            }
        },
        "feature_sets": {"logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 24}},
        "databases": {
            "db": {
                "corpora": ["demo"],
                "feature_set": "logmel",
                "c_len": 10,
                "max_steps": max_steps,
                "tasks": ["emotion", "arousal"],
                "n_folds": n_folds,
            }
        },
        "experiments": experiments,
    }


def run_workflow(
    workdir: Path, config: dict, *args: str, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the real workflow (this repo's Snakefile) in ``workdir`` with ``config``."""
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
