"""Live input for real: PyAudio capturing from a virtual ALSA device, and Ctrl-C.

The capture device is ALSA's ``file`` plugin reading a known headerless 16-bit PCM file (no
sound card or kernel module needed), selected through ``$HOME/.asoundrc`` of a temporary HOME.
That device is *not* paced in real time (reads return at once) and, past the end of the file,
returns stale data, so captures are bounded with ``--max-seconds``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ..helpers import REPO
from .test_recognizer import utterance_stream

if os.environ.get("DEEPSER_REQUIRE_LIVE"):  # CI: the live path must run, never skip
    import pyaudio  # noqa: F401
else:
    pytest.importorskip(
        "pyaudio",
        reason="PyAudio is not installed (pip install 'deepser[live]'; needs apt portaudio19-dev)",
    )

pytestmark = pytest.mark.slow

ASOUNDRC = """\
pcm.!default {{ type asym capture.pcm "wavin" playback.pcm "null" }}
pcm.wavin {{ type file slave.pcm "null" file "/dev/null" infile "{raw}" format "raw" }}
"""


@pytest.fixture(scope="module")
def bundle(reference: Path) -> Path:
    return reference / "results/experiments/exp/final"


@pytest.fixture(scope="module")
def audio(tmp_path_factory, reference: Path) -> tuple[Path, Path, Path, int]:
    """(HOME with .asoundrc, the same audio as a wav, the raw file, number of samples)."""
    x, _ = utterance_stream(reference, 4, seed=3)
    pcm = np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)
    home = tmp_path_factory.mktemp("alsa-home")
    raw = home / "known.raw"
    pcm.tofile(raw)
    wav = home / "known.wav"
    sf.write(wav, pcm, 16000, subtype="PCM_16")
    (home / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    return home, wav, raw, pcm.size


def recognize(*args, home: Path | None = None, **kwargs) -> subprocess.Popen:
    env = dict(os.environ)
    if home is not None:
        env["HOME"] = str(home)
    cmd = [sys.executable, str(REPO / "scripts/recognize.py"), *map(str, args)]
    return subprocess.Popen(cmd, env=env, text=True, **kwargs)


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.1)


def interrupt_when(proc: subprocess.Popen, predicate) -> None:
    """Send Ctrl-C (SIGINT) once ``predicate()`` holds, and wait for the process to end."""
    try:
        wait_for(predicate)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_microphone_capture_gives_the_files_timeline(bundle: Path, audio, tmp_path: Path):
    home, wav, _, n = audio
    devices = recognize("--list-devices", home=home, stdout=subprocess.PIPE)
    listing, _ = devices.communicate(timeout=120)
    assert devices.returncode == 0 and "wavin" in listing and "(default)" in listing
    live, offline = tmp_path / "live.csv", tmp_path / "file.csv"
    mic = recognize(
        "--model", bundle, "--mic", "--max-seconds", n / 16000, "--log", live,
        home=home, stderr=subprocess.PIPE,
    )  # fmt: skip
    # the same audio from the file, recognised at the same time by a second process
    ref = recognize("--model", bundle, "--wav", wav, "--log", offline, stderr=subprocess.PIPE)
    _, err = mic.communicate(timeout=300)
    assert mic.returncode == 0, err
    assert "Traceback" not in err and "ALSA lib" not in err  # PortAudio's chatter is hidden
    assert f"captured {n / 16000:.1f} s" in err and "0 input overflow(s)" in err
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    a, b = pd.read_csv(live), pd.read_csv(offline)
    assert len(a) == 4
    pd.testing.assert_frame_equal(a, b)  # bit-exact capture -> the same timeline


def test_ctrl_c_stops_live_capture_and_keeps_the_log(bundle: Path, audio, tmp_path: Path):
    """No --max-seconds: the unpaced device then outruns the recogniser (stale data past the
    file's end), so lost chunks are counted; Ctrl-C ends cleanly with the log flushed."""
    home = audio[0]
    log, errf = tmp_path / "live.csv", tmp_path / "err.txt"
    with errf.open("w") as err_stream:
        proc = recognize("--model", bundle, "--mic", "--log", log, home=home, stderr=err_stream)
        interrupt_when(
            proc, lambda: len(log.read_text().splitlines()) >= 3 if log.exists() else False
        )
    err = errf.read_text()
    assert proc.returncode == 0, err
    assert "stopped (Ctrl-C)" in err and "Traceback" not in err
    assert "chunk(s) dropped" in err and "input overflow(s)" in err
    table = pd.read_csv(log)
    assert len(table) >= 2 and table["end_s"].is_monotonic_increasing


def test_ctrl_c_on_a_realtime_file_keeps_the_rows_so_far(bundle: Path, audio, tmp_path: Path):
    # the 4 utterances three times over: a recogniser running late on a loaded machine (it
    # then catches up unpaced) still has rows to go when the Ctrl-C arrives
    pcm, _ = sf.read(audio[1], dtype="int16")
    wav = tmp_path / "long.wav"
    sf.write(wav, np.tile(pcm, 3), 16000, subtype="PCM_16")
    log, errf = tmp_path / "rt.csv", tmp_path / "err.txt"
    with errf.open("w") as err_stream:
        proc = recognize("--model", bundle, "--wav", wav, "--realtime", "--log", log,
                         stderr=err_stream)  # fmt: skip
        interrupt_when(proc, lambda: log.exists() and len(log.read_text().splitlines()) >= 2)
    err = errf.read_text()
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err
    table = pd.read_csv(log)
    assert 1 <= len(table) < 12  # stopped before the end of the 12 utterances
