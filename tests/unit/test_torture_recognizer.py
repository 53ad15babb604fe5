"""Every bad input ends cleanly: the recogniser's command line (in-process, a tiny real bundle
from ``tests/data/bundles``) and audio loading on broken, odd and hostile inputs.

Invalid input: exit status 1 (a file or bundle that cannot be used) or 2 (a bad command line),
one ``deepser-recognize: error: ...`` line naming the problem, no traceback, no row on stdout.
Odd but valid input (stereo 8 kHz, 24-bit, float64, Ogg Vorbis, shorter than a VAD frame, NaN
samples with ``--repair-nonfinite``): exit status 0 and the segments it holds.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ..helpers import REPO, noise, voiced

SR = 16000
BUNDLE = REPO / "tests" / "data" / "bundles" / "lstm"  # logmel 16 kHz, a tiny real Keras model
PROG = "deepser-recognize"
HEADER = "start_s,end_s,speech_ratio,emotion"


def speech(sr: int = SR) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Noise with two voiced bursts at ``sr``; the bursts' (start, end) in seconds."""
    parts = [noise(1.0, sr), voiced(1.2, sr) + noise(1.2, sr, seed=2), noise(1.0, sr, seed=3)]
    parts += [voiced(0.8, sr, seed=4) + noise(0.8, sr, seed=5), noise(1.0, sr, seed=6)]
    return np.concatenate(parts).astype(np.float32), [(1.0, 2.2), (3.2, 4.0)]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every input file of this module, written once with soundfile."""
    d = tmp_path_factory.mktemp("torture")
    x, _ = speech()
    out: dict[str, Path] = {}

    def write(name: str, y: np.ndarray, sr: int = SR, **kw) -> None:
        out[name] = d / name
        sf.write(out[name], y, sr, **kw)

    write("ok.wav", x, subtype="FLOAT")
    y = x.copy()
    y[20000:20010] = np.nan
    write("nan.wav", y, subtype="FLOAT")
    y = x.copy()
    y[30000], y[30001] = np.inf, -np.inf
    write("inf.wav", y, subtype="FLOAT")
    write("empty.wav", np.zeros(0, np.float32))
    (d / "text.wav").write_text("RIFF? no, just text\n")
    out["text.wav"] = d / "text.wav"
    out["folder.wav"] = d / "folder.wav"
    out["folder.wav"].mkdir()
    import soxr

    x8 = soxr.resample(x, SR, 8000).astype(np.float32)
    write("stereo8k.wav", np.stack([x8, 0.5 * x8], axis=1), 8000)
    write("tiny.wav", x[:100])  # 6 ms: shorter than one 20 ms VAD frame
    write("pcm24.wav", x, subtype="PCM_24")
    write("double.wav", x.astype(np.float64), subtype="DOUBLE")
    write("vorbis.ogg", x, format="OGG", subtype="VORBIS")
    return out


def run(capsys, *args) -> tuple[int, str, str]:
    """``deepser-recognize ARGS`` in-process; (exit status, stdout, stderr). argparse's own
    errors (SystemExit) count as their exit status."""
    from deepser.cli.recognize import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def recognise(capsys, wav, *more) -> tuple[int, str, str]:
    return run(capsys, "--model", BUNDLE, "--wav", wav, *more)


def clean_error(
    code: int, out: str, err: str, status: int, *words: str, started: bool = False
) -> str:
    """Exit ``status``, one ``deepser-recognize: error:`` line holding ``words`` (argparse's
    usage lines aside), no traceback, nothing on stdout (``started``: a problem found while
    streaming, after the timeline's header: no row); returns the error line."""
    assert code == status, (code, err)
    assert "Traceback" not in err, err
    if started:
        assert out.startswith(HEADER) and len(out.splitlines()) == 1, out
    else:
        assert out == "", out
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), err
    if status == 1:  # no usage text: the error line is all
        assert err.strip().splitlines() == lines, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def timeline(out: str) -> pd.DataFrame:
    assert out.startswith(HEADER), out
    return pd.read_csv(io.StringIO(out))


def assert_bursts_found(table: pd.DataFrame, tol: float = 0.4) -> None:
    """One row per burst of :func:`speech`, each around its burst."""
    _, truth = speech()
    assert len(table) == len(truth), table
    for (start, end), row in zip(truth, table.itertuples(), strict=True):
        assert abs(row.start_s - start) < tol and abs(row.end_s - end) < tol, (row, start, end)


# ------------------------------------------------------------------------- invalid audio: 1


