"""The Python WAV header parser agrees with libsndfile, and never accepts what it refuses;
audio_problems gives check_audio's reasons, in order, serially and in worker processes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepser.corpus.audio import check_audio
from deepser.corpus.probe import audio_problem, audio_problems, parse_wav_header, wav_frames
from deepser.errors import AudioError

SUBTYPES = ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"]


def write(path: Path, frames: int = 160, channels: int = 1, sr: int = 16000, **kw) -> Path:
    """A wav of a quiet tone (``subtype``, ``format`` as soundfile takes them)."""
    t = np.arange(frames) / sr
    y = np.repeat((0.1 * np.sin(2 * np.pi * 220 * t))[:, None], channels, axis=1)
    sf.write(path, y.astype(np.float32), sr, **kw)
    return path


def audio_reason(path: Path) -> str:
    """check_audio's reason for refusing ``path``."""
    with pytest.raises(AudioError) as err:
        check_audio(path)
    return err.value.reason


def reference(path: Path) -> tuple[int, int] | None:
    """check_audio's (frames, rate), None when it refuses the file."""
    try:
        return check_audio(path)
    except AudioError:
        return None


@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
@pytest.mark.parametrize(("frames", "channels", "sr"), [(160, 1, 16000), (51, 2, 44100)])
def test_plain_wavs_match_soundfile(
    tmp_path: Path, subtype: str, container: str, frames: int, channels: int, sr: int
) -> None:
    path = write(tmp_path / "a.wav", frames, channels, sr, subtype=subtype, format=container)
    info = sf.info(str(path))
    assert wav_frames(path) == (info.frames, info.samplerate) == (frames, sr)
    assert audio_problem(path) is None


def test_odd_sized_data_with_and_without_its_pad_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "a.wav", 3, subtype="PCM_24")  # 9 data bytes and a pad byte
    data = path.read_bytes()
    assert len(data) % 2 == 0 and wav_frames(path) == (3, 16000)
    path.write_bytes(data[:-1])  # no pad byte: still 3 frames for libsndfile
    assert wav_frames(path) == (3, 16000) == check_audio(path)


def chunk(marker: bytes, body: bytes) -> bytes:
    return marker + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def test_extra_chunks_before_the_data(tmp_path: Path) -> None:
    data = write(tmp_path / "a.wav", 100).read_bytes()
    at = data.index(b"data")
    info = chunk(b"LIST", b"INFO" + chunk(b"ISFT", b"Lavf61.7.100\0"))
    for extra in (info, chunk(b"JUNK", b"\0" * 28), chunk(b"PAD ", b"\0" * 3)):
        path = tmp_path / "b.wav"
        path.write_bytes(data[:at] + extra + data[at:])
        assert wav_frames(path) == (100, 16000) == check_audio(path)


@pytest.mark.parametrize(
    "change",
    [
        "truncated",
        "zero data",
        "huge data",
        "trailing chunk",
        "unknown chunk",
        "bad PEAK",
        "block align 0",
        "12 bits",
        "ulaw",
        "no fmt",
        "RIFX",
        "RF64",
        "short",
    ],
)
def test_unusual_or_broken_headers_go_to_libsndfile(tmp_path: Path, change: str) -> None:
    subtype = "FLOAT" if change == "bad PEAK" else "ULAW" if change == "ulaw" else "PCM_16"
    data = bytearray(write(tmp_path / "a.wav", 100, subtype=subtype).read_bytes())
    at = data.index(b"data")
    if change == "truncated":
        data = data[:-10]
    elif change in ("zero data", "huge data"):
        struct.pack_into("<I", data, at + 4, 0 if change == "zero data" else 0xFFFFFFFF)
    elif change == "trailing chunk":
        data += chunk(b"LIST", b"INFO")
    elif change == "unknown chunk":
        data[at:at] = chunk(b"abcd", b"1234")
    elif change == "bad PEAK":
        peak = data.index(b"PEAK")
        struct.pack_into("<I", data, peak + 4, 20)
    elif change == "block align 0":
        struct.pack_into("<H", data, 32, 0)  # fmt body at 20: tag, channels, rate, bytes/s
    elif change == "12 bits":
        struct.pack_into("<H", data, 34, 12)
    elif change == "no fmt":
        data[12:16] = b"fmx "
    elif change in ("RIFX", "RF64"):
        data[:4] = change.encode()
    elif change == "short":
        data = data[:11]
    path = tmp_path / "b.wav"
    path.write_bytes(bytes(data))
    assert wav_frames(path) is None
    problem = audio_problem(path)
    assert problem == (None if reference(path) else audio_reason(path))


def test_broken_files_give_check_audios_reasons(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.wav", 0)
    text = tmp_path / "text.wav"
    text.write_text("not audio\n")
    nothing = tmp_path / "nothing.wav"
    nothing.write_bytes(b"")
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    missing = tmp_path / "missing.wav"
    for path in (empty, text, nothing, folder, missing):
        assert wav_frames(path) is None
    assert audio_problem(empty) == "contains no samples" == audio_reason(empty)
    assert audio_problem(text) == audio_reason(text)
    assert audio_problem(text).startswith("unreadable audio (")
    assert audio_problem(nothing) == audio_reason(nothing)
    assert audio_problem(folder) == "is a folder, not an audio file"
    assert audio_problem(missing) == "file not found"


def test_other_formats_are_read_by_libsndfile(tmp_path: Path) -> None:
    flac = write(tmp_path / "a.flac", 100)
    assert wav_frames(flac) is None and audio_problem(flac) is None


def test_a_header_beyond_the_bytes_read_is_not_guessed() -> None:
    head = b"RIFF\0\0\0\0WAVE" + chunk(b"JUNK", b"\0" * 8)
    assert parse_wav_header(head, 10_000) is None


def test_parallel_checks_keep_the_order(tmp_path: Path) -> None:
    good = write(tmp_path / "good.wav", 10)
    empty = write(tmp_path / "empty.wav", 0)
    paths: list[str | Path] = []
    for i in range(60):
        paths.append(good if i % 7 else empty if i % 2 else tmp_path / f"missing{i}.wav")
    serial = audio_problems(paths, workers=1)
    assert serial == audio_problems(paths, workers=2, chunk=8, min_parallel=10)
    assert serial[0] == "file not found" and serial[7] == "contains no samples"
    assert serial.count(None) == len([i for i in range(60) if i % 7])
