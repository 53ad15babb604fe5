"""A file's emotion timeline as a picture (``deepser recognize --plot FILE.png|.html``): per
task, the recognised segments as coloured bands labelled with their class and the class
probabilities over time; beneath, the file's energy with the segments shaded. ``.html`` is a
self-contained page: the picture (embedded) and the table of segments."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from deepser.files import atomic_path, write_text
from deepser.tasks import is_categorical

PLOT_SUFFIXES = (".png", ".html")
_COLOURS = (
    "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def energy_envelope(path: str | Path, hop_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, level in dBFS) of a file's mono mix per ``hop_s``, read block by block
    (memory does not grow with the file's length)."""
    info = sf.info(str(path))
    hop = max(1, int(round(hop_s * info.samplerate)))
    levels = []
    with sf.SoundFile(str(path)) as f:
        for block in f.blocks(blocksize=hop * 1000, dtype="float32", always_2d=True):
            y = block.mean(axis=1)
            n = len(y) // hop * hop
            if n:
                frames = y[:n].reshape(-1, hop)
                levels.append(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)))
            if len(y) > n:
                levels.append(np.array([np.sqrt(np.mean(y[n:].astype(np.float64) ** 2))]))
    level = np.concatenate(levels) if levels else np.zeros(0)
    db = 20 * np.log10(np.maximum(level, 1e-5))
    return np.arange(len(db)) * hop / info.samplerate, db


def _colour(k: int) -> str:
    return _COLOURS[k % len(_COLOURS)]


def draw_timeline(
    rows: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    envelope: tuple[np.ndarray, np.ndarray],
    title: str,
):
    """The timeline figure (matplotlib ``Figure``, Agg canvas) of timeline ``rows`` (the
    recogniser's output rows with probabilities)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    times, db = envelope
    end = max([float(times[-1]) if len(times) else 0.0] + [float(r["end_s"]) for r in rows])
    end = end or 1.0
    fig = Figure(figsize=(min(24.0, 8.0 + end / 10.0), 2.0 + 2.2 * len(tasks) + 1.6))
    FigureCanvasAgg(fig)
    ratios = [2.2] * len(tasks) + [1.6]
    axes = fig.subplots(len(tasks) + 1, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    axes = np.atleast_1d(axes)
    for ax, task in zip(axes[:-1], tasks, strict=False):
        name = task["name"]
        if is_categorical(task):
            classes = [str(c) for c in task["classes"]]
            for r in rows:
                label = str(r[name])
                k = classes.index(label) if label in classes else None
                colour = "#bbbbbb" if k is None else _colour(k)
                # the band sits above the probabilities (y 1.035-1.15), the class inside it
                ax.axvspan(r["start_s"], r["end_s"], ymin=0.9, ymax=1.0, color=colour, lw=0)
                ax.text(
                    (r["start_s"] + r["end_s"]) / 2, 1.092, label, ha="center", va="center",
                    fontsize=8, color="white" if k is not None else "black", clip_on=True,
                )  # fmt: skip
            for k, cls in enumerate(classes):
                xs, ys = [], []
                for r in rows:
                    p = r.get(f"{name}_p_{cls}")
                    if p is None:
                        continue
                    xs += [r["start_s"], r["end_s"], math.nan]
                    ys += [p, p, math.nan]
                ax.plot(xs, ys, color=_colour(k), lw=2)
            ax.set_ylim(0, 1.15)
            ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
            ax.set_ylabel(f"{name}\np(class)")
            handles = [Patch(color=_colour(k), label=c) for k, c in enumerate(classes)]
            ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        else:
            xs, ys = [], []
            for r in rows:
                if r.get(name) is not None:
                    xs += [r["start_s"], r["end_s"], math.nan]
                    ys += [r[name], r[name], math.nan]
            ax.plot(xs, ys, color="#1f77b4", lw=2)
            ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    ax = axes[-1]
    ax.plot(times, db, color="#444444", lw=0.8)
    for r in rows:
        ax.axvspan(r["start_s"], r["end_s"], color="#1f77b4", alpha=0.15, lw=0)
    ax.set_ylabel("level (dBFS)")
    ax.set_ylim(max(-100.0, float(db.min()) - 3 if len(db) else -100.0), 3)
    ax.set_xlabel("time (s); shaded: recognised speech segments")
    ax.set_xlim(0, end)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_timeline_plot(
    out: str | Path,
    rows: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    audio: str | Path,
    title: str | None = None,
) -> Path:
    """Write the timeline picture of ``audio``'s ``rows`` to ``out`` (``.png`` or ``.html``)."""
    out = Path(out)
    if out.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"{out}: a plot is .png or .html, not {out.suffix or 'no suffix'!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = draw_timeline(rows, tasks, energy_envelope(audio), title or Path(audio).name)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    png = buffer.getvalue()
    if out.suffix.lower() == ".png":
        with atomic_path(out) as tmp:
            Path(tmp).write_bytes(png)
        return out
    columns = list(rows[0]) if rows else ["start_s", "end_s"]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    name = html.escape(str(title or Path(audio).name))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{name}: emotion timeline</title><style>body{{font-family:sans-serif;"
        "margin:1.5em}table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid "
        "#ccc;padding:2px 6px;text-align:right}img{max-width:100%}</style></head><body>"
        f"<h1>{name}: emotion timeline</h1>"
        f'<img alt="emotion timeline" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}">'
        f"<h2>{len(rows)} segments</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></body></html>\n"
    )
    write_text(out, page)
    return out
