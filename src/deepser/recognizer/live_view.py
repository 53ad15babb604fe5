"""A live timeline in the browser (``deepser recognize --serve [HOST:]PORT``).

:class:`LiveView` serves one local page while the recogniser runs: the segments as coloured
bands along a time axis (one row per task), a table of segments and the current emotion (the
latest segment's label and probabilities), updated as each segment ends through server-sent
events. Everything the page needs is inline: it loads nothing from the internet.

Routes: ``/`` the page; ``/events`` the event stream (every row so far, then new rows as they
come, then an ``end`` event when the input ended; a reconnecting client resumes after its
``Last-Event-ID``); ``/timeline.json`` ``{"title", "tasks", "ended", "rows"}`` so far.
Standard library only: a :class:`~http.server.ThreadingHTTPServer` in a daemon thread.
"""

from __future__ import annotations

import html
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

from deepser.errors import RecognizerError
from deepser.tasks import is_categorical

DEFAULT_HOST = "127.0.0.1"
KEEPALIVE_S = 15.0  # a comment line this often: a client that went away is noticed
_DISCONNECTED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); the host defaults to
    127.0.0.1 and port 0 picks a free port. Raises ``ValueError`` with a one-line reason."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8765")
    if not host or any(c.isspace() or c in "/[]@?#" for c in host):
        raise ValueError(f"{text!r}: give PORT or HOST:PORT (e.g. 8765 or 127.0.0.1:8765)")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535 (0: any free one)")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _page_tasks(tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the page needs of each task: name, type and ordered classes."""
    out = []
    for task in tasks:
        if is_categorical(task):
            out.append({"name": task["name"], "type": "categorical", "classes": task["classes"]})
        else:
            out.append({"name": task["name"], "type": "continuous"})
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close() never waits for a client that stopped reading
    allow_reuse_port = False  # a port another server listens on is taken, never shared
    view: LiveView

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # no getfqdn(): a reverse lookup may hang without a network
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], _DISCONNECTED):  # a client that left: silence
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "deepser-live-view"
    protocol_version = "HTTP/1.0"  # one request per connection; the event stream ends with it

    def log_message(self, format: str, *args: Any) -> None:  # no access log
        pass

    def do_GET(self) -> None:
        view = self.server.view
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self._send(view.page().encode(), "text/html; charset=utf-8")
            elif path == "/timeline.json":
                self._send(json.dumps(view.snapshot()).encode(), "application/json")
            elif path == "/events":
                self._events(view)
            elif path == "/favicon.ico":
                self.send_response(HTTPStatus.NO_CONTENT)
                self.end_headers()
            else:
                self.send_error(HTTPStatus.NOT_FOUND)
        except _DISCONNECTED:
            pass

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _events(self, view: LiveView) -> None:
        try:
            sent = max(0, int(self.headers.get("Last-Event-ID", "0")))
        except ValueError:
            sent = 0
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.wfile.write(b"retry: 1000\n\n")
        while True:
            rows, ended, closed = view.wait_rows(sent, KEEPALIVE_S)
            if closed:
                return
            chunks = []
            for record in rows:
                sent += 1
                chunks.append(f"id: {sent}\nevent: row\ndata: {json.dumps(record)}\n\n")
            if ended:
                chunks.append(f"id: {sent}\nevent: end\ndata: {json.dumps({'rows': sent})}\n\n")
            self.wfile.write("".join(chunks).encode() if chunks else b": keepalive\n\n")
            if ended:
                return  # the page closes its EventSource on "end"