@pytest.mark.parametrize(
    "name, words",
    [
        ("nan.wav", ["nan.wav", "10 non-finite samples (NaN or Inf)", "1.250 s"]),
        ("inf.wav", ["inf.wav", "2 non-finite samples (NaN or Inf)", "1.875 s"]),
        ("empty.wav", ["empty.wav", "contains no samples"]),
        ("text.wav", ["text.wav", "unreadable audio"]),
        ("folder.wav", ["folder.wav", "is a folder, not an audio file"]),
        ("missing.wav", ["missing.wav", "file not found"]),
    ],
)
def test_an_unusable_audio_file_exits_1_with_one_line(capsys, files, name, words) -> None:
    path = files.get(name, files["ok.wav"].parent / name)
    clean_error(*recognise(capsys, path), 1, *words)


def test_a_bad_file_in_a_batch_stops_it_before_any_row(capsys, files) -> None:
    """Every input is checked (NaN samples included) before the first row is written."""
    clean_error(*recognise(capsys, files["ok.wav"], files["nan.wav"]), 1, "nan.wav", "NaN")


def test_nan_samples_are_replaced_with_repair_nonfinite(capsys, files) -> None:
    code, out, err = recognise(capsys, files["nan.wav"], "--repair-nonfinite", "-q")
    assert code == 0 and "Traceback" not in err, err
    assert err.strip().splitlines() == [
        f"{PROG}: warning: {files['nan.wav']}: 10 non-finite samples (NaN or Inf) replaced "
        "with 0 (--repair-nonfinite)"
    ]
    assert_bursts_found(timeline(out))


def test_the_umbrella_command_rejects_nan_audio_too(capsys, files) -> None:
    from deepser.cli import main as deepser

    code = deepser(["recognize", "--model", str(BUNDLE), "--wav", str(files["inf.wav"])])
    out = capsys.readouterr()
    assert code == 1 and out.out == "" and "Traceback" not in out.err
    assert out.err.startswith("deepser recognize: error: ") and "non-finite" in out.err


def test_nan_in_an_enrolment_file_exits_1(capsys, files) -> None:
    clean_error(*recognise(capsys, files["ok.wav"], "--enrol", files["nan.wav"]), 1, "nan.wav")


def test_non_finite_chunks_from_any_source_stop_the_run(capsys, files, monkeypatch) -> None:
    """A source that lets NaN through (e.g. a file changed after the check) gives an error
    naming the file, not a label."""
    from deepser.recognizer.sources import FileSource

    def chunks(self):
        yield np.zeros(1600, np.float32)
        yield np.full(1600, np.nan, np.float32)

    monkeypatch.setattr(FileSource, "_chunks", chunks)
    code, out, err = recognise(capsys, files["ok.wav"], "-q")
    line = clean_error(code, out, err, 1, "ok.wav", "1600 non-finite", started=True)
    assert "0.100 s" in line


def test_a_float_file_changed_after_the_check_is_still_refused(capsys, files, monkeypatch):
    from deepser.corpus.audio import AudioStream

    monkeypatch.setattr(AudioStream, "scan_nonfinite", lambda self: 0)
    code, out, err = recognise(capsys, files["nan.wav"], "-q")
    clean_error(code, out, err, 1, "nan.wav", "non-finite samples", started=True)


# ------------------------------------------------------------------------- bundles: 1


def broken_bundle(tmp_path: Path, file: str, content: bytes) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLE, folder)
    (folder / file).write_bytes(content)
    return folder


@pytest.mark.parametrize(
    "file, content, words",
    [
        ("bundle.json", b"{not json", ["bundle.json", "not valid JSON"]),
        ("bundle.json", b"[1, 2]", ["bundle.json"]),
        ("model.keras", b"garbage, not a zip", ["model.keras", "not a Keras model file"]),
        ("model.keras", b"", ["model.keras", "not a Keras model file"]),
    ],
)
def test_an_unusable_bundle_exits_1(tmp_path, capsys, files, file, content, words) -> None:
    bundle = broken_bundle(tmp_path, file, content)
    code, out, err = run(capsys, "--model", bundle, "--wav", files["ok.wav"])
    line = clean_error(code, out, err, 1, *words)
    assert "File not found" not in line


def test_a_zip_that_is_no_keras_model_exits_1(tmp_path, capsys, files) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "not a model")
    bundle = broken_bundle(tmp_path, "model.keras", buf.getvalue())
    code, out, err = run(capsys, "--model", bundle, "--wav", files["ok.wav"])
    clean_error(code, out, err, 1, "model.keras")


