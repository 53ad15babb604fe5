"""Waveform augmentation, auxiliary tasks, speaker-level normalisation and pretrain/fine-tune,
trained with the workflow's stages in one process (that fine-tuning is a dependency of the
workflow's DAG is tested in ``tests/workflow/test_workflow.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from deepser.corpus.demo import synthesize_corpus

from ..helpers import run_stages

TINY = {"conv_filters": [4], "rnn_units": 6, "dense_units": 0}
FEATURES = {
    "type": "logmel",
    "sample_rate": 16000,
    "n_mels": 24,
    "augment": {"copies": 1, "speed": [0.9, 1.1], "noise_snr_db": [15, 25], "seed": 3},
}
EXPERIMENTS = {
    "pre": {
        "database": "db",
        "tasks": {"emotion": 1.0, "arousal": 0.5},
        "auxiliary": ["arousal"],
        "model": TINY,
        "training": {"epochs": 2, "validation_fraction": 0.4, "seed": 1},
    },
    "ft": {
        "database": "db",
        "tasks": {"emotion": 1.0},
        "init_from": "pre",
        "freeze": ["conv0"],
        "normalisation": "speaker",
        "training": {"epochs": 2, "learning_rate": 0.0005, "validation_fraction": 0.4, "seed": 2},
    },
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("options")
    meta = synthesize_corpus(work / "data", seed=3, n_speakers=4, utterances_per_emotion=2)
    columns = {"emotion": "emotion", "speaker": "speaker", "arousal": "arousal"}
    database = {
        "corpora": ["demo"],
        "c_len": 10,
        "max_steps": 100,
        "tasks": ["emotion", "arousal"],
        "n_folds": 2,
    }
    corpora = {"demo": {"meta": str(meta), "columns": columns}}
    run_stages(work, corpora, FEATURES, database, EXPERIMENTS)
    return work


def test_augmented_copies_are_training_only(workdir: Path) -> None:
    with h5py.File(workdir / "db.h5") as h5:
        utt = np.asarray(h5["utt_id"].asstr()[()])
        speaker = np.asarray(h5["speaker"].asstr()[()])
        attrs = {k: json.loads(v) for k, v in h5.attrs.items()}
    augmented = np.char.find(utt.astype(str), "#aug1") >= 0
    assert augmented.sum() == (~augmented).sum() == 32 == attrs["n_utterances"]
    assert attrs["n_augmented"] == 32
    for k in range(2):
        training = json.loads((workdir / f"experiments/pre/fold-{k}/training.json").read_text())
        train_spk = training["speakers"]["train"]
        n_orig = int(np.isin(speaker[~augmented], train_spk).sum())
        assert training["n_rows"]["train"] == 2 * n_orig  # originals + their copies
        assert training["n_rows"]["train_augmented"] == n_orig
        held_out = training["speakers"]["validation"] + training["speakers"]["test"]
        assert training["n_rows"]["validation"] + training["n_rows"]["test"] == int(
            np.isin(speaker[~augmented], held_out).sum()
        )
        table = pd.read_csv(workdir / f"experiments/pre/fold-{k}/predictions.csv")
        assert not table["utt_id"].str.contains("#aug").any()  # tested on recordings only


def test_auxiliary_task_is_evaluated_but_not_in_the_bundle(workdir: Path) -> None:
    summary = json.loads((workdir / "experiments/pre/metrics.json").read_text())
    assert set(summary["tasks"]) == {"emotion", "arousal"}
    from deepser.bundle import load_bundle

    model, bundle = load_bundle(workdir / "experiments/pre/final")
    assert [t["name"] for t in bundle.tasks] == ["emotion"]
    assert model.output_names == ["emotion"]
    assert bundle.training["auxiliary_tasks"] == ["arousal"]


def test_fine_tuning_starts_from_the_pretrained_model_with_frozen_layers(workdir: Path) -> None:
    from deepser.models.saving import load_model

    pre = load_model(workdir / "experiments/pre/final/model.keras")
    for k in range(2):
        path = workdir / f"experiments/ft/fold-{k}"
        training = json.loads((path / "training.json").read_text())
        frozen = training["initialised_from"]["frozen"]
        assert "conv0" in frozen and all(name.startswith("conv0") for name in frozen)
        assert "conv0" in training["initialised_from"]["copied"]
        assert training["normalisation"] == "speaker"
        ft = load_model(path / "model.keras")
        for a, b in zip(
            pre.get_layer("conv0").get_weights(), ft.get_layer("conv0").get_weights(), strict=True
        ):
            np.testing.assert_array_equal(a, b)  # frozen: unchanged by fine-tuning
        changed = [
            not np.array_equal(a, b)
            for a, b in zip(
                pre.get_layer("lstm").get_weights(), ft.get_layer("lstm").get_weights(), strict=True
            )
        ]
        assert any(changed)  # trainable layers moved on from the pretrained weights


def test_recogniser_applies_running_speaker_statistics(workdir: Path) -> None:
    import soundfile as sf

    from deepser.features.registry import extract
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.vad import Segment

    bundle = json.loads((workdir / "experiments/ft/final/bundle.json").read_text())
    assert bundle["normalisation"]["method"] == "speaker"
    engine = Engine.from_bundle(workdir / "experiments/ft/final")
    assert engine.speaker_norm is not None and engine.speaker_norm.moments.count == 0
    wavs = sorted((workdir / "data").rglob("*.wav"))[:2]
    frames = 0
    for wav in wavs:
        y, sr = sf.read(wav, dtype="float32")
        assert sr == engine.sample_rate
        segment = Segment(0, len(y), sr, y, 1.0, "whole")
        probs = engine.recognize(segment).outputs["emotion"]
        assert probs.shape == (4,) and abs(float(probs.sum()) - 1) < 1e-4
        frames += extract(engine.gain(y), engine.spec).shape[0]
        assert engine.speaker_norm.moments.count == frames  # they accumulate over the session
