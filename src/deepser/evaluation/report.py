"""Plots (matplotlib ``Figure`` objects with the Agg canvas, no pyplot state) and the HTML report.

Every function writes one file atomically (a temporary sibling renamed when complete). The HTML
report is self-contained: images are embedded as base64 ``data:`` URIs, the CSS is inline, there
is no script and no external reference, and every piece of text is escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepser.files import atomic_path, write_text

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
_MAX_ROWS = 500  # rows shown of a long table (rejected audio)


# ----------------------------------------------------------------------------------------- plots


def _plain(text: Any) -> str:
    """Text for matplotlib with ``$`` escaped, so names are never parsed as mathtext."""
    return str(text).replace("$", r"\$")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(max(n, 1) / cols), cols


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str = "Confusion matrix",
) -> Path:
    """Row-normalised confusion matrix (rows true, columns predicted) as a PNG heat map.

    Each cell shows the percentage of its true class and, below it, the count. A class with no
    true example has an empty (all 0 %) row."""
    cm = np.asarray(confusion, dtype=np.int64)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion has shape {cm.shape} but there are {k} classes")
    support = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
    size = 2.0 + 0.75 * k
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    im = ax.imshow(frac * 100, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of true class")
    labels = [_plain(c) for c in classes]
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), [f"{lab} ({n})" for lab, n in zip(labels, support[:, 0], strict=True)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (count)")
    ax.set_title(_plain(title))
    fontsize = 9 if k <= 8 else 7
    for i in range(k):
        for j in range(k):
            color = "white" if frac[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{100 * frac[i, j]:.1f}%\n{cm[i, j]}",
                ha="center",
                va="center",
                color=color,
                fontsize=fontsize,
            )
    return _save(fig, path)


def _read_history(history: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    if isinstance(history, pd.DataFrame):
        return history
    return pd.read_csv(history, sep=None, engine="python")


def best_epoch(history: pd.DataFrame) -> int | None:
    """Epoch of the row with the highest ``val_ua`` (lowest ``val_loss`` without it), or None."""
    epochs = history["epoch"] if "epoch" in history.columns else pd.Series(range(len(history)))
    for column, pick in (("val_ua", "idxmax"), ("val_loss", "idxmin")):
        if column in history.columns and history[column].notna().any():
            row = getattr(history[column].reset_index(drop=True), pick)()
            return int(epochs.iloc[row])
    return None


def plot_learning_curves(
    histories: Sequence[pd.DataFrame | str | os.PathLike],
    path: str | Path,
    labels: Sequence[str] | None = None,
    best_epochs: Sequence[int | None] | None = None,
) -> Path:
    """One panel per fold: training and validation loss (left axis), validation UA (right axis).

    ``history.csv`` columns ``epoch, loss, val_loss, val_ua``; whatever of those exists is
    plotted (other ``*loss`` columns, such as per-task losses, as thin lines). The best epoch (max
    ``val_ua``, else min ``val_loss``; or ``best_epochs``, the epochs training kept) is marked by
    a dashed line. Paths are read as CSV/TSV."""
    frames = [_read_history(h) for h in histories]
    labels = list(labels) if labels is not None else [f"fold {k}" for k in range(len(frames))]
    rows, cols = _grid(len(frames))
    fig = Figure(figsize=(4.6 * cols, 3.3 * rows), layout="constrained")
    if not frames:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no training history", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    for k, (df, label) in enumerate(zip(frames, labels, strict=True)):
        ax = fig.add_subplot(rows, cols, k + 1)
        x = df["epoch"] if "epoch" in df.columns else pd.Series(range(len(df)))
        handles = []
        for column in df.columns:
            if column == "epoch" or not str(column).endswith("loss"):
                continue
            main = column in ("loss", "val_loss")
            style = {"lw": 1.8 if main else 0.8, "alpha": 1.0 if main else 0.5}
            if column == "loss":
                style["color"] = "tab:blue"
            elif column == "val_loss":
                style["color"] = "tab:orange"
            (line,) = ax.plot(x, df[column], label=_plain(column), **style)
            handles.append(line)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if "val_ua" in df.columns:
            ax2 = ax.twinx()
            (line,) = ax2.plot(x, df["val_ua"], color="tab:green", lw=1.8, label="val_ua")
            ax2.set_ylabel("validation UA")
            ax2.set_ylim(0, 1)
            handles.append(line)
        best = best_epochs[k] if best_epochs is not None else best_epoch(df)
        if best is not None:
            marker = ax.axvline(best, color="tab:red", ls="--", lw=1, label=f"best epoch {best}")
            handles.append(marker)
        ax.set_title(_plain(label))
        if handles:
            ax.legend(handles=handles, fontsize=7, loc="upper right")
    return _save(fig, path)


def plot_class_distribution(counts: Mapping[str, Mapping[str, int]], path: str | Path) -> Path:
    """Per task (``{task: {class: count}}``), a bar chart of the class counts."""
    rows, cols = _grid(len(counts), max_cols=2)
    fig = Figure(figsize=(5.0 * cols, 3.4 * rows), layout="constrained")
    if not counts:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no labelled data", ha="center", va="center")
        ax.set_axis_off()
    for k, (task, class_counts) in enumerate(counts.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        names = [_plain(c) for c in class_counts]
        values = [int(v) for v in class_counts.values()]
        bars = ax.bar(range(len(values)), values, color="tab:blue")
        ax.bar_label(bars, fontsize=8)
        ax.set_xticks(range(len(values)), names, rotation=45, ha="right")
        ax.set_ylabel("utterances")
        ax.set_title(f"{_plain(task)} (n = {sum(values)})")
        ax.margins(y=0.15)
    return _save(fig, path)


def plot_experiment_comparison(
    rows: Sequence[Mapping[str, Any]], path: str | Path, metric: str = "UA"
) -> Path:
    """Grouped bars of ``mean`` ± ``std`` (fractions, drawn as %) per experiment and task.

    ``rows``: dicts with ``experiment``, ``task``, ``mean``, ``std``."""
    experiments = list(dict.fromkeys(str(r["experiment"]) for r in rows))
    tasks = list(dict.fromkeys(str(r["task"]) for r in rows))
    table = {(str(r["experiment"]), str(r["task"])): r for r in rows}
    width_in = max(5.0, 1.2 * len(experiments) * max(1, len(tasks)) + 2)
    fig = Figure(figsize=(width_in, 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(tasks))
    for t, task in enumerate(tasks):
        xs, means, stds = [], [], []
        for e, exp in enumerate(experiments):
            r = table.get((exp, task))
            if r is None:
                continue
            xs.append(e - 0.4 + width * (t + 0.5))
            means.append(100 * float(r["mean"]))
            stds.append(100 * float(r.get("std") or 0.0))
        bars = ax.bar(xs, means, width, yerr=stds, capsize=3, label=_plain(task))
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(range(len(experiments)), [_plain(e) for e in experiments], rotation=30)
    ax.set_ylabel(f"{_plain(metric)} (%), mean ± std over folds")
    ax.set_ylim(0, 105)
    if tasks:
        ax.legend(fontsize=8)
    ax.set_title(f"{_plain(metric)} by experiment")
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:70em;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:1em}
.card{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;min-width:14em}
.card .big{font-size:1.6em;font-weight:600}.card .small{color:#555;font-size:.9em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.8em;overflow-x:auto;font-size:.85em}
nav a{margin-right:1em}.note{color:#666;font-size:.9em}
"""

