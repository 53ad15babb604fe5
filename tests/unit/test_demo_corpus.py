"""Tests for the synthetic demo corpus (deepser.corpus.demo, deepser demo-corpus)."""

from __future__ import annotations

import csv
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from deepser.cli import main
from deepser.corpus.demo import EMOTIONS, synthesize_corpus

N_SPEAKERS = 4
N_UTT = 4
COLUMNS = [
    "path",
    "emotion",
    "speaker",
    "gender",
    "arousal",
    "valence",
    "arousal_score",
    "duration_s",
]
AROUSAL = {"angry": "high", "happy": "high", "neutral": "mid", "sad": "low"}
VALENCE = {"angry": "negative", "happy": "positive", "neutral": "neutral", "sad": "negative"}


# --------------------------------------------------------------------------- helpers
def _read_meta(meta: Path) -> list[dict[str, str]]:
    with open(meta, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    m = 1 + (len(x) - n) // hop
    return x[np.arange(n)[None, :] + hop * np.arange(m)[:, None]]


def _f0_track(x: np.ndarray, sr: int, fmin: float = 70.0, fmax: float = 400.0) -> np.ndarray:
    """Crude F0 (Hz) of voiced frames via normalised autocorrelation."""
    fr = _frames(x, int(0.04 * sr), int(0.01 * sr))
    fr = fr - fr.mean(axis=1, keepdims=True)
    energy = np.sqrt(np.mean(fr**2, axis=1))
    n = fr.shape[1]
    spec = np.fft.rfft(fr * np.hanning(n), 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
    ac = ac / np.maximum(ac[:, :1], 1e-12)
    lo, hi = int(sr / fmax), int(sr / fmin)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(lag)), lag]
    voiced = (peak > 0.45) & (energy > energy.max() * 10 ** (-25 / 20))
    return sr / lag[voiced]


def _features(x: np.ndarray, sr: int) -> np.ndarray:
    """[log RMS, median F0 (st), F0 std (st), syllable rate, spectral centroid (kHz)]."""
    fr = _frames(x, int(0.025 * sr), int(0.01 * sr))
    e = np.sqrt(np.mean(fr**2, axis=1)) + 1e-9
    edb = 20 * np.log10(e)
    active = edb > edb.max() - 35
    log_rms = 10 * np.log10(np.mean(e[active] ** 2))
    semitones = 12 * np.log2(_f0_track(x, sr))
    smooth = signal.lfilter(np.ones(5) / 5, [1.0], edb)
    peaks, _ = signal.find_peaks(smooth, prominence=4, distance=8)
    idx = np.flatnonzero(active)
    rate = np.sum(active[peaks]) / ((idx[-1] - idx[0] + 1) * 0.01)
    power = np.abs(np.fft.rfft(fr[active] * np.hanning(fr.shape[1]), axis=1)) ** 2
    freqs = np.fft.rfftfreq(fr.shape[1], 1 / sr)
    centroid = np.sum(power.sum(0) * freqs) / power.sum() / 1000
    return np.array([log_rms, np.median(semitones), np.std(semitones), rate, centroid])


def _nearest_centroid(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray) -> np.ndarray:
    labels = np.array(EMOTIONS)
    cents = np.stack([xtr[ytr == e].mean(axis=0) for e in labels])
    return labels[np.argmin(((xte[:, None, :] - cents[None]) ** 2).sum(-1), axis=1)]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus_a") / "nested" / "demo"  # must be created
    meta = synthesize_corpus(out, seed=7, n_speakers=N_SPEAKERS, utterances_per_emotion=N_UTT)
    assert meta == out / "meta.tsv"
    return out


@pytest.fixture(scope="module")
def rows(corpus: Path) -> list[dict[str, str]]:
    return _read_meta(corpus / "meta.tsv")


@pytest.fixture(scope="module")
def audio(corpus: Path, rows: list[dict[str, str]]) -> dict[str, tuple[np.ndarray, int]]:
    out = {}
    for r in rows:
        pcm, sr = sf.read(corpus / r["path"], dtype="int16")
        out[r["path"]] = (pcm, sr)
    return out


@pytest.fixture(scope="module")
def features(rows: list[dict[str, str]], audio: dict[str, tuple[np.ndarray, int]]) -> np.ndarray:
    return np.stack([_features(audio[r["path"]][0] / 32768.0, audio[r["path"]][1]) for r in rows])


