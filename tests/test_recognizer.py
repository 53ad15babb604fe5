"""The recogniser: streaming VAD segmentation, gain modes, the one feature path, the CLI.

The segmenter, gain and output tests are fast (no Keras). Tests marked slow use a real bundle
made by the real workflow on a tiny demo corpus (built once per session, about a minute).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from deepser.recognizer.errors import RecognizerError
from deepser.recognizer.gain import AutoGain, bundle_gain, make_gain
from deepser.recognizer.output import columns
from deepser.recognizer.vad import StreamingSegmenter, VadSettings

from .conftest import REPO, demo_workflow_config, noise, run_workflow, voiced, write_wav

SR = 16000

# ---------------------------------------------------------------------------------------------
# synthetic speech-like bursts


def bursts(spec: list[tuple[float, float]], sr: int = SR, tail: float = 1.0):
    """Noise with voiced bursts: spec = [(silence before, burst length), ...].
    Returns (signal, [(start_s, end_s) of each burst])."""
    parts, truth, pos = [], [], 0.0
    for i, (gap, length) in enumerate(spec):
        parts += [noise(gap, sr, seed=i + 10), voiced(length, sr, seed=i) + noise(length, sr)]
        truth.append((pos + gap, pos + gap + length))
        pos += gap + length
    parts.append(noise(tail, sr, seed=99))
    return np.concatenate(parts), truth


def segment_all(x: np.ndarray, settings: VadSettings | None = None, chunk: int = 320, sr=SR):
    """Run the segmenter over x in chunks; returns [(segment, samples fed when emitted)]."""
    seg = StreamingSegmenter(sr, settings)
    out = []
    for i in range(0, x.size, chunk):
        out += [(s, min(i + chunk, x.size)) for s in seg.feed(x[i : i + chunk])]
    out += [(s, x.size) for s in seg.flush()]
    return out, seg


SPEC = [(1.0, 1.2), (0.8, 0.6), (1.5, 2.0), (0.7, 0.9)]
TOL = 0.07  # VAD reaction time at the start of a burst (s)
OVERHANG = 0.22  # WebRTC VAD keeps saying "speech" 0.1-0.16 s after a burst (its own hangover)


def test_segments_match_the_bursts_with_padding() -> None:
    x, truth = bursts(SPEC)
    settings = VadSettings()
    found, seg = segment_all(x, settings)
    assert len(found) == len(truth) and seg.n_rejected <= 1  # WebRTC VAD start-up blip
    for (s, _), (t0, t1) in zip(found, truth, strict=True):
        assert abs(s.start_s - (t0 - settings.start_pad_ms / 1000)) <= TOL
        assert -TOL <= s.end_s - (t1 + settings.end_pad_ms / 1000) <= OVERHANG
        assert s.start_s < t0 and s.end_s > t1  # no word edge clipped
        assert s.speech_ratio > 0.9 and s.reason == "end"
        np.testing.assert_array_equal(s.audio, x[s.start : s.end])  # cut from the stream


def test_segments_are_emitted_as_soon_as_they_end() -> None:
    x, truth = bursts(SPEC, tail=3.0)
    found, _ = segment_all(x, VadSettings(hangover_ms=300))
    for (_seg, fed), (_, t1) in zip(found, truth, strict=True):
        delay = fed / SR - t1  # audio after the end of speech needed to emit the segment
        assert 0.25 <= delay <= 0.3 + OVERHANG, delay
    assert found[-1][1] / SR < x.size / SR - 2.5  # long before the end of the stream


def test_chunk_size_does_not_change_the_segments() -> None:
    x, _ = bursts(SPEC[:2])
    ref, _ = segment_all(x, chunk=x.size)
    for chunk in (7, 333, 4096):
        got, _ = segment_all(x, chunk=chunk)
        assert [(s.start, s.end, s.speech_ratio) for s, _ in got] == [
            (s.start, s.end, s.speech_ratio) for s, _ in ref
        ]


def test_long_speech_is_split_at_max_segment_length() -> None:
    x, (t,) = bursts([(0.5, 5.0)])
    found, _ = segment_all(x, VadSettings(max_segment_s=2.0))
    segs = [s for s, _ in found]
    assert len(segs) == 3 and [s.reason for s in segs] == ["split", "split", "end"]
    assert all(s.end_s - s.start_s <= 2.0 + 1e-9 for s in segs)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:], strict=False))  # no audio lost
    assert segs[0].start_s == pytest.approx(t[0] - 0.2, abs=TOL)
    assert 0 <= segs[-1].end_s - (t[1] + 0.2) <= OVERHANG
    # the first split part was emitted while the speech went on
    assert found[0][1] / SR < t[1]


def test_speech_gates_reject_short_or_sparse_segments() -> None:
    x, _ = bursts([(1.0, 0.1), (1.0, 1.0)])
    found, seg = segment_all(x, VadSettings(min_speech_ms=400))
    assert len(found) == 1 and seg.n_rejected >= 1  # the 100 ms blip is not emitted
    # 60 ms on / 250 ms off: one segment (pauses < hangover), about half speech frames
    # (VAD overhang included)
    sparse = np.concatenate(
        [noise(1.0)]
        + [
            np.concatenate([voiced(0.06, seed=i) + noise(0.06), noise(0.25, seed=i)])
            for i in range(8)
        ]
        + [noise(1.0, seed=5)]
    )
    [(only, _fed)], _ = segment_all(sparse, VadSettings(speech_ratio=0.3))
    assert 0.4 < only.speech_ratio < 0.65
    found, seg = segment_all(sparse, VadSettings(speech_ratio=0.8))
    assert found == [] and seg.n_rejected >= 1


def test_other_sample_rates_use_a_resampled_vad() -> None:
    x16, truth = bursts(SPEC[:2])
    import soxr

    x22 = soxr.resample(x16, SR, 22050).astype(np.float32)
    found, seg = segment_all(x22, chunk=441, sr=22050)
    assert seg.vad_rate == 16000 and len(found) == 2
    for (s, _), (t0, t1) in zip(found, truth, strict=True):
        assert abs(s.start_s - (t0 - 0.2)) <= TOL and -TOL <= s.end_s - (t1 + 0.2) <= OVERHANG
        assert s.sample_rate == 22050 and s.audio.size == s.end - s.start


def test_lost_audio_closes_the_segment_and_keeps_times_true() -> None:
    x, truth = bursts(SPEC[:3])
    cut, lost = int(1.6 * SR), int(0.5 * SR)  # inside the first burst; 0.5 s lost
    seg = StreamingSegmenter(SR)
    found = list(seg.feed(x[:cut])) + list(seg.skip(lost)) + list(seg.feed(x[cut + lost :]))
    found += list(seg.flush())
    assert [s.reason for s in found] == ["gap", "end", "end"]
    assert found[0].end <= cut and found[0].audio.size == found[0].end - found[0].start
    for s, (t0, t1) in zip(found[1:], truth[1:], strict=True):  # same times as without loss
        assert abs(s.start_s - (t0 - 0.2)) <= TOL and -TOL <= s.end_s - (t1 + 0.2) <= OVERHANG
        np.testing.assert_array_equal(s.audio, x[s.start : s.end])


def test_vad_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="10, 20 or 30"):
        VadSettings(frame_ms=25)
    with pytest.raises(ValueError, match="0-3"):
        VadSettings(aggressiveness=4)


# ---------------------------------------------------------------------------------------------
# gain


def test_auto_gain_calibrates_on_practice_segments_and_only_widens() -> None:
    gain = AutoGain((0.0, 1.0), practice=3)
    assert gain.calibrating and "calibrating 0/3" in gain.status()
    soft, loud, medium = (a * voiced(0.5) for a in (0.1, 0.8, 0.4))
    y = gain(soft)  # the first segment sets the bounds: it fills [0, 1] exactly
    assert y.min() == pytest.approx(0.0, abs=1e-6) and y.max() == pytest.approx(1.0, abs=1e-6)
    bounds = (gain.gain["min"], gain.gain["max"])
    assert "calibrating 1/3" in gain.status()
    gain(loud)
    widened = (gain.gain["min"], gain.gain["max"])
    assert widened[0] < bounds[0] and widened[1] > bounds[1]
    y = gain(medium)  # inside the extremes: they stay, the segment is scaled by them
    assert (gain.gain["min"], gain.gain["max"]) == widened
    lo, hi = widened
    np.testing.assert_allclose(y, (medium - lo) / (hi - lo), atol=1e-6)
    assert not gain.calibrating and "keep widening" in gain.status()


def test_gain_modes_from_the_command_line() -> None:
    info = {"gain": {"method": "minmax", "min": -0.5, "max": 0.5, "range": [-1.0, 1.0]}}
    control, warnings = make_gain("bundle", info)
    assert control.gain == info["gain"] and not warnings
    control, _ = make_gain("-0.25,0.25", info)
    np.testing.assert_allclose(control(np.array([-0.25, 0.0, 0.25], np.float32)), [-1, 0, 1])
    control, _ = make_gain("auto", info)
    assert isinstance(control, AutoGain) and control.gain["range"] == [-1.0, 1.0]
    _, warnings = make_gain("auto", {"gain": {"method": "none"}})
    assert "not min-max" in warnings[0]
    for bad in ("0.5,0.5", "loud", "1,2,3"):
        with pytest.raises(RecognizerError):
            make_gain(bad, info)
    per_corpus = {"gain": {"a": {"method": "none"}, "b": {"method": "peak", "target": 1.0}}}
    gain, warning = bundle_gain(per_corpus)
    assert gain == {"method": "none"} and "'a'" in warning


def test_timeline_columns_follow_the_contract() -> None:
    tasks = [
        {"name": "emotion", "type": "categorical", "classes": ["angry", "sad"]},
        {"name": "arousal_score", "type": "continuous"},
    ]
    assert columns(tasks) == [
        "start_s",
        "end_s",
        "speech_ratio",
        "emotion",
        "emotion_p_angry",
        "emotion_p_sad",
        "arousal_score",
    ]
    assert columns(tasks, "label", with_file=True) == [
        "file",
        "start_s",
        "end_s",
        "speech_ratio",
        "emotion",
        "arousal_score",
    ]


class StubModel:
    """Stands in for a Keras model: records its inputs, returns uniform probabilities."""

    output_names = ["emotion"]

    def predict_on_batch(self, x):
        self.seen = x
        return {"emotion": np.full((x["features"].shape[0], 2), 0.5, np.float32)}


@pytest.mark.parametrize("layout", ["2d", "3d"])
def test_engine_builds_the_database_row_layout(layout: str) -> None:
    from deepser.features import extract, resolve_spec
    from deepser.gain import apply_gain
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.vad import Segment
    from deepser.windows import cut_windows, to_layout

    spec = resolve_spec({"type": "logmel", "sample_rate": SR, "n_mels": 16})
    gain = {"method": "peak", "target": 0.5}
    window = {"c_len": 5, "max_steps": 50, "layout": layout, "n_steps": 10, "dims": 16}
    tasks = [{"name": "emotion", "type": "categorical", "classes": ["a", "b"]}]
    info = {"feature_spec": spec, "window_spec": window, "tasks": tasks, "gain": gain}
    engine = Engine(StubModel(), info)
    engine.warm_up()
    y = voiced(0.3)
    pred = engine.recognize(Segment(0, y.size, SR, y, 1.0, "end"))
    windows, n_valid = cut_windows(extract(apply_gain(y, gain), spec), 5, 50)
    np.testing.assert_array_equal(engine.model.seen["features"], to_layout(windows[None], layout))
    assert engine.model.seen["n_valid"].tolist() == [n_valid] == [6]
    assert pred.outputs["emotion"].tolist() == [0.5, 0.5]


# ---------------------------------------------------------------------------------------------
# a real bundle from the real workflow

BUNDLE_CONFIG = demo_workflow_config(
    seed=5,
    n_speakers=4,
    utterances_per_emotion=2,
    n_shards=1,
    max_steps=250,
    n_folds=2,
    experiments={
        "exp": {
            "database": "db",
            "tasks": {"emotion": 1.0, "arousal": 0.5},
            "model": {"conv_filters": [4], "rnn_units": 8, "dense_units": 8},
            "training": {"epochs": 2, "patience": 2, "validation_fraction": 0.34, "seed": 1},
        }
    },
)


def build_bundle(tmp_path_factory) -> Path:
    """The workflow's folder with a tiny bundle (built once per test session)."""
    work = tmp_path_factory.getbasetemp() / "recognizer-workflow"
    if not (work / "results/experiments/exp/final/bundle.json").is_file():
        work.mkdir(exist_ok=True)
        run_workflow(work, BUNDLE_CONFIG, "results/experiments/exp/final/bundle.json")
    return work


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
def work(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory)


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


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from deepser.recognizer.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_engine_features_equal_the_workflow_database(work: Path, engine) -> None:
    """The recogniser's feature path on an utterance file == the row the workflow built."""
    import h5py

    from deepser.audio import load_audio

    meta = pd.read_csv(work / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    with h5py.File(work / "results/db/db.h5") as h5:
        utt_ids = list(h5["utt_id"].asstr()[()])
        for i in (0, 7, len(utt_ids) - 1):
            audio = work / meta.set_index("utt_id").loc[utt_ids[i], "audio"]
            row, n_valid = engine.features(load_audio(audio, engine.sample_rate))
            np.testing.assert_array_equal(row, h5["feat"][i])
            assert n_valid == h5["n_valid"][i]
            got = engine.predict(row[None], np.array([n_valid]))
            want = engine.model.predict_on_batch(
                {"features": h5["feat"][i : i + 1], "n_valid": h5["n_valid"][i : i + 1]}
            )
            for task in ("emotion", "arousal"):
                np.testing.assert_array_equal(got[task], np.asarray(want[task]))


@pytest.mark.slow
def test_a_recognised_segment_has_exactly_the_workflows_features(
    engine, stream_wav, tmp_path: Path
) -> None:
    """File -> recogniser -> segment; the workflow's extraction code on that segment's audio
    (written to a file, read back by the shard extractor) gives the same features and
    prediction."""
    from deepser.extraction import extract_shard
    from deepser.h5db import FeatureShard
    from deepser.recognizer.pipeline import Recognizer
    from deepser.recognizer.sources import FileSource
    from deepser.windows import cut_windows

    path, _ = stream_wav
    preds = list(Recognizer(engine).stream(FileSource(path, engine.sample_rate)))
    assert len(preds) == 5
    pred = preds[2]
    seg_wav = write_wav(tmp_path / "segment.wav", pred.segment.audio, subtype="FLOAT")
    extract_shard([("seg", str(seg_wav))], engine.spec, engine.gain.gain, tmp_path / "shard.h5")
    with FeatureShard(tmp_path / "shard.h5") as shard:
        windows, n_valid = cut_windows(shard["seg"], 10, 250)  # the database's step
    workflow_row = windows[:, None]  # layout 2d, as build_database
    row, n = engine.features(pred.segment.audio)
    np.testing.assert_array_equal(row, workflow_row)
    assert n == n_valid
    want = engine.model.predict_on_batch(
        {"features": workflow_row[None], "n_valid": np.array([n_valid], np.int32)}
    )
    for task in ("emotion", "arousal"):
        np.testing.assert_array_equal(pred.outputs[task], np.asarray(want[task])[0])


@pytest.mark.slow
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


@pytest.mark.slow
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
            classes = json.loads((bundle / "bundle.json").read_text())["tasks"][0]["classes"]
            got = [r[f"emotion_p_{c}"] for c in classes]
            np.testing.assert_allclose(got, np.asarray(want["emotion"])[0], atol=1e-6)
            assert r["start_s"] == 0.0


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_auto_gain_prints_calibration_status(bundle: Path, stream_wav, capsys) -> None:
    path, _ = stream_wav
    code, out, err = run_cli(
        capsys, "--model", bundle, "--wav", path, "--gain", "auto", "--practice", "2"
    )
    assert code == 0, err
    assert "calibrating 0/2" in err and "calibrating 1/2" in err and "keep widening" in err
    assert "not min-max" in err  # the tiny bundle was trained without min-max gain
    assert len(out.splitlines()) == 6


def one_line_error(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("deepser-recognize: error: ") and "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


def test_error_unreadable_and_missing_audio(tmp_path: Path, capsys) -> None:
    bundle = fake_bundle(tmp_path / "bundle")  # inputs are checked before a model is loaded
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    code, _, err = run_cli(capsys, "--model", bundle, "--wav", bad)
    one_line_error(code, err, "bad.wav", "unreadable audio")
    code, _, err = run_cli(capsys, "--model", bundle, "--wav", tmp_path / "nope.wav")
    one_line_error(code, err, "nope.wav", "not found")
    code, _, err = run_cli(capsys, "--model", tmp_path / "nothing", "--wav", bad)
    one_line_error(code, err, "not a model bundle")
    old = fake_bundle(tmp_path / "old", format_version=99)
    code, _, err = run_cli(capsys, "--model", old, "--wav", bad)
    one_line_error(code, err, "bundle format 99 is not supported")


@pytest.mark.slow
def test_enrol_needs_a_speaker_normalised_model(bundle: Path, stream_wav, capsys) -> None:
    path, _ = stream_wav
    code, out, err = run_cli(capsys, "--model", bundle, "--enrol", path, "--wav", path)
    assert code == 1 and out == ""
    assert "--enrol needs a model trained with speaker-level normalisation" in err


@pytest.mark.slow
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


def fake_bundle(folder: Path, **info) -> Path:
    """A bundle folder that passes the quick bundle.json check (its model is never loaded)."""
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"")
    base = {"format_version": 1, "feature_spec": {"sample_rate": SR}, "window_spec": {}}
    (folder / "bundle.json").write_text(json.dumps({**base, "tasks": [], **info}))
    return folder


def test_error_no_such_input_device(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pyaudio", reason="PyAudio not installed (pip install 'deepser[live]')")
    bundle = fake_bundle(tmp_path / "bundle")
    code, _, err = run_cli(capsys, "--model", bundle, "--mic", "no-such-mic")
    one_line_error(code, err, "no audio input device 'no-such-mic'")


def test_error_without_pyaudio(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # as if not installed
    code, _, err = run_cli(capsys, "--model", fake_bundle(tmp_path / "bundle"), "--mic")
    one_line_error(code, err, "live input needs PyAudio", "portaudio19-dev")


def test_help_names_the_original_options(capsys) -> None:
    from deepser.recognizer.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("--min-speech-ms", "-vd", "--speech-ratio", "-s_ratio", "--gain", "-p_mode"):
        assert word in text
