"""The recogniser on a real bundle: the shared reference run's final model (see
``tests/conftest.py``): the one feature path, the command line, its outputs and errors."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ..helpers import REPO, noise, write_wav
from ..unit.test_recognizer import one_line_error, run_cli

SR = 16000

# ---------------------------------------------------------------------------------------------
# a real bundle from the real workflow


def utterance_stream(work: Path, n: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """The first ``n`` demo utterances separated by 0.6-1.2 s of noise; their positions."""
    meta = pd.read_csv(work / "data/demo/meta.tsv", sep="\t", dtype=str)
    rng = np.random.default_rng(seed)
    parts, rows, pos = [], [], 0
    for i, rec in meta.head(n).iterrows():
        y, sr = sf.read(work / "data/demo" / rec["path"], dtype="float32")
        assert sr == SR
        gap = noise(rng.uniform(0.6, 1.2), seed=i)
        parts += [gap, y]
        rows.append(
            {**rec, "start_s": (pos + gap.size) / SR, "end_s": (pos + gap.size + y.size) / SR}
        )
        pos += gap.size + y.size
    parts.append(noise(1.0, seed=n + 1))
    return np.concatenate(parts), pd.DataFrame(rows)


@pytest.fixture(scope="module")
def work(reference: Path) -> Path:
    return reference


@pytest.fixture(scope="module")
def bundle(work: Path) -> Path:
    return work / "results/experiments/exp/final"


@pytest.fixture(scope="module")
def engine(bundle: Path):
    from deepser.recognizer.engine import Engine

    return Engine.from_bundle(bundle)


@pytest.fixture(scope="module")
def stream_wav(work: Path, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    x, utts = utterance_stream(work, 5)
    path = tmp_path_factory.mktemp("stream") / "stream.wav"
    write_wav(path, x, subtype="FLOAT")
    return path, utts


def test_engine_features_equal_the_workflow_database(work: Path, engine) -> None:
    """The recogniser's feature path on an utterance file == the row the workflow built."""
    import h5py

    from deepser.corpus.audio import load_audio

    meta = pd.read_csv(work / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    with h5py.File(work / "results/db/db.h5") as h5:
        utt_ids = list(h5["utt_id"].asstr()[()])
        for i in (0, 7, len(utt_ids) - 1):
            audio = work / meta.set_index("utt_id").loc[utt_ids[i], "audio"]
            row, n_valid = engine.features(load_audio(audio, engine.sample_rate))
            # to float32 rounding: the workflow's job ran BLAS on one thread (Snakemake sets
            # OPENBLAS_NUM_THREADS=threads), this process may use several (another summation
            # order in the mel filterbank's product)
            np.testing.assert_allclose(row, h5["feat"][i], rtol=1e-6, atol=1e-4)
            assert n_valid == h5["n_valid"][i]
            got = engine.predict(h5["feat"][i : i + 1], np.array([n_valid]))
            want = engine.model.predict_on_batch(
                {"features": h5["feat"][i : i + 1], "n_valid": h5["n_valid"][i : i + 1]}
            )
            for task in ("emotion", "arousal"):
                np.testing.assert_array_equal(got[task], np.asarray(want[task]))


def test_a_recognised_segment_has_exactly_the_workflows_features(
    engine, stream_wav, tmp_path: Path
) -> None:
    """File -> recogniser -> segment; the workflow's extraction code on that segment's audio
    (written to a file, read back by the shard extractor) gives the same features and
    prediction."""
    from deepser.database.windows import as_row, cut_windows
    from deepser.features.extraction import extract_shard
    from deepser.features.shards import FeatureShard
    from deepser.recognizer.pipeline import Recognizer
    from deepser.recognizer.sources import FileSource

    path, _ = stream_wav
    preds = list(Recognizer(engine).stream(FileSource(path, engine.sample_rate)))
    assert len(preds) == 5
    pred = preds[2]
    seg_wav = write_wav(tmp_path / "segment.wav", pred.segment.audio, subtype="FLOAT")
    extract_shard([("seg", str(seg_wav))], engine.spec, engine.gain.gain, tmp_path / "shard.h5")
    with FeatureShard(tmp_path / "shard.h5") as shard:
        windows, n_valid = cut_windows(shard["seg"], 10, 150)  # the database's window spec
    workflow_row = as_row(windows, "2d")  # as build_database
    row, n = engine.features(pred.segment.audio)
    np.testing.assert_array_equal(row, workflow_row)
    assert n == n_valid
    want = engine.model.predict_on_batch(
        {"features": workflow_row[None], "n_valid": np.array([n_valid], np.int32)}
    )
    for task in engine.tasks:  # the bundle's calibration applied to the model's output
        name = task["name"]
        np.testing.assert_array_equal(
            pred.outputs[name], engine.calibrate(task, np.asarray(want[name])[0])
        )


def test_cli_prints_a_timeline_on_stdout(bundle: Path, stream_wav, capsys) -> None:
    path, utts = stream_wav
    code, out, err = run_cli(capsys, "--model", bundle, "--wav", path)
    assert code == 0, err
    lines = out.splitlines()
    info = json.loads((bundle / "bundle.json").read_text())
    expected = ["start_s", "end_s", "speech_ratio"]
    for task in info["tasks"]:
        expected += [task["name"]] + [f"{task['name']}_p_{c}" for c in task["classes"]]
    assert lines[0].split(",") == expected
    table = pd.read_csv(io.StringIO(out), dtype=str)
    assert len(table) == len(utts)
    starts, ends = table["start_s"].astype(float), table["end_s"].astype(float)
    # each segment covers its utterance's speech (the utterances have silent edges)
    assert (starts.to_numpy() >= utts["start_s"].to_numpy() - 0.25).all()
    assert (ends.to_numpy() <= utts["end_s"].to_numpy() + 0.25).all()
    assert (starts.to_numpy()[1:] >= ends.to_numpy()[:-1]).all()
    probs = table[[c for c in expected if c.startswith("emotion_p_")]].astype(float)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert set(table["emotion"]) <= set(info["tasks"][0]["classes"])
    assert "5 segment(s) recognised" in err


def test_cli_whole_file_equals_offline_prediction(work: Path, bundle: Path, capsys) -> None:
    """--whole-file on utterance files gives the evaluation's probabilities (6 decimals)."""
    import h5py

    from deepser.recognizer.engine import Engine

    meta = pd.read_csv(work / "data/demo/meta.tsv", sep="\t", dtype=str).head(3)
    files = [work / "data/demo" / p for p in meta["path"]]
    code, out, err = run_cli(
        capsys, "--model", bundle, "--whole-file", "--format", "jsonl", "-q", "--wav", *files
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in rows] == [str(f) for f in files]
    engine = Engine.from_bundle(bundle)
    utt_meta = pd.read_csv(work / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    with h5py.File(work / "results/db/db.h5") as h5:
        index = {u: i for i, u in enumerate(h5["utt_id"].asstr()[()])}
        for rec, r in zip(meta.itertuples(), rows, strict=True):
            utt = utt_meta.loc[utt_meta["audio"] == f"data/demo/{rec.path}", "utt_id"].item()
            i = index[utt]
            want = engine.model.predict_on_batch(
                {"features": h5["feat"][i : i + 1], "n_valid": h5["n_valid"][i : i + 1]}
            )
            task = next(t for t in engine.tasks if t["name"] == "emotion")
            got = [r[f"emotion_p_{c}"] for c in task["classes"]]
            calibrated = engine.calibrate(task, np.asarray(want["emotion"])[0])
            np.testing.assert_allclose(got, calibrated, atol=1e-6)
            assert r["start_s"] == 0.0


def test_cli_jsonl_csv_log_and_label_mode(bundle: Path, stream_wav, tmp_path: Path, capsys):
    path, utts = stream_wav
    log, jsonl = tmp_path / "t.csv", tmp_path / "t.jsonl"
    code, out, err = run_cli(
        capsys,
        "--model",
        bundle,
        "--wav",
        path,
        "--log",
        log,
        "--jsonl",
        jsonl,
        "--output",
        "label",
    )
    assert code == 0 and out == "", err
    table = pd.read_csv(log)
    assert list(table.columns) == ["start_s", "end_s", "speech_ratio", "emotion", "arousal"]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == len(table) == len(utts)
    assert [r["emotion"] for r in records] == list(table["emotion"])
    assert records[0].keys() == set(table.columns)


def test_cli_batch_over_files_and_a_meta(work: Path, bundle: Path, tmp_path: Path, capsys):
    meta = work / "data/demo/meta.tsv"
    table = pd.read_csv(meta, sep="\t", dtype=str)
    # some inputs in other formats: stereo 44.1 kHz FLAC
    y, sr = sf.read(work / "data/demo" / table["path"][0], dtype="float32")
    import soxr

    flac = tmp_path / "stereo.flac"
    sf.write(flac, np.stack([soxr.resample(y, sr, 44100)] * 2, axis=1), 44100)
    code, out, err = run_cli(
        capsys, "--model", bundle, "--wav", flac, work / "data/demo" / table["path"][1]
    )
    assert code == 0, err
    combined = pd.read_csv(io.StringIO(out))
    assert combined.columns[0] == "file" and set(combined["file"]) == {
        str(flac),
        str(work / "data/demo" / table["path"][1]),
    }
    assert "recognising" in err  # the progress bar (stderr)
    small = tmp_path / "meta.tsv"
    table.head(4).to_csv(small, sep="\t", index=False)
    for p in table["path"].head(4):  # paths are relative to the meta's folder
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes((work / "data/demo" / p).read_bytes())
    code, out, err = run_cli(
        capsys, "--model", bundle, "--meta", small, "--out-dir", tmp_path / "out", "-q"
    )
    assert code == 0 and out == "" and err == "", err
    made = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    want = sorted(str(Path(p).with_suffix(".csv")) for p in table["path"].head(4))
    assert [m for m in made if m.endswith(".csv")] == want
    one = pd.read_csv(tmp_path / "out" / want[0])
    assert list(one.columns[:3]) == ["start_s", "end_s", "speech_ratio"] and len(one) == 1


def test_cli_auto_gain_prints_calibration_status(bundle: Path, stream_wav, capsys) -> None:
    path, _ = stream_wav
    code, out, err = run_cli(
        capsys, "--model", bundle, "--wav", path, "--gain", "auto", "--practice", "2"
    )
    assert code == 0, err
    assert "calibrating 0/2" in err and "calibrating 1/2" in err and "keep widening" in err
    assert "not min-max" in err  # the tiny bundle was trained without min-max gain
    assert len(out.splitlines()) == 6


def test_enrol_needs_a_speaker_normalised_model(bundle: Path, stream_wav, capsys) -> None:
    path, _ = stream_wav
    code, out, err = run_cli(capsys, "--model", bundle, "--enrol", path, "--wav", path)
    assert code == 1 and out == ""
    assert "--enrol needs a model trained with speaker-level normalisation" in err


def test_error_model_contradicts_bundle(bundle: Path, stream_wav, tmp_path: Path) -> None:
    """A subprocess, so nothing but the error line may reach stderr (no TF notices either)."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    info = json.loads((broken / "bundle.json").read_text())
    info["window_spec"]["dims"] += 1
    (broken / "bundle.json").write_text(json.dumps(info))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/recognize.py"),
            "--model",
            broken,
            "--wav",
            stream_wav[0],
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    one_line_error(proc.returncode, proc.stderr, "the model expects input", "bundle.json says")
    assert proc.stdout == ""


def test_a_file_read_block_by_block_gives_the_whole_file_predictions(
    engine, stream_wav, tmp_path: Path
) -> None:
    """FileSource reads blocks (mono mix, streaming resampler): on a stereo 44.1 kHz 16-bit copy
    of the stream, the segments and predictions equal those of the file loaded whole."""
    import soxr

    from deepser.corpus.audio import AudioStream, load_audio
    from deepser.recognizer.pipeline import Recognizer
    from deepser.recognizer.sources import FileSource

    path, utts = stream_wav
    x, _ = sf.read(path, dtype="float32")
    stereo = tmp_path / "stereo44k.wav"
    y = soxr.resample(x, SR, 44100)
    sf.write(stereo, np.stack([y, 0.8 * y], axis=1), 44100, subtype="PCM_16")
    whole = load_audio(stereo, engine.sample_rate)
    chunks = (whole[i : i + 1600] for i in range(0, whole.size, 1600))
    want = list(Recognizer(engine).stream(chunks))
    source = FileSource(stereo, engine.sample_rate)
    source.stream = AudioStream(stereo, engine.sample_rate, block_frames=5000)  # many blocks
    got = list(Recognizer(engine).stream(source))
    assert len(got) == len(want) == len(utts)
    for g, w in zip(got, want, strict=True):
        assert (g.segment.start, g.segment.end) == (w.segment.start, w.segment.end)
        np.testing.assert_allclose(g.segment.audio, w.segment.audio, atol=1e-6)
        for task in g.outputs:
            np.testing.assert_allclose(g.outputs[task], w.outputs[task], atol=1e-5)


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_cli_plot_draws_the_timeline_it_writes(
    bundle: Path, stream_wav, tmp_path: Path, capsys, suffix: str
) -> None:
    path, utts = stream_wav
    picture = tmp_path / "plots" / f"timeline{suffix}"  # its folder is created
    log = tmp_path / "t.csv"
    code, _, err = run_cli(
        capsys, "--model", bundle, "--wav", path, "--log", log, "--plot", picture, "--output",
        "label",
    )  # fmt: skip
    assert code == 0, err
    timeline = pd.read_csv(log)
    assert len(timeline) == len(utts)
    data = picture.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    else:  # the picture embedded and one table row per segment, probabilities included
        text = data.decode()
        assert text.count("data:image/png;base64,") == 1
        # no external resource: strip the embedded picture (base64 may spell "http") first
        markup = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
        assert "http" not in markup.lower() and "//" not in markup
        assert text.count("<tr><td>") == len(timeline) and "emotion_p_" in text