# --------------------------------------------------------------------------- tests
def test_deterministic_bytes(corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "b"
    synthesize_corpus(other, seed=7, n_speakers=N_SPEAKERS, utterances_per_emotion=N_UTT)
    files_a = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    assert files_a == files_b
    assert len(files_a) == N_SPEAKERS * len(EMOTIONS) * N_UTT + 1
    for rel in files_a:
        assert (corpus / rel).read_bytes() == (other / rel).read_bytes(), rel


def test_seed_changes_output(corpus: Path, tmp_path: Path) -> None:
    synthesize_corpus(tmp_path, seed=8, n_speakers=1, utterances_per_emotion=1)
    rel = Path("wav/spk01/spk01_angry_01.wav")
    assert (tmp_path / rel).read_bytes() != (corpus / rel).read_bytes()


def test_layout_and_meta(corpus: Path, rows: list[dict[str, str]]) -> None:
    text = (corpus / "meta.tsv").read_bytes()
    assert b"\r" not in text and text.endswith(b"\n")
    header = text.decode("utf-8").splitlines()[0].split("\t")
    assert header == COLUMNS
    assert len(rows) == N_SPEAKERS * len(EMOTIONS) * N_UTT
    paths = [r["path"] for r in rows]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert not [p for p in corpus.rglob(".*")], "temporary files left behind"

    speakers = sorted({r["speaker"] for r in rows})
    assert speakers == [f"spk{i:02d}" for i in range(1, N_SPEAKERS + 1)]
    genders = {r["speaker"]: r["gender"] for r in rows}
    assert sorted(genders.values()) == sorted(["female", "male"] * (N_SPEAKERS // 2))
    for r in rows:
        spk, emo = r["speaker"], r["emotion"]
        assert emo in EMOTIONS
        assert r["path"].startswith(f"wav/{spk}/{spk}_{emo}_")
        assert r["path"].endswith(".wav") and (corpus / r["path"]).is_file()
        assert r["arousal"] == AROUSAL[emo] and r["valence"] == VALENCE[emo]
        for col in ("arousal_score", "duration_s"):
            assert len(r[col].split(".")[1]) == 3
        assert -1.0 <= float(r["arousal_score"]) <= 1.0
    for spk in speakers:
        for emo in EMOTIONS:
            n = sum(r["speaker"] == spk and r["emotion"] == emo for r in rows)
            assert n == N_UTT
    scores = {
        e: np.mean([float(r["arousal_score"]) for r in rows if r["emotion"] == e]) for e in EMOTIONS
    }
    assert scores["sad"] < scores["neutral"] < scores["happy"] < scores["angry"]


def test_audio_format_duration_and_levels(
    corpus: Path, rows: list[dict[str, str]], audio: dict[str, tuple[np.ndarray, int]]
) -> None:
    for r in rows:
        with wave.open(str(corpus / r["path"]), "rb") as wf:
            assert (wf.getnchannels(), wf.getsampwidth(), wf.getframerate()) == (1, 2, 16000)
        pcm, sr = audio[r["path"]]
        assert pcm.ndim == 1 and pcm.dtype == np.int16 and sr == 16000
        dur = pcm.size / sr
        assert 1.0 <= dur <= 3.0
        assert float(r["duration_s"]) == pytest.approx(dur, abs=1e-3)
        x = pcm.astype(np.float64) / 32768.0
        assert np.max(np.abs(x)) < 0.97, "clipping"
        assert 0.05 < np.max(np.abs(x)), "too quiet"
        # low-level noise (about -60 dBFS) before and after the speech
        for edge in (x[: int(0.1 * sr)], x[-int(0.1 * sr) :]):
            edge_db = 10 * np.log10(np.mean(edge**2))
            assert -70 < edge_db < -50
    neutral = [audio[r["path"]][0] for r in rows if r["emotion"] == "neutral"]
    act_db = [_features(p / 32768.0, 16000)[0] for p in neutral]
    assert -32 < np.median(act_db) < -18


def test_female_higher_f0_than_male(rows: list[dict[str, str]], features: np.ndarray) -> None:
    spk = np.array([r["speaker"] for r in rows])
    gender = {r["speaker"]: r["gender"] for r in rows}
    med = {s: np.median(features[spk == s, 1]) for s in np.unique(spk)}
    fem = [m for s, m in med.items() if gender[s] == "female"]
    mal = [m for s, m in med.items() if gender[s] == "male"]
    assert min(fem) - max(mal) > 5.0  # semitones: female > male by a clear margin
    # the speaker (gender) difference is larger than the angry-vs-happy difference
    emo = np.array([r["emotion"] for r in rows])
    for s in med:
        m = spk == s
        angry = np.median(features[m & (emo == "angry"), 1])
        happy = np.median(features[m & (emo == "happy"), 1])
        assert abs(angry - happy) < min(fem) - max(mal)


def test_loudness_order_within_speaker(rows: list[dict[str, str]], features: np.ndarray) -> None:
    spk = np.array([r["speaker"] for r in rows])
    emo = np.array([r["emotion"] for r in rows])
    for s in np.unique(spk):
        level = {e: np.mean(features[(spk == s) & (emo == e), 0]) for e in EMOTIONS}
        assert level["angry"] > level["neutral"] > level["sad"], (s, level)
        assert level["angry"] - level["sad"] > 6.0
        rate = {e: np.mean(features[(spk == s) & (emo == e), 3]) for e in EMOTIONS}
        assert rate["angry"] > rate["sad"], (s, rate)


def test_learnable_across_speakers_but_not_from_raw_f0(
    rows: list[dict[str, str]], features: np.ndarray
) -> None:
    spk = np.array([r["speaker"] for r in rows])
    emo = np.array([r["emotion"] for r in rows])
    z = features.copy()
    for s in np.unique(spk):  # per-speaker standardisation (as in usual SER practice)
        m = spk == s
        z[m] = (features[m] - features[m].mean(0)) / (features[m].std(0) + 1e-9)
    first = np.isin(spk, ["spk01", "spk02"])  # one female + one male per fold

    def cv_accuracy(x: np.ndarray) -> float:
        hits = [_nearest_centroid(x[tr], emo[tr], x[~tr]) == emo[~tr] for tr in (first, ~first)]
        return float(np.mean(np.concatenate(hits)))

    acc = cv_accuracy(z)
    assert acc > 0.5, acc  # chance is 0.25
    raw_f0 = cv_accuracy(features[:, 1:2])
    assert raw_f0 < 0.75, raw_f0


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo-corpus", "--help"])
    assert exc.value.code == 0
    assert "--utterances-per-emotion" in capsys.readouterr().out
    out = tmp_path / "cli"
    args = ["demo-corpus", str(out), "--seed", "3", "--n-speakers", "2"]
    args += ["--utterances-per-emotion", "1"]
    assert main(args) == 0
    assert len(_read_meta(out / "meta.tsv")) == 2 * len(EMOTIONS)
    with pytest.raises(SystemExit):
        main(["demo-corpus", str(out), "--n-speakers", "0"])
