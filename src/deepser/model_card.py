"""The model card: a short Markdown page next to ``bundle.json`` that says what a bundle was
trained on, how it was evaluated (speaker-independent folds, intervals, groups, calibration,
degraded audio, other corpora) and what it is for and not for. ``deepser card BUNDLE`` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepser.files import read_json, write_text

CARD_NAME = "model_card.md"


def _f(x: Any, digits: int = 3) -> str:
    return f"{float(x):.{digits}f}" if isinstance(x, int | float) else "–"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return []
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return out + [""]


def _kind(bundle: Mapping[str, Any]) -> str:
    kind = bundle.get("kind")
    if kind == "fusion":
        members = ", ".join(bundle.get("members", []))
        return f"late fusion ({bundle.get('method', '?')}) of {members}"
    training = bundle.get("training") or {}
    if training.get("architecture"):
        return f"{training['architecture']} network"
    return "single model"


def model_card(
    bundle: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> str:
    """The card's Markdown for a bundle's ``bundle.json`` content and its result's
    ``metrics.json`` (default: the metrics the bundle carries); ``name``: the result's name
    (an experiment, fusion or selection; default the bundle's experiment)."""
    metrics = dict(metrics if metrics is not None else bundle.get("metrics") or {})
    experiment = bundle.get("experiment") or bundle.get("name")
    name = name or experiment or metrics.get("experiment") or "model"
    tasks = bundle.get("tasks") or []
    lines = [f"# Model card: {name}", ""]
    kind = _kind(bundle)
    if metrics.get("kind") == "selection" and experiment and experiment != name:
        kind += f", the candidate {experiment} chosen by nested cross-validation"
    lines += [f"A speech emotion recogniser trained with deepser: {kind}.", ""]
    lines += ["## What it predicts", ""]
    for t in tasks:
        if t.get("type", "categorical") == "continuous":
            lines.append(f"- **{t['name']}**: a continuous value")
        else:
            lines.append(f"- **{t['name']}**: one of {', '.join(map(str, t.get('classes', [])))}")
    lines.append("")
    spec = bundle.get("feature_spec") or {}
    data = bundle.get("data") or {}
    lines += ["## Data", ""]
    if data:
        lines.append(
            f"- Corpora: {', '.join(data.get('corpora', []))}; {data.get('n_utterances', '?')} "
            f"utterances of {len(data.get('speakers', []))} speakers"
            + (f" (+{data['n_augmented']} augmented copies)" if data.get("n_augmented") else "")
        )
        for task, counts in (data.get("class_counts") or {}).items():
            text = ", ".join(f"{c} {n}" for c, n in counts.items())
            lines.append(f"- Classes of {task}: {text}")
    if spec:
        lines.append(
            f"- Input: {spec.get('type', '?')} features at {spec.get('sample_rate', '?')} Hz "
            f"(gain normalisation: {(bundle.get('gain') or {}).get('method', 'none')}; feature "
            f"normalisation: {(bundle.get('normalisation') or {}).get('method', 'global')})"
        )
    lines.append("")
    lines += _evaluation(metrics)
    lines += _groups(metrics)
    lines += _calibration(bundle, metrics)
    lines += _robustness(metrics)
    lines += _cross_corpus(metrics)
    lines += _use(bundle, metrics, data)
    versions = bundle.get("versions") or {}
    if versions:
        lines += [
            "## Versions",
            "",
            ", ".join(f"{k} {v}" for k, v in versions.items()),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _evaluation(metrics: Mapping[str, Any]) -> list[str]:
    if not metrics.get("tasks"):
        return []
    n = metrics.get("n_folds", "?")
    fold_by = metrics.get("fold_by", "speaker")
    if fold_by == "speaker":
        how = (
            f"Speaker-independent cross-validation over {n} folds: no speaker is in both the "
            "training and the test data of a fold; validation (early stopping, calibration) "
            "used training speakers only."
        )
    else:
        how = (
            f"Cross-validation over {n} folds by {fold_by}: no {fold_by} is in both the "
            "training and the test data of a fold, but a speaker may be (the figures are not "
            "speaker-independent)."
        )
    lines = ["## Evaluation", "", how, ""]
    rows = []
    for task, m in metrics["tasks"].items():
        for key in ("ua", "wa", "macro_f1", "ccc"):
            if key not in m:
                continue
            ci = (m.get("intervals") or {}).get(key)
            interval = f"[{_f(ci['low'])}, {_f(ci['high'])}]" if ci else "–"
            base = ((metrics.get("baseline") or {}).get("tasks", {}).get(task) or {}).get(key)
            rows.append(
                [
                    task,
                    key.upper(),
                    f"{_f(m[key]['mean'])} ± {_f(m[key]['std'])}",
                    _f(m.get("pooled", {}).get(key)),
                    interval,
                    _f(base["mean"]) if base else "–",
                ]
            )
    level = next(
        (
            c["level"]
            for m in metrics["tasks"].values()
            for c in (m.get("intervals") or {}).values()
        ),
        0.95,
    )
    lines += _table(
        [
            "task",
            "metric",
            "fold mean ± std",
            "pooled",
            f"{level:.0%} interval (speakers resampled)",
            "classic baseline",
        ],
        rows,
    )
    return lines


def _groups(metrics: Mapping[str, Any]) -> list[str]:
    found = metrics.get("groups") or {}
    rows = []
    for column, per_task in found.items():
        if column in ("missing", "overall"):
            continue
        for task, entry in per_task.items():
            gap = entry.get("gap")
            if gap:
                ci = gap.get("interval")
                rows.append(
                    [
                        column,
                        task,
                        f"{gap['best']} {_f(gap['best_value'])}",
                        f"{gap['worst']} {_f(gap['worst_value'])}",
                        _f(gap["gap"]) + (f" [{_f(ci['low'])}, {_f(ci['high'])}]" if ci else ""),
                    ]
                )
    if not rows:
        return []
    return ["## Speakers and groups", "", *_table(["by", "task", "best", "worst", "gap"], rows)]


def _calibration(bundle: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    found = metrics.get("calibration") or {}
    if not found:
        stored = bundle.get("calibration") or {}
        if bundle.get("kind") == "fusion":
            return [
                "## Calibration",
                "",
                "The fused probabilities are not calibrated (no temperature is fitted on the "
                "combiner's output); --min-confidence applies to them as they are.",
                "",
            ]
        if not stored:
            return []
        rows = [
            [task, _f(e["temperature"], 2), e.get("fitted_on", "–")] for task, e in stored.items()
        ]
        return [
            "## Calibration",
            "",
            "The recogniser applies these temperatures (carried over from the chosen model).",
            "",
            *_table(["task", "temperature", "fitted on"], rows),
        ]
    rows = []
    for task, e in found.items():
        kept = {round(r["min_confidence"], 2): r for r in e.get("coverage", [])}
        at = kept.get(0.7) or kept.get(0.6)
        rows.append(
            [
                task,
                _f(e["temperature"], 2),
                _f(e["ece"]),
                _f(e["ece_calibrated"]),
                f"{at['coverage']:.0%} kept, accuracy {_f(at['accuracy'])}"
                if at and at.get("accuracy") is not None
                else "–",
            ]
        )
    sources = {e["fitted_on"] for e in found.values()}
    fitted = (
        next(iter(sources))
        if len(sources) == 1
        else "; ".join(f"{task}: {e['fitted_on']}" for task, e in found.items())
    )
    stored = (
        "The bundle stores the temperature fitted on every fold's validation predictions "
        "together, carried over to the final model, and the recogniser applies it."
        if bundle.get("calibration")
        else "This bundle stores no temperature."
    )
    return [
        "## Calibration",
        "",
        f"Temperature scaling fitted on {fitted}. ECE and abstention are cross-validated: "
        "each fold's test predictions after that fold's own temperature. The validation "
        "speakers also chose the early-stopping epoch, so the fit is slightly optimistic. "
        + stored,
        "",
        *_table(
            ["task", "bundle temperature", "ECE", "ECE calibrated", "with --min-confidence 0.7"],
            rows,
        ),
    ]


def _robustness(metrics: Mapping[str, Any]) -> list[str]:
    found = metrics.get("robustness") or {}
    rows = []
    for entry in found.get("conditions", []):
        for task, m in entry["tasks"].items():
            key = "ua" if "ua" in m else "ccc"
            rows.append([entry["condition"], task, _f(m[key]), _f(m["clean"]), f"{m['drop']:+.3f}"])
    if not rows:
        return []
    return [
        "## Degraded audio",
        "",
        "The test folds again after a transformation of the audio (UA; CCC for continuous tasks).",
        "",
        *_table(["condition", "task", "score", "clean", "drop"], rows),
    ]


def _cross_corpus(metrics: Mapping[str, Any]) -> list[str]:
    found = metrics.get("cross_corpus") or {}
    rows = []
    for name, result in found.items():
        for task, e in result.get("tasks", {}).items():
            rows.append(
                [
                    name,
                    task,
                    f"{_f(e['ua']['mean'])} ± {_f(e['ua']['std'])}",
                    _f(e["ensemble"]["ua"]),
                    e["n"],
                    e["n_dropped"],
                ]
            )
    if not rows:
        return []
    return [
        "## Other corpora",
        "",
        *_table(["evaluation", "task", "UA (fold models)", "UA (ensemble)", "n", "dropped"], rows),
    ]


def _use(
    bundle: Mapping[str, Any], metrics: Mapping[str, Any], data: Mapping[str, Any]
) -> list[str]:
    lines = [
        "## Intended use and limits",
        "",
        "- For research and for applications that react to the emotional tone of speech in "
        "aggregate (dialogue systems, media analysis, live demos), with the figures above as "
        "the expected accuracy on speakers like those of the training corpora.",
        "- Not for decisions about a person (hiring, health, security, law enforcement): "
        "emotion recognition from the voice is unreliable for individuals, and expressed "
        "emotion is not felt emotion.",
        f"- Trained on {len(data.get('speakers', [])) or '?'} speakers; accuracy on other "
        "languages, ages, accents, microphones and rooms is unknown unless a section above "
        "measures it.",
        "- It always answers with one of its classes; for speech unlike its training data "
        "(or for non-speech that passes the voice activity detector) use the recogniser's "
        "--min-confidence to get 'uncertain' instead.",
    ]
    gaps = [
        e["gap"]
        for column, per_task in (metrics.get("groups") or {}).items()
        if column not in ("missing", "overall", "speaker")
        for e in per_task.values()
        if e.get("gap")
    ]
    for gap in gaps:
        if gap["gap"] >= 0.05:
            ci = gap.get("interval")
            chance = (
                "; its interval holds 0, so it may be down to the few speakers recorded"
                if ci and ci["low"] <= 0
                else ""
            )
            lines.append(
                f"- It works less well for {gap['worst']} than for {gap['best']} speakers "
                f"({gap['metric'].upper()} {_f(gap['worst_value'])} vs {_f(gap['best_value'])}"
                f"{chance})."
            )
    return lines + [""]


def write_model_card(
    bundle_json: str | Path,
    metrics_json: str | Path | None,
    out: str | Path,
    name: str | None = None,
) -> Path:
    """Write the card of a bundle (its ``bundle.json``) with its result's ``metrics.json``."""
    metrics = read_json(metrics_json) if metrics_json else None
    text = model_card(read_json(bundle_json), metrics, name)
    out = Path(out)
    write_text(out, text)
    return out


def read_card(bundle_dir: str | Path) -> str:
    """A bundle's card: its ``model_card.md``, else one made from ``bundle.json`` alone."""
    folder = Path(bundle_dir)
    card = folder / CARD_NAME
    if card.is_file():
        return card.read_text(encoding="utf-8")
    return model_card(read_json(folder / "bundle.json"))
