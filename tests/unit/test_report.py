"""Plots and the self-contained HTML report, from synthetic data."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepser.evaluation.report import (
    best_epoch,
    plot_class_distribution,
    plot_confusion,
    plot_experiment_comparison,
    plot_learning_curves,
    write_html_report,
)
from deepser.metrics import fold_metrics, summarize_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"
CLASSES = ["ang", "neu", EVIL, "$x$"]
TASKS = [
    {"name": "emotion", "type": "categorical", "classes": CLASSES},
    {"name": "arousal", "type": "continuous"},
]


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def _history(seed: int, extra: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    epochs = np.arange(12)
    df = pd.DataFrame(
        {
            "epoch": epochs,
            "loss": 2.0 / (1 + epochs) + rng.random(12) * 0.05,
            "val_loss": 2.2 / (1 + epochs) + 0.02 * epochs,
            "val_ua": np.minimum(0.3 + 0.05 * epochs, 0.7) - 0.01 * (epochs > 8),
        }
    )
    if extra:
        df["emotion_loss"] = df["loss"] * 0.7
        df["lr"] = 1e-3
    return df


def _predictions(fold: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    true = rng.choice(CLASSES, n)
    pred = np.where(rng.random(n) < 0.6, true, rng.choice(CLASSES, n))
    ar = rng.normal(size=n)
    return pd.DataFrame(
        {
            "utt_id": [f"f{fold}_{i}" for i in range(n)],
            "speaker": f"spk{fold}",
            "fold": fold,
            "emotion_true": true,
            "emotion_pred": pred,
            "arousal_true": ar,
            "arousal_pred": 0.5 * ar,
        }
    )


@pytest.fixture
def plots(tmp_path: Path) -> dict[str, Path]:
    cm = [[5, 1, 0, 0], [2, 7, 1, 0], [0, 0, 3, 1], [0, 0, 0, 0]]
    out = {
        "Pooled confusion": plot_confusion(cm, CLASSES, tmp_path / "cm.png", title=EVIL),
        "Learning curves": plot_learning_curves(
            [_history(0), _history(1, extra=True), _history(2)[["epoch", "loss"]]],
            tmp_path / "curves.png",
        ),
        "Class distribution": plot_class_distribution(
            {"emotion": {c: 3 + i for i, c in enumerate(CLASSES)}, "gender": {"f": 4, "m": 6}},
            tmp_path / "classes.png",
        ),
        "Comparison": plot_experiment_comparison(
            [
                {"experiment": "cnn", "task": "emotion", "mean": 0.71, "std": 0.05},
                {"experiment": "lstm", "task": "emotion", "mean": 0.66, "std": 0.04},
                {"experiment": "lstm", "task": "gender", "mean": 0.91, "std": 0.02},
            ],
            tmp_path / "sub" / "comparison.png",
        ),
    }
    return out


def test_plots_are_png(plots: dict[str, Path]) -> None:
    for path in plots.values():
        assert _is_png(path), path
    assert not list(plots["Comparison"].parent.glob(".*.tmp"))  # no temporary file left behind


def test_plot_edge_cases(tmp_path: Path) -> None:
    assert _is_png(plot_learning_curves([], tmp_path / "empty.png"))
    assert _is_png(plot_class_distribution({}, tmp_path / "none.png"))
    with pytest.raises(ValueError, match="shape"):
        plot_confusion([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "bad.png")


def test_best_epoch() -> None:
    h = _history(0)
    assert best_epoch(h) == int(h.loc[h["val_ua"].idxmax(), "epoch"])
    assert best_epoch(h.drop(columns="val_ua")) == int(h["val_loss"].idxmin())
    assert best_epoch(h[["epoch", "loss"]]) is None


def test_learning_curves_from_tsv(tmp_path: Path) -> None:
    tsv = tmp_path / "history.csv"
    _history(3).to_csv(tsv, sep="\t", index=False)
    assert _is_png(plot_learning_curves([tsv], tmp_path / "c.png"))


def test_html_report(tmp_path: Path, plots: dict[str, Path]) -> None:
    tables = [_predictions(k, 20, k) for k in range(3)]
    per_fold = [fold_metrics(df, TASKS) for df in tables]
    summary = summarize_experiment("demo", per_fold, tables, TASKS)
    fold_table = pd.DataFrame(
        [
            {
                "fold": k,
                "test speakers": [f"spk{k}"],
                "n_test": 20,
                "validation speakers": f"spk{(k + 1) % 3}",
                "best_epoch": 7 + k,
                "emotion UA": fm["tasks"]["emotion"]["ua"],
                "emotion WA": fm["tasks"]["emotion"]["wa"],
                "emotion F1": fm["tasks"]["emotion"]["macro_f1"],
                "arousal CCC": fm["tasks"]["arousal"]["ccc"],
            }
            for k, fm in enumerate(per_fold)
        ]
    )
    rejected = pd.DataFrame({"path": ["a/b.wav", EVIL + ".wav"], "reason": ["too short", "silent"]})
    out = write_html_report(
        tmp_path / "report" / "report.html",
        title=f"Experiment demo {EVIL}",
        summary=summary,
        fold_table=fold_table,
        images=plots,
        folds_speakers=[{"fold": k, "test": [f"spk{k}"], "train": ["x", "y"]} for k in range(3)],
        rejected=rejected,
        config={"experiment": "demo", "folds": {"n": 3}, "note": EVIL},
        comparison=[{"experiment": "demo", "task": "emotion", "mean": 0.5, "std": 0.1}],
    )
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # images embedded, and they decode back to the PNG files
    for caption, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{data}" in text
        assert caption in text
    # per-fold values and the headline
    for value in fold_table["emotion UA"]:
        assert f"{value:.3f}" in text
    for k in range(3):
        assert f"spk{k}" in text
    ua = summary["tasks"]["emotion"]["ua"]
    assert f"UA {100 * ua['mean']:.1f} ± {100 * ua['std']:.1f} %" in text
    assert "too short" in text
    # escaping: the malicious class name never appears raw
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()
    # self-contained: no resource fetched from the network
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "url(" not in text.lower()
    assert not re.search(r"<(link|script|iframe)\b", text, re.I)
    assert "http://" not in text and "https://" not in text


def test_html_report_minimal(tmp_path: Path) -> None:
    df = _predictions(0, 10, 1)
    summary = summarize_experiment("one", [fold_metrics(df, TASKS)], [df], TASKS)
    text = write_html_report(tmp_path / "r.html", title="t", summary=summary).read_text()
    assert "Rejected audio" in text and "none" in text
    per_fold = summary["tasks"]["emotion"]["ua"]["per_fold"][0]
    assert f"{per_fold:.3f}" in text  # per-fold values from the summary when no table is given
    with pytest.raises(FileNotFoundError, match="missing"):
        write_html_report(
            tmp_path / "r2.html", title="t", summary=summary, images={"missing": tmp_path / "x"}
        )
    assert not (tmp_path / "r2.html").exists()


def test_a_class_one_fold_holds_alone_is_a_data_warning() -> None:
    from deepser.evaluation.summary import coverage_warnings

    task = {"name": "emotion", "type": "categorical", "classes": ["a", "b", "c"]}
    folds = [
        pd.DataFrame({"speaker": ["s1", "s1"], "emotion_true": ["a", "b"]}),
        pd.DataFrame({"speaker": ["s2", "s2"], "emotion_true": ["a", "c"]}),
        pd.DataFrame({"speaker": ["s3"], "emotion_true": ["b"]}),
    ]
    warnings = coverage_warnings(folds, [task])
    assert len(warnings) == 1 and warnings[0].startswith(
        "class 'c' of task emotion occurs in fold 1 only (speaker s2)"
    )
    folds[2] = pd.DataFrame({"speaker": ["s3", "s3"], "emotion_true": ["b", "c"]})
    assert coverage_warnings(folds, [task]) == []
    continuous = {"name": "score", "type": "continuous"}
    assert (
        coverage_warnings([pd.DataFrame({"speaker": ["s1"], "score_true": [0.1]})], [continuous])
        == []
    )