def test_a_missing_bundle_folder_exits_1(tmp_path, capsys, files) -> None:
    code, out, err = run(capsys, "--model", tmp_path / "no-bundle", "--wav", files["ok.wav"])
    clean_error(code, out, err, 1, "no-bundle", "not a model bundle")


# ------------------------------------------------------------------------- bad values: 2


@pytest.mark.parametrize(
    "args, words",
    [
        (["--vad-aggressiveness", "7"], ["--vad-aggressiveness", "invalid choice: 7"]),
        (["--vad-mode", "7"], ["unrecognized arguments: --vad-mode 7"]),
        (["--vad-frame-ms", "25"], ["--vad-frame-ms", "invalid choice"]),
        (["--format", "xml"], ["--format", "invalid choice: 'xml'"]),
        (["--output", "both"], ["--output", "invalid choice"]),
        (["--min-speech-ms", "-3"], ["--min-speech-ms", "at least 0, got -3"]),
        (["--start-pad-ms", "1e3"], ["--start-pad-ms", "invalid int value"]),
        (["--end-pad-ms", "-1"], ["--end-pad-ms", "at least 0"]),
        (["--speech-ratio", "nan"], ["--speech-ratio", "not a finite number"]),
        (["--speech-ratio", "1.5"], ["--speech-ratio", "must be in [0, 1]"]),
        (["--max-segment-s", "0"], ["--max-segment-s", "more than 0"]),
        (["--max-segment-s", "inf"], ["--max-segment-s", "not a finite number"]),
        (["--max-segment-s", "0.05"], ["max segment length 0.05 s is too short"]),
        (["--hangover-ms", "5"], ["hangover (5 ms) is shorter than one VAD frame"]),
        (["--max-seconds", "-2"], ["--max-seconds", "more than 0, got -2"]),
        (["--max-seconds", "nan"], ["--max-seconds", "not a finite number"]),
        (["--practice", "0"], ["--practice", "at least 1"]),
        (["--gain", "loud"], ["--gain 'loud'"]),
        (["--gain", "inf,1"], ["--gain 'inf,1'", "finite"]),
        (["--gain", "0.5,-0.5"], ["MAX > MIN"]),
        (["--gain=-1,1", "--enrol", "x.wav", "--gain", "auto"], ["--enrol", "--gain auto"]),
    ],
)
def test_a_bad_option_value_exits_2(tmp_path, capsys, files, args, words) -> None:
    """Checked before anything is read: a missing bundle does not hide the bad value."""
    code, out, err = run(capsys, "--model", tmp_path / "none", "--wav", files["ok.wav"], *args)
    clean_error(code, out, err, 2, *words)


