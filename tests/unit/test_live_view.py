"""The live timeline page (``deepser recognize --serve``): real HTTP against a
:class:`LiveView` on a free port: the page loads nothing from outside, a late client gets every
row so far then new ones live, the end event, bad addresses, a taken port, loopback by default,
and a recognition session that serves the page until Ctrl-C once the input ended."""

from __future__ import annotations

import _thread
import json
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deepser.errors import RecognizerError
from deepser.recognizer.live_view import LiveView, parse_address

TASKS = [
    {"name": "emotion", "type": "categorical", "classes": ["angry", "sad"]},
    {"name": "score", "type": "continuous"},
]


def record(i: int, label: str = "angry") -> dict:
    p = 0.8 if label == "angry" else 0.2
    return {
        "start_s": float(i), "end_s": i + 0.5, "speech_ratio": 1.0, "emotion": label,
        "emotion_p_angry": p, "emotion_p_sad": round(1 - p, 6), "score": 0.1 * i,
    }  # fmt: skip


@pytest.fixture
def view() -> Iterator[LiveView]:
    with LiveView("0", TASKS, "test <run>") as v:
        yield v


def get(url: str, headers: dict | None = None, timeout: float = 10.0):
    return urllib.request.urlopen(
        urllib.request.Request(url, headers=headers or {}), timeout=timeout
    )


def events(response) -> Iterator[tuple[str, str, str]]:
    """(id, event, data) of each server-sent event, until the stream ends."""
    fields: dict[str, str] = {}
    for raw in response:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in fields:
                yield fields.get("id", ""), fields.get("event", "message"), fields["data"]
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value


def test_the_page_is_self_contained(view: LiveView) -> None:
    with get(view.url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        page = response.read().decode()
    assert re.search(r"https?:|//[a-z0-9]", page, re.IGNORECASE) is None  # nothing from outside
    assert re.search(r"""(src|href)\s*=""", page) is None  # no script, style or link to load
    assert "test &lt;run&gt;" in page and "<run>" not in page  # the title is escaped
    config = re.search(r'<script id="config" type="application/json">(.*?)</script>', page, re.S)
    assert json.loads(config.group(1))["tasks"] == TASKS
    assert 'id="status"' in page and 'id="current"' in page and 'id="segments"' in page


def test_a_late_client_gets_every_row_so_far_then_new_ones_live(view: LiveView) -> None:
    view.write(record(0))
    view.write(record(1, "sad"))
    with get(view.url + "events") as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = events(response)
        got = [next(stream), next(stream)]
        assert [json.loads(d) for _, e, d in got] == [record(0), record(1, "sad")]
        assert [(i, e) for i, e, _ in got] == [("1", "row"), ("2", "row")]
        threading.Timer(0.2, view.write, [record(2)]).start()  # while the client waits
        started = time.monotonic()
        assert next(stream) == ("3", "row", json.dumps(record(2)))
        assert time.monotonic() - started < 5
        view.finish()
        assert next(stream)[1:] == ("end", json.dumps({"rows": 3}))
        assert list(stream) == []  # the stream ends after "end"


def test_a_reconnecting_client_resumes_after_its_last_event(view: LiveView) -> None:
    for i in range(3):
        view.write(record(i))
    view.finish()
    with get(view.url + "events", {"Last-Event-ID": "2"}) as response:
        got = list(events(response))
    assert [(i, e) for i, e, _ in got] == [("3", "row"), ("3", "end")]
    assert json.loads(got[0][2]) == record(2)


def test_timeline_json_holds_every_row_so_far(view: LiveView) -> None:
    view.write(record(0))
    with get(view.url + "timeline.json") as response:
        first = json.load(response)
    assert first == {"title": "test <run>", "tasks": TASKS, "ended": False, "rows": [record(0)]}
    view.write(record(1))
    view.finish()
    with get(view.url + "timeline.json") as response:
        second = json.load(response)
    assert second["ended"] is True and second["rows"] == [record(0), record(1)]


def test_unknown_paths_are_404(view: LiveView) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        get(view.url + "nothing")
    assert error.value.code == 404


def test_clients_that_go_away_are_no_error(view: LiveView, capfd) -> None:
    for _ in range(3):  # connect, read the head, leave
        sock = socket.create_connection((view.host, view.port), timeout=5)
        sock.sendall(b"GET /events HTTP/1.0\r\n\r\n")
        sock.recv(100)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, not a clean close
    for i in range(50):
        view.write(record(i))
        time.sleep(0.005)
    view.finish()
    with get(view.url + "events") as response:  # others are still served
        assert len(list(events(response))) == 51
    view.close()
    assert capfd.readouterr().err == ""


def test_loopback_by_default_and_a_warning_for_other_addresses() -> None:
    warnings: list[str] = []
    with LiveView("0", TASKS, warn=warnings.append) as view:
        assert view.host == "127.0.0.1" and view.port > 0
        assert view.url == f"http://127.0.0.1:{view.port}/"
    assert warnings == []
    with LiveView("0.0.0.0:0", TASKS, warn=warnings.append) as view:
        assert view.url == f"http://127.0.0.1:{view.port}/"
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0] and "\n" not in warnings[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8765", ("127.0.0.1", 8765)), ("0", ("127.0.0.1", 0)), ("localhost:80", ("localhost", 80)),
     ("0.0.0.0:8765", ("0.0.0.0", 8765)), ("[::1]:8765", ("::1", 8765))],
)  # fmt: skip
def test_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "http", "65536", "-1", "host:", ":80", "::1:80", "a b:80"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="port|HOST|IPv6"):
        parse_address(text)
    with pytest.raises(RecognizerError) as error:
        LiveView(text, TASKS).start()
    assert str(error.value).startswith("--serve ") and "\n" not in str(error.value)


