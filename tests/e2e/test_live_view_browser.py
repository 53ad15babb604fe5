"""``deepser recognize --serve`` in a real browser: headless Chromium (Debian's ``chromium``)
driven by Playwright opens the live page of a running recogniser.

- live microphone input (the virtual ALSA device of ``test_recognizer_live.py``) until
  ``--max-seconds``: the page says the input ended and shows exactly the segments of the
  ``--log`` CSV; Ctrl-C then ends the process with status 0;
- a file played in real time: the page, opened before the first segment, updates as each
  segment ends, without a reload.

Skipped when Playwright or Chromium is missing, unless ``DEEPSER_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ..helpers import REPO
from .test_recognizer import utterance_stream

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ASOUNDRC = """\
pcm.!default {{ type asym capture.pcm "wavin" playback.pcm "null" }}
pcm.wavin {{ type file slave.pcm "null" file "/dev/null" infile "{raw}" format "raw" }}
"""


REQUIRE_BROWSER = os.environ.get("DEEPSER_REQUIRE_BROWSER") == "1"


def _browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        if importlib.util.find_spec("playwright") is None:
            raise ImportError
    except (ImportError, ValueError):
        return "Playwright is not installed (pip install playwright==1.65.2)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed ({CHROMIUM}: apt-get install chromium)"
    return None


MISSING = _browser_missing()
if MISSING and not REQUIRE_BROWSER:  # skip before the reference workflow runs for nothing
    pytest.skip(MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    if MISSING:
        pytest.fail(f"{MISSING} (DEEPSER_REQUIRE_BROWSER=1)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; ``page.errors`` collects its script errors."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def bundle(reference: Path) -> Path:
    return reference / "results/experiments/exp/final"


@pytest.fixture(scope="module")
def audio(tmp_path_factory, reference: Path) -> tuple[Path, Path, int]:
    """(HOME with .asoundrc capturing 4 utterances from a raw file, a 2-utterance wav, the
    raw file's number of samples)."""
    x, _ = utterance_stream(reference, 4, seed=3)
    pcm = np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)
    home = tmp_path_factory.mktemp("alsa-home")
    raw = home / "known.raw"
    pcm.tofile(raw)
    (home / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    short, _ = utterance_stream(reference, 2, seed=3)  # about 6 s
    wav = home / "short.wav"
    sf.write(wav, np.clip(np.rint(short * 32768), -32768, 32767).astype(np.int16), 16000)
    return home, wav, pcm.size


class Recogniser:
    """``scripts/recognize.py`` in the background, its stderr collected line by line."""

    def __init__(self, *args, home: Path | None = None) -> None:
        env = dict(os.environ)
        if home is not None:
            env["HOME"] = str(home)
        cmd = [sys.executable, str(REPO / "scripts/recognize.py"), *map(str, args)]
        self.proc = subprocess.Popen(cmd, env=env, text=True, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def url(self, timeout: float = 120.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(r"^live view: (http://\S+)$", self.err, re.MULTILINE)
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no live view URL on stderr:\n{self.err}")

    def ctrl_c(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def run() -> Iterator[type[Recogniser]]:
    started: list[Recogniser] = []

    class Tracked(Recogniser):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    yield Tracked
    for recogniser in started:
        recogniser.kill()


SHOWN_ROWS = """() => [...document.querySelectorAll("#segments tbody tr")].map((tr) => ({
  start: tr.querySelector(".start").textContent,
  end: tr.querySelector(".end").textContent,
  labels: Object.fromEntries([...tr.querySelectorAll("td[data-task]")].map(
    (td) => [td.dataset.task, td.querySelector(".value").textContent])),
}))"""


def test_the_page_shows_the_logged_segments_of_a_live_capture(
    bundle: Path, audio, page, run, tmp_path: Path
) -> None:
    if os.environ.get("DEEPSER_REQUIRE_LIVE"):  # CI: the live path must run, never skip
        import pyaudio  # noqa: F401
    else:
        pytest.importorskip(
            "pyaudio", reason="PyAudio is not installed (pip install 'deepser[live]')"
        )
    home, _, n = audio
    log = tmp_path / "live.csv"
    rec = run(
        "--model", bundle, "--mic", "--max-seconds", n / 16000, "--serve", "127.0.0.1:0",
        "--log", log, "-q", home=home,
    )  # fmt: skip
    url = rec.url()
    assert url.startswith("http://127.0.0.1:")
    page.goto(url)
    page.wait_for_selector('#status[data-state="ended"]', timeout=120_000)
    assert "input ended" in page.inner_text("#status")
    shown = page.evaluate(SHOWN_ROWS)
    table = pd.read_csv(log, keep_default_na=False)
    tasks = [c for c in table.columns if c not in ("start_s", "end_s", "speech_ratio")]
    tasks = [c for c in tasks if "_p_" not in c]
    assert len(table) >= 2 and len(shown) == len(table)
    for got, (_, want) in zip(shown, table.iterrows(), strict=True):
        assert float(got["start"]) == pytest.approx(want["start_s"], abs=5e-4)
        assert float(got["end"]) == pytest.approx(want["end_s"], abs=5e-4)
        assert got["labels"] == {t: str(want[t]) for t in tasks}
    assert page.get_attribute("#count", "data-count") == str(len(table))
    last = table.iloc[-1]
    for t in tasks:  # the current emotion: the last segment's
        assert page.inner_text(f"#current-{t}") == str(last[t])
    bands = page.locator("#timelines svg rect.band").count()
    assert bands == len(table) * len(tasks)  # one band per segment and task
    time.sleep(0.5)  # still served after the input ended
    assert "input ended; the live view stays at" in rec.err and rec.proc.poll() is None
    code = rec.ctrl_c()
    assert code == 0, rec.err
    assert "Traceback" not in rec.err and page.errors == []


def test_the_page_updates_as_segments_end(bundle: Path, audio, page, run, tmp_path: Path) -> None:
    _, wav, _ = audio
    log = tmp_path / "rt.csv"
    rec = run("--model", bundle, "--wav", wav, "--realtime", "--serve", "0", "--log", log, "-q")
    page.goto(rec.url())
    page.evaluate("window.notReloaded = true")
    seen: list[tuple[float, int, str | None]] = []  # (time, segments shown, current start)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        state = page.evaluate(
            """() => [Number(document.getElementById("count").dataset.count),
                     document.getElementById("current").dataset.start || null,
                     document.getElementById("status").dataset.state]"""
        )
        seen.append((time.monotonic(), state[0], state[1]))
        if state[2] == "ended":
            break
        time.sleep(0.1)
    assert seen[-1][1] == len(pd.read_csv(log)) >= 2, seen
    assert page.evaluate("window.notReloaded") is True
    counts = [c for _, c, _ in seen]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    first_at = {c: t for t, c, _ in reversed(seen)}  # when each count was first shown
    assert first_at[counts[-1]] - min(t for c, t in first_at.items() if c > 0) > 0.5
    assert len({s for _, _, s in seen if s is not None}) >= 2  # the current emotion changed
    assert rec.ctrl_c() == 0, rec.err
    assert page.errors == []


def test_the_page_draws_files_continuous_tasks_and_uncertain_labels(page) -> None:
    from deepser.recognizer.live_view import LiveView

    tasks = [
        {"name": "emotion", "type": "categorical", "classes": ["angry", "sad"]},
        {"name": "valence", "type": "continuous"},
    ]
    rows = [
        {"file": "a <b>.wav", "start_s": 0.5, "end_s": 1.5, "speech_ratio": 1.0,
         "emotion": "angry", "emotion_p_angry": 0.9, "emotion_p_sad": 0.1, "valence": -0.25},
        {"file": "c.wav", "start_s": 0.2, "end_s": 2.0, "speech_ratio": 0.8,
         "emotion": "uncertain", "emotion_p_angry": 0.45, "emotion_p_sad": 0.55, "valence": None},
    ]  # fmt: skip
    with LiveView("0", tasks, "two files") as view:
        view.write(rows[0])
        page.goto(view.url)
        page.wait_for_selector("#segments tbody tr")
        view.write(rows[1])
        view.finish()
        page.wait_for_selector('#status[data-state="ended"]')
        shown = page.evaluate(SHOWN_ROWS)
        files = page.locator("#segments tbody td.file").all_inner_texts()
        assert files == ["a <b>.wav", "c.wav"]  # shown as text, not markup
        assert [r["labels"] for r in shown] == [
            {"emotion": "angry", "valence": "-0.250"},
            {"emotion": "uncertain", "valence": ""},
        ]
        assert page.locator("#timelines h3").all_inner_texts() == ["a <b>.wav", "c.wav"]
        assert page.inner_text("#current-emotion") == "uncertain"
        grey = page.evaluate(
            """getComputedStyle(document.querySelector("#current-emotion")).color"""
        )
        assert grey == "rgb(158, 158, 158)"  # uncertain is grey
        probs = page.locator('#current [data-task="emotion"] .prob .num').all_inner_texts()
        assert probs == ["0.450", "0.550"]
    assert page.errors == []