class LiveView:
    """The live timeline page of one recognition run.

    ``address`` is ``[HOST:]PORT`` (see :func:`parse_address`); ``tasks`` the bundle's tasks;
    ``warn`` prints a warning line (default: stderr) when the address is not a loopback one.
    """

    def __init__(
        self,
        address: str,
        tasks: Sequence[Mapping[str, Any]],
        title: str = "deepser recognize",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.tasks = _page_tasks(tasks)
        self.title = title
        self.warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
        self._rows: list[dict[str, Any]] = []
        self._ended = self._closed = False
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveView:
        """Listen and serve in a daemon thread; :class:`RecognizerError` if the address is bad
        or cannot be listened on (e.g. the port is taken)."""
        try:
            host, port = parse_address(self.address)
        except ValueError as exc:
            raise RecognizerError(f"--serve {exc}") from None
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise RecognizerError(
                f"--serve {self.address}: unknown host {host!r} ({exc.strerror})"
            ) from None
        family = infos[0][0]
        server_class = type("_Server", (_Server,), {"address_family": family})
        try:
            server = server_class(infos[0][4][:2], _Handler)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise RecognizerError(f"--serve {self.address}: cannot listen: {reason}") from None
        server.view = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        if not _is_loopback(self.host):
            self.warn(
                f"warning: the live view listens on {self.host}, not a loopback address: anyone "
                "who can reach this machine can open it (no password, no encryption)"
            )
        return self

    @property
    def host(self) -> str:
        """The address listened on."""
        if self._server is None:
            raise RuntimeError("the live view is not started")
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port listened on (the one picked for port 0)."""
        if self._server is None:
            raise RuntimeError("the live view is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The page's address (``http://HOST:PORT/``)."""
        host = self.host
        if host in ("0.0.0.0", "::"):  # every interface: this machine's own name works
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    def write(self, record: Mapping[str, Any]) -> None:
        """Add one timeline row (as :func:`deepser.recognizer.output.row` makes it, with
        probabilities) and send it to every client."""
        with self._cond:
            self._rows.append(dict(record))
            self._cond.notify_all()

    def finish(self) -> None:
        """The input ended: clients get an ``end`` event (the page says so); still served."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop serving (safe to call twice)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def n_rows(self) -> int:
        with self._cond:
            return len(self._rows)

    def wait_rows(self, after: int, timeout: float) -> tuple[list[dict[str, Any]], bool, bool]:
        """(rows after the first ``after``, ended, closed), waiting up to ``timeout`` s for
        something new."""
        with self._cond:
            self._cond.wait_for(
                lambda: len(self._rows) > after or self._ended or self._closed, timeout
            )
            return self._rows[after:], self._ended, self._closed

    def snapshot(self) -> dict[str, Any]:
        """What ``/timeline.json`` answers."""
        with self._cond:
            rows, ended = list(self._rows), self._ended
        return {"title": self.title, "tasks": self.tasks, "ended": ended, "rows": rows}

    def page(self) -> str:
        """The self-contained HTML page."""
        config = json.dumps({"title": self.title, "tasks": self.tasks})
        config = config.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return (
            _PAGE.replace("__TITLE__", html.escape(self.title))
            .replace("__CONFIG__", config)
            .replace("__COLOURS__", json.dumps(_COLOURS))
        )


# the --plot picture's colours
_COLOURS = [
    "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__ - live</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
#status { display: inline-block; padding: .15em .6em; border-radius: 1em; background: #e8f4e8; }
#status[data-state="ended"] { background: #e4e8f4; }
#status[data-state="lost"] { background: #f8e0e0; }
#current { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
.task-now { border: 1px solid #ccc; border-radius: 6px; padding: .6em 1em; min-width: 16em; }
.task-now h2 { font-size: .9em; margin: 0; color: #666; font-weight: normal; }
.label { font-size: 1.8em; font-weight: bold; }
.prob { display: flex; align-items: center; gap: .4em; font-size: .85em; }
.prob .name { width: 6em; }
.prob .bar { flex: 1; height: .8em; background: #eee; }
.prob .bar div { height: 100%; }
.prob .num { width: 3.5em; text-align: right; font-variant-numeric: tabular-nums; }
svg { width: 100%; display: block; }
svg text { font: 11px system-ui, sans-serif; }
h3 { font-size: 1em; margin: 1em 0 .2em; }
table { border-collapse: collapse; margin-top: 1em; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .2em .7em; text-align: left; }
table.nofile .file { display: none; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<div><span id="status" data-state="connecting">connecting</span>
 <span id="count" data-count="0">0 segment(s)</span></div>
<div id="current"></div>
<div id="timelines"></div>
<table id="segments" class="nofile"><thead></thead><tbody></tbody></table>
<script id="config" type="application/json">__CONFIG__</script>
<script>
"use strict";
const CONFIG = JSON.parse(document.getElementById("config").textContent);
const COLOURS = __COLOURS__;
const UNCERTAIN = "uncertain", GREY = "#9e9e9e";
const rows = [], groups = new Map();
let ended = false;
const $ = (id) => document.getElementById(id);
const SVGNS = (() => {  // the SVG namespace, from the parser: no URL in the page
  const probe = document.createElement("div");
  probe.innerHTML = "<svg></svg>";
  return probe.firstChild.namespaceURI;
})();

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4))
                                   : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(x, n) { return x === null || x === undefined ? "" : Number(x).toFixed(n); }
function colour(task, value) {
  if (task.type !== "categorical") {
    const v = Math.max(-1, Math.min(1, Number(value) || 0));
    return v >= 0 ? `rgba(31,119,180,${0.25 + 0.75 * v})` : `rgba(214,39,40,${0.25 - 0.75 * v})`;
  }
  const k = task.classes.indexOf(value);
  return k < 0 ? GREY : COLOURS[k % COLOURS.length];
}
function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

function header() {
  const tr = el("tr");
  tr.appendChild(el("th", {}, "#"));
  tr.appendChild(el("th", {class: "file"}, "file"));
  ["start (s)", "end (s)", "speech"].forEach((h) => tr.appendChild(el("th", {}, h)));
  for (const t of CONFIG.tasks) tr.appendChild(el("th", {}, t.name));
  $("segments").tHead.appendChild(tr);
}

function showCurrent(r) {
  const box = $("current");
  box.textContent = "";
  box.dataset.start = r.start_s;
  for (const t of CONFIG.tasks) {
    const card = el("div", {class: "task-now", "data-task": t.name});
    const where = r.file === undefined ? "" : ` of ${r.file}`;
    const when = `${fmt(r.start_s, 1)}-${fmt(r.end_s, 1)} s${where}`;
    card.appendChild(el("h2", {}, `${t.name} at ${when}`));
    const value = r[t.name];
    const label = el("div", {class: "label", id: `current-${t.name}`},
                     t.type === "categorical" ? String(value) : fmt(value, 3));
    label.style.color = colour(t, value);
    card.appendChild(label);
    if (t.type === "categorical") {
      for (const c of t.classes) {
        const p = r[`${t.name}_p_${c}`];
        if (p === undefined) continue;
        const line = el("div", {class: "prob", "data-class": c});
        line.appendChild(el("span", {class: "name"}, c));
        const bar = el("div", {class: "bar"}), fill = el("div");
        fill.style.width = `${Math.round(100 * (p || 0))}%`;
        fill.style.background = colour(t, c);
        bar.appendChild(fill);
        line.appendChild(bar);
        line.appendChild(el("span", {class: "num"}, fmt(p, 3)));
        card.appendChild(line);
      }
    }
    box.appendChild(card);
  }
}

function drawGroup(name) {
  const g = groups.get(name);
  const W = 1000, left = 90, right = 20, lane = 28, top = 8, n = CONFIG.tasks.length;
  const H = top + n * lane + 24, axisY = top + n * lane;
  const span = Math.max(10, ...g.rows.map((r) => r.end_s)) * 1.05;
  const x = (s) => left + (W - left - right) * s / span;
  const svg = el("svg:svg", {viewBox: `0 0 ${W} ${H}`, role: "img"});
  CONFIG.tasks.forEach((t, i) => {
    const y = top + i * lane;
    svg.appendChild(el("svg:rect", {x: left, y, width: W - left - right, height: lane - 6,
                                    fill: "#f4f4f4"}));
    svg.appendChild(el("svg:text", {x: 4, y: y + lane / 2}, t.name));
  });
  const step = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600].find((s) => span / s <= 12) || 1200;
  for (let s = 0; s <= span; s += step) {
    svg.appendChild(el("svg:line", {x1: x(s), x2: x(s), y1: top, y2: axisY, stroke: "#ccc"}));
    svg.appendChild(el("svg:text", {x: x(s), y: axisY + 14, "text-anchor": "middle"}, `${s} s`));
  }
  CONFIG.tasks.forEach((t, i) => {
    const y = top + i * lane;
    for (const r of g.rows) {
      const w = Math.max(1, x(r.end_s) - x(r.start_s)), v = r[t.name];
      const band = el("svg:rect", {x: x(r.start_s), y, width: w, height: lane - 6,
                                   fill: colour(t, v), class: "band", "data-task": t.name});
      band.appendChild(el("svg:title", {},
        `${fmt(r.start_s, 3)}-${fmt(r.end_s, 3)} s: ${t.type === "categorical" ? v : fmt(v, 3)}`));
      svg.appendChild(band);
      const label = t.type === "categorical" ? String(v) : fmt(v, 2);
      if (w > 7 * label.length) {
        const at = {x: x(r.start_s) + 3, y: y + lane / 2, fill: "#fff"};
        svg.appendChild(el("svg:text", at, label));
      }
    }
  });
  g.box.textContent = "";
  if (name !== null) g.box.appendChild(el("h3", {}, name));
  g.box.appendChild(svg);
}

function addRow(r) {
  rows.push(r);
  const name = r.file === undefined ? null : r.file;
  if (!groups.has(name)) {
    const box = el("div", {class: "timeline"});
    $("timelines").appendChild(box);
    groups.set(name, {box, rows: []});
  }
  groups.get(name).rows.push(r);
  if (name !== null) $("segments").classList.remove("nofile");
  drawGroup(name);
  const tr = el("tr", {class: "segment", "data-start": r.start_s, "data-end": r.end_s});
  tr.appendChild(el("td", {}, String(rows.length)));
  tr.appendChild(el("td", {class: "file"}, name === null ? "" : name));
  tr.appendChild(el("td", {class: "start"}, fmt(r.start_s, 3)));
  tr.appendChild(el("td", {class: "end"}, fmt(r.end_s, 3)));
  tr.appendChild(el("td", {}, fmt(r.speech_ratio, 2)));
  for (const t of CONFIG.tasks) {
    const v = r[t.name];
    const td = el("td", {class: `task-${t.name}`, "data-task": t.name});
    const sw = el("span", {class: "swatch"});
    sw.style.background = colour(t, v);
    td.appendChild(sw);
    td.appendChild(el("span", {class: "value"}, t.type === "categorical" ? String(v) : fmt(v, 3)));
    if (t.type === "categorical" && r[`${t.name}_p_${v}`] !== undefined) {
      td.title = `p = ${fmt(r[`${t.name}_p_${v}`], 3)}`;
    }
    tr.appendChild(td);
  }
  $("segments").tBodies[0].appendChild(tr);
  const count = $("count");
  count.dataset.count = rows.length;
  count.textContent = `${rows.length} segment(s)`;
  showCurrent(r);
}

header();
const source = new EventSource("events");
source.onopen = () => { if (!ended) setStatus("live", "live: waiting for speech"); };
source.addEventListener("row", (e) => {
  addRow(JSON.parse(e.data));
  if (!ended) setStatus("live", "live");
});
source.addEventListener("end", () => {
  ended = true;
  source.close();
  setStatus("ended", "input ended: the timeline is complete");
});
source.onerror = () => {
  if (!ended) setStatus("lost", "connection lost: is the recogniser still running?");
};
</script>
</body>
</html>
"""