def test_a_taken_port_is_a_one_line_error() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(RecognizerError, match=f"--serve {port}: cannot listen") as error:
            LiveView(str(port), TASKS).start()
    assert "\n" not in str(error.value)


def test_the_command_line_checks_serve(capsys) -> None:
    from deepser.cli.recognize import main

    with pytest.raises(SystemExit) as exit_:
        main(["--model", "x", "--wav", "a.wav", "--serve", "localhost:http"])
    assert exit_.value.code == 2
    assert "--serve" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# a session: the page gets the rows with probabilities, then is served until Ctrl-C


class FakeRecognizer:
    """Two segments per file, predicted with fixed probabilities."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.engine = SimpleNamespace(tasks=TASKS[:1], gain=None)
        self.segmenter = None

    def stream(self, source):
        from deepser.recognizer.engine import Prediction
        from deepser.recognizer.vad import Segment

        for k, p in enumerate((0.9, 0.55)):
            seg = Segment(k * 16000, k * 16000 + 8000, 16000, np.zeros(8000), 1.0, "end")
            yield Prediction(seg, {"emotion": np.array([p, 1 - p])})

    def flush(self):
        return []


class FakeSource:
    path = Path("a.wav")

    def close(self) -> None:
        pass


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt here, even in a suite started in the background (which
    inherits SIGINT ignored, so the simulated Ctrl-C would never arrive)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_session_serves_the_rows_until_ctrl_c(tmp_path: Path, capsys, monkeypatch) -> None:
    from deepser.recognizer import session

    views: list[LiveView] = []

    class Recorded(LiveView):
        def start(self) -> LiveView:
            views.append(self)
            return super().start()

    monkeypatch.setattr(session, "LiveView", Recorded)
    options = session.SessionOptions(
        log=str(tmp_path / "log.csv"), output="label", min_confidence=0.6, serve="0", quiet=True
    )
    seen: dict = {}

    def browse_then_ctrl_c() -> None:  # what a user does once the input ended
        try:
            end = time.monotonic() + 30
            while time.monotonic() < end:
                if views and views[0]._server is not None:
                    with get(views[0].url + "timeline.json") as response:
                        seen["timeline"] = json.load(response)
                    if seen["timeline"]["ended"]:
                        seen["url"] = views[0].url
                        break
                time.sleep(0.05)
        finally:
            _thread.interrupt_main()  # Ctrl-C

    threading.Thread(target=browse_then_ctrl_c, daemon=True).start()
    code = session.recognise_files(
        FakeRecognizer(), [("a.wav", FakeSource())], options, lambda message: None
    )
    assert code == 0
    err = capsys.readouterr().err
    assert f"live view: {seen['url']}" in err
    assert f"input ended; the live view stays at {seen['url']} until Ctrl-C" in err
    rows = seen["timeline"]["rows"]
    assert [r["emotion"] for r in rows] == ["angry", "uncertain"]  # --min-confidence
    assert rows[1]["emotion_p_angry"] == pytest.approx(0.55)  # probabilities despite "label"
    assert (tmp_path / "log.csv").read_text().splitlines() == [
        "start_s,end_s,speech_ratio,emotion", "0.0,0.5,1.0,angry", "1.0,1.5,1.0,uncertain"
    ]  # fmt: skip
    with pytest.raises(urllib.error.URLError):  # closed once Ctrl-C came
        get(seen["url"], timeout=2)
