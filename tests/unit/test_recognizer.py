"""The recogniser's parts without a trained model: streaming VAD segmentation, gain modes,
timeline columns, the row layout (a stub model), command-line errors (fake bundles)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from deepser.bundle import Bundle
from deepser.errors import UsageError
from deepser.recognizer.gain import AutoGain, make_gain
from deepser.recognizer.output import columns
from deepser.recognizer.vad import StreamingSegmenter, VadSettings

from ..helpers import noise, voiced

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


def bundle_with(gain: dict) -> Bundle:
    return Bundle.from_json(
        {"format_version": 1, "feature_spec": {}, "window_spec": {}, "tasks": [], "gain": gain}
    )


def test_gain_modes_from_the_command_line() -> None:
    gain = {"method": "minmax", "min": -0.5, "max": 0.5, "range": [-1.0, 1.0]}
    control, warnings = make_gain("bundle", bundle_with(gain))
    assert control.gain == gain and not warnings
    control, _ = make_gain("-0.25,0.25", bundle_with(gain))
    np.testing.assert_allclose(control(np.array([-0.25, 0.0, 0.25], np.float32)), [-1, 0, 1])
    control, _ = make_gain("auto", bundle_with(gain))
    assert isinstance(control, AutoGain) and control.gain["range"] == [-1.0, 1.0]
    _, warnings = make_gain("auto", bundle_with({"method": "none"}))
    assert "not min-max" in warnings[0]
    for bad in ("0.5,0.5", "loud", "1,2,3"):
        with pytest.raises(UsageError):  # a bad command line: exit status 2
            make_gain(bad, bundle_with(gain))
    # an older bundle kept one gain per corpus in "gain": read into gain (the first) + gains
    per_corpus = bundle_with({"a": {"method": "none"}, "b": {"method": "peak", "target": 1.0}})
    control, warnings = make_gain("bundle", per_corpus)
    assert control.gain == {"method": "none"} and "'a'" in warnings[0]


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


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from deepser.cli.recognize import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


class StubModel:
    """Stands in for a Keras model: records its inputs, returns uniform probabilities."""

    output_names = ["emotion"]

    def predict_on_batch(self, x):
        self.seen = x
        return {"emotion": np.full((x["features"].shape[0], 2), 0.5, np.float32)}


@pytest.mark.parametrize("layout", ["2d", "3d"])
def test_engine_builds_the_database_row_layout(layout: str) -> None:
    from deepser.corpus.gain import apply_gain
    from deepser.database.windows import cut_windows, to_layout
    from deepser.features.registry import extract, resolve_spec
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.vad import Segment

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
    from deepser.cli.recognize import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("--min-speech-ms", "-vd", "--speech-ratio", "-s_ratio", "--gain", "-p_mode"):
        assert word in text


# ---------------------------------------------------------------------------------------------
# file source: read block by block, equal to the whole-file load


@pytest.mark.parametrize(
    "rate, channels, subtype",
    [
        (16000, 1, "PCM_16"),
        (16000, 2, "FLOAT"),
        (44100, 1, "FLOAT"),
        (22050, 2, "PCM_16"),
        (8000, 2, "PCM_24"),
    ],
)
def test_file_source_streams_what_load_audio_reads(
    tmp_path: Path, rate: int, channels: int, subtype: str
) -> None:
    """Blocks (mono mix, streaming soxr) == the whole-file load, at the same and other rates,
    mono and stereo, integer and float files; blocks far smaller than the file."""
    import soundfile as sf

    from deepser.corpus.audio import AudioStream, load_audio
    from deepser.recognizer.sources import FileSource

    rng = np.random.default_rng(rate + channels)
    n = int(3.3 * rate) + 17
    x = 0.3 * rng.standard_normal((n, channels)) + 0.2 * np.sin(np.arange(n) / 7.0)[:, None]
    path = tmp_path / f"x-{rate}-{channels}.wav"
    sf.write(path, np.clip(x, -1, 1), rate, subtype=subtype)
    whole = load_audio(path, SR)
    stream = AudioStream(path, SR, block_frames=1000)
    got = np.concatenate(list(stream))
    assert abs(got.size - whole.size) <= 2
    m = min(got.size, whole.size)
    assert np.max(np.abs(got[:m] - whole[:m])) < 1e-3
    source = FileSource(path, SR, chunk_s=0.02)
    chunks = list(source)
    assert {c.size for c in chunks[:-1]} == {320} and 0 < chunks[-1].size <= 320
    np.testing.assert_allclose(np.concatenate(chunks), got, atol=1e-6)  # other block sizes
    np.testing.assert_array_equal(source.audio, whole)  # --whole-file: load_audio's samples


def test_file_source_stops_at_max_seconds_without_reading_the_rest(tmp_path: Path) -> None:
    import soundfile as sf

    from deepser.corpus.audio import AudioStream, load_audio
    from deepser.recognizer.sources import FileSource

    path = tmp_path / "long.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(10 * 22050), 22050)
    whole = load_audio(path, SR)
    source = FileSource(path, SR, max_seconds=2.5)
    got = np.concatenate(list(source))
    assert got.size == int(2.5 * SR)
    assert np.max(np.abs(got - whole[: got.size])) < 1e-3
    assert source.audio.size == int(2.5 * SR)
    blocks = AudioStream(path, SR, max_samples=SR, block_frames=4096)
    read = []
    blocks._blocks = lambda limit=None, _orig=blocks._blocks: (  # count the file's blocks read
        read.append(b[1].shape[0]) or b for b in _orig(limit)
    )
    assert sum(b.size for b in blocks) == SR
    assert sum(read) < 3 * 22050  # not the whole 10 s file