def test_the_umbrella_command_exits_2_on_a_bad_value(capsys, files) -> None:
    from deepser.cli import main as deepser

    with pytest.raises(SystemExit) as exit_:
        deepser(["recognize", "--model", "none", "--wav", "x.wav", "--max-seconds", "-1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "deepser recognize: error: argument --max-seconds: must be more than 0" in err


# ------------------------------------------------------------------------- outputs


def test_an_output_under_a_file_exits_1_before_the_model_loads(tmp_path, capsys, files) -> None:
    (tmp_path / "a-file").write_text("x")
    code, out, err = recognise(capsys, files["ok.wav"], "--log", tmp_path / "a-file/t.csv")
    clean_error(code, out, err, 1, "a-file", "not a folder")
    code, out, err = recognise(capsys, files["ok.wav"], "--jsonl", tmp_path)
    clean_error(code, out, err, 1, "is a folder", "--jsonl")
    code, out, err = recognise(capsys, files["ok.wav"], "--out-dir", tmp_path / "a-file")
    clean_error(code, out, err, 1, "a-file", "--out-dir needs a folder")


def test_an_output_in_a_missing_folder_is_created(tmp_path, capsys, files) -> None:
    log = tmp_path / "new" / "deeper" / "t.csv"
    code, out, err = recognise(capsys, files["ok.wav"], "--log", log, "-q")
    assert code == 0 and out == "" and err == "", err
    assert_bursts_found(pd.read_csv(log))


def test_a_closed_stdout_pipe_ends_quietly(capsys, files, monkeypatch) -> None:
    """``deepser-recognize file.wav | head -1``: the reader goes away; exit 141, no traceback."""

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code, _, err = recognise(capsys, files["ok.wav"], "-q")
    assert code == 141 and err == "", err


# ------------------------------------------------------------------------- odd but valid: 0


@pytest.mark.parametrize(
    "name", ["ok.wav", "stereo8k.wav", "pcm24.wav", "double.wav", "vorbis.ogg"]
)
def test_other_formats_rates_and_channels_give_the_same_segments(capsys, files, name) -> None:
    code, out, err = recognise(capsys, files[name], "-q")
    assert code == 0 and err == "", err
    assert_bursts_found(timeline(out))


def test_a_file_shorter_than_one_vad_frame_has_no_segment(capsys, files) -> None:
    code, out, err = recognise(capsys, files["tiny.wav"])
    assert code == 0 and "Traceback" not in err, err
    assert out.strip() == timeline(out).columns.str.cat(sep=",")  # the header only
    assert "0 segment(s) recognised" in err


def test_max_seconds_stops_each_file_there(capsys, files) -> None:
    code, out, err = recognise(capsys, files["ok.wav"], "--max-seconds", "2.6", "-q")
    assert code == 0, err
    table = timeline(out)
    assert len(table) == 1 and table["end_s"].max() <= 2.6  # the second burst starts at 3.2 s


def test_whole_file_mode_refuses_and_repairs_nan_too(capsys, files) -> None:
    clean_error(*recognise(capsys, files["nan.wav"], "--whole-file"), 1, "nan.wav", "non-finite")
    code, out, err = recognise(capsys, files["nan.wav"], "--whole-file", "--repair-nonfinite")
    assert code == 0 and "replaced with 0" in err and len(timeline(out)) == 1


# ------------------------------------------------------------------------- library and workflow


def test_load_audio_refuses_non_finite_samples(files) -> None:
    from deepser.corpus.audio import AudioStream, load_audio, read_audio
    from deepser.errors import AudioError

    with pytest.raises(AudioError, match=r"10 non-finite samples \(NaN or Inf\)") as info:
        load_audio(files["nan.wav"], SR)
    assert info.value.path == str(files["nan.wav"])
    y, n = read_audio(files["nan.wav"], 22050, repair_nonfinite=True)
    assert n == 10 and np.isfinite(y).all()
    stream = AudioStream(files["inf.wav"], 8000, repair_nonfinite=True, block_frames=4096)
    assert stream.scan_nonfinite() == 2
    assert np.isfinite(np.concatenate(list(stream))).all() and stream.n_repaired == 2
    assert AudioStream(files["pcm24.wav"], SR).scan_nonfinite() == 0  # not a float file


def test_the_workflow_reports_a_nan_file_as_bad_audio(files, tmp_path) -> None:
    """Feature extraction (the workflow's per-shard step) lists the file with its reason
    (``on_bad_audio: skip``) or fails naming it (``fail``); the good file is extracted."""
    from deepser.errors import BadAudioError
    from deepser.features.extraction import extract_shard
    from deepser.features.registry import resolve_spec

    spec = resolve_spec({"type": "logmel", "sample_rate": SR, "n_mels": 8})
    rows = [("good", str(files["ok.wav"])), ("bad", str(files["nan.wav"]))]
    gain = {"method": "none"}
    bad = extract_shard(rows, spec, gain, tmp_path / "s.h5", on_bad_audio="skip")
    assert [(b["utt_id"], b["stage"]) for b in bad] == [("bad", "features")]
    assert "10 non-finite samples (NaN or Inf)" in bad[0]["reason"]
    with pytest.raises(BadAudioError, match="nan.wav: 10 non-finite samples"):
        extract_shard(rows, spec, gain, tmp_path / "f.h5", on_bad_audio="fail")


def test_the_recogniser_refuses_nan_chunks_in_the_library_too() -> None:
    from deepser.recognizer.engine import Engine
    from deepser.recognizer.pipeline import NonFiniteAudioError, Recognizer

    from .test_recognizer import StubModel

    info = json.loads((BUNDLE / "bundle.json").read_text())
    info["tasks"] = [{"name": "emotion", "type": "categorical", "classes": ["a", "b"]}]
    recognizer = Recognizer(Engine(StubModel(), info))
    recognizer.start()
    assert recognizer.feed(np.zeros(SR, np.float32)) == []
    chunk = np.zeros(800, np.float32)
    chunk[-1] = np.inf
    with pytest.raises(NonFiniteAudioError, match=r"1 non-finite audio samples .* 1\.050 s"):
        recognizer.feed(chunk)
    with pytest.raises(NonFiniteAudioError):
        recognizer.whole(np.full(SR, np.nan, np.float32))


def test_ctrl_c_in_a_subprocess_ends_without_a_traceback(files, tmp_path) -> None:
    """A real SIGINT while the file plays in real time: exit 130, the rows so far written."""
    long = tmp_path / "long.wav"
    x, _ = speech()
    sf.write(long, np.tile(x, 4), SR)
    log = tmp_path / "t.csv"
    cmd = [sys.executable, str(REPO / "scripts/recognize.py"), "--model", str(BUNDLE)]
    proc = subprocess.Popen(
        [*cmd, "--wav", str(long), "--realtime", "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:  # the first status line: the model is loaded, audio plays
            if "note:" in line or "segment" in line:
                break
        time.sleep(1.0)  # into the file's real-time playback
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted (Ctrl-C)" in err and out == ""
    assert log.read_text().startswith(HEADER)


# ------------------------------------------------------------------------- bundle vs model


def edited_bundle(tmp_path: Path, name: str, edit) -> Path:
    """A copy of :data:`BUNDLE` under ``tmp_path/name`` with ``edit(bundle.json data)``."""
    folder = tmp_path / name
    shutil.copytree(BUNDLE, folder)
    data = json.loads((folder / "bundle.json").read_text())
    edit(data)
    (folder / "bundle.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(
    "classes, words",
    [
        (["angry", "happy", "neutral"], ["has 4 units", "lists 3 classes"]),
        (["angry", "happy", "neutral", "sad", "bored"], ["has 4 units", "lists 5 classes"]),
    ],
)
def test_task_classes_that_do_not_match_the_model_exit_1(
    tmp_path, capsys, files, classes, words
) -> None:
    def edit(data):
        data["tasks"][0]["classes"] = classes

    bundle = edited_bundle(tmp_path, "bundle", edit)
    code, out, err = run(capsys, "--model", bundle, "--wav", files["ok.wav"], "--output", "label")
    clean_error(code, out, err, 1, "task emotion", *words)


def test_a_fused_bundle_refuses_outside_members_and_other_classes(tmp_path) -> None:
    from deepser.bundle import read_fusion
    from deepser.errors import BundleError

    fused = tmp_path / "fused"
    edited_bundle(fused / "members", "a", lambda data: None)

    def rename(data):
        data["tasks"][0]["classes"] = ["happy", "angry", "neutral", "sad"]

    edited_bundle(fused / "members", "b", rename)
    edited_bundle(tmp_path, "outside", lambda data: None)
    task = json.loads((BUNDLE / "bundle.json").read_text())["tasks"][0]

    def write(members: list[str]) -> None:
        data = {"format_version": 1, "kind": "fusion", "fusion": "f", "method": "average"}
        data |= {"members": members, "tasks": [task], "params": {"emotion": {}}}
        (fused / "bundle.json").write_text(json.dumps(data))

    write(["members/a", "members/a"])
    assert read_fusion(fused).members == ["members/a", "members/a"]
    for member in ["../outside", str(tmp_path / "outside"), "."]:
        write(["members/a", member])
        with pytest.raises(BundleError, match="must be a sub-folder"):
            read_fusion(fused)
    write(["members/a", "members/b"])
    with pytest.raises(BundleError, match="task emotion has classes"):
        read_fusion(fused)


# ------------------------------------------------------------------------- closed std streams


def test_a_closed_stdout_needs_a_log(tmp_path, capsys, files, monkeypatch) -> None:
    """``>&-``: Python starts with ``sys.stdout`` None; --log still works, else exit 1."""
    monkeypatch.setattr(sys, "stdout", None)
    log = tmp_path / "t.csv"
    code, _, err = recognise(capsys, files["ok.wav"], "-q", "--log", log)
    assert code == 0 and "Traceback" not in err, err
    assert_bursts_found(timeline(log.read_text()))
    code, _, err = recognise(capsys, files["ok.wav"], "-q")
    assert code == 1 and "Traceback" not in err, err
    assert err.startswith(f"{PROG}: error: stdout is closed"), err


def test_a_closed_stderr_keeps_status_lines_off_stdout(files) -> None:
    """``2>&-``: the status lines go nowhere; stdout holds the timeline alone."""
    import os

    cmd = [sys.executable, str(REPO / "scripts/recognize.py"), "--model", str(BUNDLE)]
    proc = subprocess.run(
        [*cmd, "--wav", str(files["ok.wav"])],
        stdout=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(2),
    )
    assert proc.returncode == 0
    assert_bursts_found(timeline(proc.stdout))