_PERCENT = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    """One table cell, escaped; numbers right-aligned, floats with 3 decimals."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return '<td class="num">–</td>'
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{_e(value)}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{int(value)}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{float(value):.3f}</td>'
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return f"<td>{_e(', '.join(str(v) for v in value))}</td>"
    return f"<td>{_e(value)}</td>"


def _records(table: pd.DataFrame | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    if table is None:
        return []
    if isinstance(table, pd.DataFrame):
        return table.to_dict(orient="records")
    return [dict(r) for r in table]


def _table(records: Sequence[Mapping[str, Any]], limit: int | None = None) -> str:
    if not records:
        return '<p class="note">none</p>'
    columns = list(dict.fromkeys(c for r in records for c in r))
    shown = records if limit is None else records[:limit]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in shown)
    more = ""
    if len(shown) < len(records):
        more = f'<p class="note">… and {len(records) - len(shown)} more rows.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>{more}"


def html_table(records: pd.DataFrame | Sequence[Mapping[str, Any]] | None, note: str = "") -> str:
    """An HTML table of records (a DataFrame or dicts), with an optional note above it."""
    head = f'<p class="note">{_e(note)}</p>' if note else ""
    return head + _table(_records(records))


def _pct(x: float) -> str:
    return f"{100 * float(x):.1f}"


def _card(task: str, big: str, smalls: Sequence[str]) -> str:
    lines = "".join(f'<div class="small">{_e(t)}</div>' for t in smalls)
    return f'<div class="card"><div>{_e(task)}</div><div class="big">{_e(big)}</div>{lines}</div>'


def _headline(summary: Mapping[str, Any]) -> str:
    cards = []
    for task, m in summary.get("tasks", {}).items():
        if "ua" in m:
            ua = m["ua"]
            extra = " · ".join(
                f"{_PERCENT[k]} {_pct(m[k]['mean'])} ± {_pct(m[k]['std'])}"
                for k in ("wa", "macro_f1")
                if k in m
            )
            pooled = m.get("pooled", {})
            pooled_txt = f"pooled UA {_pct(pooled['ua'])} %" if "ua" in pooled else ""
            ci = m.get("intervals", {}).get("ua")
            if ci and pooled_txt:
                pooled_txt += f" [{_pct(ci['low'])}, {_pct(ci['high'])}]"
            big = f"UA {_pct(ua['mean'])} ± {_pct(ua['std'])} %"
            cards.append(_card(task, big, [extra + " %" if extra else "", pooled_txt]))
        elif "ccc" in m:
            c = m["ccc"]
            pooled = m.get("pooled", {})
            pooled_txt = f"pooled CCC {pooled['ccc']:.3f}" if "ccc" in pooled else ""
            ci = m.get("intervals", {}).get("ccc")
            if ci and pooled_txt:
                pooled_txt += f" [{ci['low']:.3f}, {ci['high']:.3f}]"
            cards.append(_card(task, f"CCC {c['mean']:.3f} ± {c['std']:.3f}", [pooled_txt]))
    n = summary.get("n_folds", "?")
    note = (
        f'<p class="note">Headline: mean ± sample standard deviation over {_e(n)} '
        "speaker-independent folds. Pooled: computed once on all folds' predictions together"
        + _interval_note(summary)
        + ".</p>"
    )
    if summary.get("normalisation") == "speaker":
        note += (
            '<p class="note"><b>Speaker-level normalisation:</b> every speaker\'s features, '
            "the test speakers' included, were standardised with that speaker's own statistics "
            "(no labels used), as a deployed recogniser adapting to its user would do.</p>"
        )
    return f'<div class="cards">{"".join(cards)}</div>{note}'


def _interval_note(summary: Mapping[str, Any]) -> str:
    for m in summary.get("tasks", {}).values():
        for found in m.get("intervals", {}).values():
            return f", with its {found['level']:.0%} speaker-bootstrap interval in brackets"
    return ""


def _per_fold_from_summary(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for task, m in summary.get("tasks", {}).items():
        for key in ("ua", "wa", "macro_f1", "ccc"):
            for k, v in enumerate(m.get(key, {}).get("per_fold", [])):
                rows.setdefault(k, {"fold": k})[f"{task} {key}"] = v
    return [rows[k] for k in sorted(rows)]


def _pooled(summary: Mapping[str, Any]) -> str:
    parts = []
    for task, m in summary.get("tasks", {}).items():
        pooled = m.get("pooled", {})
        if "ccc" in pooled:
            parts.append(f"<h3>{_e(task)}</h3><p>CCC {pooled['ccc']:.3f}</p>")
            continue
        scores = " · ".join(f"{_PERCENT[k]} {_pct(pooled[k])} %" for k in _PERCENT if k in pooled)
        parts.append(f"<h3>{_e(task)}</h3><p>{_e(scores)}</p>")
        cm = pooled.get("confusion")
        classes = m.get("classes", [])
        if cm is None or len(cm) != len(classes):
            continue
        head = "".join(f"<th>{_e(c)}</th>" for c in classes)
        body = []
        for name, row in zip(classes, cm, strict=True):
            total = sum(row)
            cells = "".join(
                f'<td class="num">{v} ({_pct(v / total) if total else "0.0"} %)</td>' for v in row
            )
            body.append(f"<tr><th>{_e(name)}</th>{cells}<td class='num'>{total}</td></tr>")
        parts.append(
            "<table><thead><tr><th>true \\ predicted</th>"
            f"{head}<th>n</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
        )
    return "\n".join(parts) or '<p class="note">none</p>'


def _image(caption: str, path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {caption!r} for the report not found: {path}")
    mime = _MIME.get(path.suffix.lower(), "image/png")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def image_html(caption: str, path: str | Path) -> str:
    """An embedded figure (base64 ``data:`` URI) with its caption."""
    return _image(caption, path)


def _config_text(config: Mapping[str, Any]) -> str:
    try:
        import yaml

        return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
    except Exception:  # not YAML-representable (or no PyYAML): fall back to JSON
        return json.dumps(config, indent=2, default=str, ensure_ascii=False)


def write_html_report(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, Any],
    fold_table: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    images: Mapping[str, str | Path] | None = None,
    folds_speakers: Sequence[Mapping[str, Any]] | None = None,
    rejected: pd.DataFrame | None = None,
    config: Mapping[str, Any] | None = None,
    comparison: Sequence[Mapping[str, Any]] | None = None,
    sections: Sequence[tuple[str, str, str]] = (),
) -> Path:
    """Write a single self-contained HTML report of one experiment (or a grid of them).

    ``summary``: the experiment's ``metrics.json`` (:func:`deepser.evaluation.summary.summarize`).
    ``fold_table``: one row per fold (fold, test speakers, n_test, validation speakers,
    best_epoch, UA/WA/F1 per task, ...); without it the per-fold values of ``summary`` are shown.
    ``images``: caption -> image file, embedded as base64. ``folds_speakers``: one dict per fold.
    ``rejected``: audio rejected while preparing the data ("none" if None or empty).
    ``config``: shown as YAML. ``comparison``: rows (experiment, task, mean, std, ...).
    ``sections``: extra (id, heading, HTML) sections shown after the headline."""
    records = _records(fold_table) or _per_fold_from_summary(summary)
    extra = list(sections)
    sections = [
        ("headline", "Headline", _headline(summary)),
        *extra,
        (
            "folds",
            "Per fold",
            '<p class="note">Metrics as fractions in [0, 1].</p>' + _table(records),
        ),
        ("pooled", "Pooled over folds", _pooled(summary)),
    ]
    if images:
        figures = "\n".join(_image(caption, p) for caption, p in images.items())
        sections.append(("figures", "Figures", figures))
    sections.append(("speakers", "Speakers per fold", _table(_records(folds_speakers))))
    rejected_records = _records(rejected)
    rejected_html = _table(rejected_records, limit=_MAX_ROWS)
    if rejected_records:
        rejected_html = f"<p>{len(rejected_records)} files rejected.</p>" + rejected_html
    sections.append(("rejected", "Rejected audio", rejected_html))
    if comparison:
        sections.append(("comparison", "Experiment comparison", _table(_records(comparison))))
    if config is not None:
        sections.append(("config", "Configuration", f"<pre>{_e(_config_text(config))}</pre>"))

    experiment = summary.get("experiment", "")
    sub = f"experiment {experiment} · {summary.get('n_folds', '?')} folds"
    return _write_page(path, title, sub, sections)


def _write_page(
    path: str | Path, title: str, sub: str, sections: list[tuple[str, str, str]]
) -> Path:
    nav = "".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections)
    body = "\n".join(
        f'<section id="{key}"><h2>{_e(name)}</h2>\n{content}</section>'
        for key, name, content in sections
    )
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{_e(title)}</h1><p class="sub">{_e(sub)}</p><nav>{nav}</nav>\n{body}\n'
        "</body></html>\n"
    )
    path = Path(path)
    write_text(path, doc)
    return path


def write_comparison_report(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    image: str | Path | None = None,
    sections: Sequence[tuple[str, str, str]] = (),
) -> Path:
    """A self-contained page comparing experiments (rows: experiment, task, metric, mean, std,
    per fold ...), with the comparison plot and extra (id, heading, HTML) ``sections``."""
    extra = list(sections)
    sections = [("table", "Experiments side by side", _table(_records(rows))), *extra]
    if image is not None:
        sections.append(("figure", "Figure", _image("mean ± std over folds", image)))
    n = len({str(r["experiment"]) for r in rows})
    return _write_page(path, "deepser: experiment comparison", f"{n} experiments", sections)
