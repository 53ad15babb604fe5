"""How far an experiment's figures can be trusted: speaker-bootstrap intervals, per-group UA,
calibration with abstention, and their report sections (used by the experiment summary).

Calibration is fitted without test speakers: each fold's temperature on its validation
speakers' predictions (training speakers held out from training), the bundle's temperature on
the validation predictions of every fold pooled."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.evaluation import calibration, groups, intervals, report
from deepser.tasks import is_categorical

DEFAULT_SETTINGS: dict[str, Any] = {
    "bootstrap": 1000,
    "level": 0.95,
    "groups": ["gender"],
    "calibration_bins": 10,
    "seed": 0,
}
COVERAGE_THRESHOLDS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def settings_of(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``evaluation`` settings with their defaults."""
    return {**DEFAULT_SETTINGS, **dict(config or {})}


def labelled(table: pd.DataFrame, task: Mapping[str, Any]) -> pd.DataFrame:
    """Rows with a label for ``task``."""
    true = table[f"{task['name']}_true"]
    return table[true.notna() & (true.astype(str) != "")]


def probabilities(table: pd.DataFrame, task: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities (N, C), true class indices (N,)) of a task's labelled rows."""
    rows = labelled(table, task)
    classes = [str(c) for c in task["classes"]]
    columns = [f"{task['name']}_p_{c}" for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    proba = rows[columns].to_numpy(np.float64) if len(rows) else np.zeros((0, len(classes)))
    y = np.array([index[str(v)] for v in rows[f"{task['name']}_true"]], dtype=np.int64)
    return proba, y


def task_intervals(
    pooled: pd.DataFrame, tasks: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Speaker-bootstrap intervals of each task's pooled metrics (empty when turned off)."""
    if not settings["bootstrap"]:
        return {}
    out = {}
    for task in tasks:
        if len(labelled(pooled, task)):
            out[task["name"]] = intervals.task_intervals(
                pooled,
                task,
                n_boot=int(settings["bootstrap"]),
                level=float(settings["level"]),
                seed=int(settings["seed"]),
            )
    return out


def add_gap_intervals(
    found: dict[str, Any],
    table: pd.DataFrame,
    tasks: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
) -> None:
    """Each meta column's largest UA gap gets its speaker-bootstrap interval (``gap.interval``;
    not for the per-speaker grouping, whose groups are single speakers)."""
    if not settings["bootstrap"]:
        return
    by_name = {t["name"]: t for t in tasks}
    for column, per_task in found.items():
        if column in ("missing", "overall", "speaker"):
            continue
        for task, entry in per_task.items():
            gap = entry.get("gap")
            if not gap or gap["metric"] != "ua":
                continue
            interval = intervals.gap_interval(
                table,
                by_name[task],
                column,
                gap["best"],
                gap["worst"],
                n_boot=int(settings["bootstrap"]),
                level=float(settings["level"]),
                seed=int(settings["seed"]),
            )
            if interval is not None:
                gap["interval"] = interval


def calibration_report(
    tests: Sequence[pd.DataFrame],
    validations: Sequence[pd.DataFrame],
    tasks: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Per categorical task: each fold's temperature (fitted on its validation speakers), the
    test ECE before and after, reliability bins, the coverage table of the calibrated test
    predictions, and the bundle's temperature (every fold's validation predictions pooled)."""
    bins = int(settings["calibration_bins"])
    out: dict[str, Any] = {}
    for task in tasks:
        if not is_categorical(task):
            continue
        raw, cal, ys, temps, fitted = [], [], [], [], 0
        val_all, yv_all = [], []
        for test, val in zip(tests, validations, strict=True):
            p, y = probabilities(test, task)
            pv, yv = probabilities(val, task)
            t = calibration.fit_temperature(pv, yv) if len(yv) else 1.0
            temps.append(float(t))
            fitted += len(yv)
            raw.append(p)
            cal.append(calibration.apply_temperature(p, t) if len(p) else p)
            ys.append(y)
            val_all.append(pv)
            yv_all.append(yv)
        p_raw, p_cal, y = np.concatenate(raw), np.concatenate(cal), np.concatenate(ys)
        if not len(y):
            continue
        pv, yv = np.concatenate(val_all), np.concatenate(yv_all)
        final_t = float(calibration.fit_temperature(pv, yv)) if len(yv) else 1.0
        out[task["name"]] = {
            "fitted_on": (
                f"validation speakers of each fold ({fitted} utterances); never test speakers"
                if fitted
                else "nothing: no fold has validation speakers (temperature 1)"
            ),
            "fold_temperatures": temps,
            "temperature": final_t,
            "n_fit": int(len(yv)),
            "n": int(len(y)),
            "ece": calibration.expected_calibration_error(p_raw, y, bins),
            "ece_calibrated": calibration.expected_calibration_error(p_cal, y, bins),
            "bins": bins,
            "reliability": calibration.reliability_bins(p_cal, y, bins),
            "coverage": calibration.coverage_table(p_cal, y, COVERAGE_THRESHOLDS),
            "_arrays": (p_raw, p_cal, y),  # for the plots; dropped before writing
        }
    return out


def interval_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One table row per task and metric: pooled estimate, interval, fold mean ± std."""
    rows = []
    for task, entry in summary["tasks"].items():
        for key, found in entry.get("intervals", {}).items():
            spread = entry.get(key, {})
            rows.append(
                {
                    "task": task,
                    "metric": key.upper(),
                    "pooled": f"{found['estimate']:.3f}",
                    f"{found['level']:.0%} interval": f"[{found['low']:.3f}, {found['high']:.3f}]",
                    "fold mean ± std": (
                        f"{spread['mean']:.3f} ± {spread['std']:.3f}" if "mean" in spread else ""
                    ),
                    "speakers": found["n_groups"],
                }
            )
    return rows


def intervals_html(summary: Mapping[str, Any], n_boot: int) -> str:
    """The intervals section."""
    return report.html_table(
        interval_rows(summary),
        f"Percentile intervals from {n_boot} bootstrap draws of whole speakers (every draw "
        "takes as many speakers as there are, with replacement, with all their utterances), "
        "so the interval reflects how much the figure depends on who was recorded, not only "
        "on how many utterances there are.",
    )


def groups_html(found: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    """The groups section: the largest gap per grouping and task, one table per grouping."""
    parts = []
    gaps = []
    for column, per_task in found.items():
        if column in ("missing", "overall"):
            continue
        for task, entry in per_task.items():
            gap = entry.get("gap")
            if gap:
                metric = gap["metric"].upper()
                ci = gap.get("interval")
                gaps.append(
                    {
                        "grouping": column,
                        "task": task,
                        f"best {metric}": f"{gap['best']} {gap['best_value']:.3f}",
                        f"worst {metric}": f"{gap['worst']} {gap['worst_value']:.3f}",
                        "gap": f"{gap['gap']:.3f}"
                        + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else ""),
                    }
                )
    parts.append(
        report.html_table(
            gaps,
            "The largest gap between two groups, per grouping; in brackets, its interval when "
            "the speakers of each of the two groups are resampled (within the group), so a "
            "gap whose interval holds 0 may be down to who was recorded.",
        )
    )
    for column, per_task in found.items():
        if column in ("missing", "overall"):
            continue
        for task, entry in per_task.items():
            rows = [
                {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()}
                for row in entry["groups"]
            ]
            parts.append(f"<h3>{html.escape(task)} by {html.escape(column)}</h3>")
            parts.append(report.html_table(rows))
    if found.get("missing"):
        parts.append(
            f"<p>Not in the meta: {html.escape(', '.join(map(str, found['missing'])))}.</p>"
        )
    parts += [report.image_html(caption, path) for caption, path in images.items()]
    return "".join(parts)


def calibration_html(found: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    """The calibration section: ECE before/after, temperatures, the coverage table."""
    rows = [
        {
            "task": task,
            "ECE": f"{e['ece']:.3f}",
            "ECE calibrated": f"{e['ece_calibrated']:.3f}",
            "fold temperatures": " ".join(f"{t:.2f}" for t in e["fold_temperatures"]),
            "bundle temperature": f"{e['temperature']:.2f}",
            "fitted on": e["fitted_on"],
        }
        for task, e in found.items()
    ]
    parts = [
        report.html_table(
            rows,
            "Expected calibration error (top label, "
            f"{next(iter(found.values()))['bins'] if found else 10} equal-width bins) of the "
            "pooled test predictions, raw and after temperature scaling. A temperature above 1 "
            "means the raw model is over-confident. The bundle stores its temperature; the "
            "recogniser applies it.",
        )
    ]
    for task, e in found.items():
        table = [
            {
                "--min-confidence": f"{r['min_confidence']:.2f}",
                "coverage": f"{r['coverage']:.1%}",
                "accuracy": "" if r["accuracy"] is None else f"{r['accuracy']:.3f}",
                "UA": "" if r["ua"] is None else f"{r['ua']:.3f}",
            }
            for r in e["coverage"]
        ]
        parts.append(f"<h3>{html.escape(task)}: abstention</h3>")
        parts.append(
            report.html_table(
                table,
                "Calibrated test predictions whose top probability is at least P: the share "
                "kept (the rest the recogniser labels 'uncertain' with --min-confidence P) and "
                "their accuracy.",
            )
        )
    parts += [report.image_html(caption, path) for caption, path in images.items()]
    return "".join(parts)


def calibration_plots(found: Mapping[str, Any], plots: Path) -> dict[str, Path]:
    """Reliability diagram and accuracy-coverage curve per task."""
    images = {}
    for task, e in found.items():
        p_raw, p_cal, y = e["_arrays"]
        curves = {"raw": (p_raw, y), "calibrated": (p_cal, y)}
        images[f"Reliability diagram, {task}"] = calibration.plot_reliability(
            curves, plots / f"reliability-{task}.png", f"{task}: reliability", e["bins"]
        )
        images[f"Accuracy against coverage, {task}"] = calibration.plot_coverage(
            curves, plots / f"coverage-{task}.png", f"{task}: selective prediction"
        )
    return images


def group_plots(
    found: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]], plots: Path
) -> dict[str, Path]:
    """One bar chart per task of UA (CCC) by speaker and group."""
    images = {}
    for task in tasks:
        if not any(task["name"] in v for k, v in found.items() if k not in ("missing", "overall")):
            continue
        metric = "ua" if is_categorical(task) else "ccc"
        chance = 1 / len(task["classes"]) if is_categorical(task) else None
        images[f"{metric.upper()} by speaker and group, {task['name']}"] = groups.plot_groups(
            found, task["name"], plots / f"groups-{task['name']}.png", metric, chance
        )
    return images


def without_arrays(found: Mapping[str, Any]) -> dict[str, Any]:
    """The calibration report without the plot arrays (JSON-serialisable)."""
    return {t: {k: v for k, v in e.items() if k != "_arrays"} for t, e in found.items()}
