"""Per-group evaluation (deepser.evaluation.groups)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepser.evaluation.groups import (
    group_metrics,
    group_report,
    largest_gap,
    merge_meta_columns,
    plot_groups,
)
from deepser.metrics import ccc, classification_metrics

CLASSES = ["ang", "hap", "neu", "sad"]
EMOTION = {"name": "emotion", "type": "categorical", "classes": CLASSES}
VALENCE = {"name": "valence", "type": "continuous"}


def _gender_table(n_per_speaker: int = 40) -> pd.DataFrame:
    """Two women classified right 90 % of the time, two men 50 %; each speaker balanced."""
    rows = []
    for spk, gender, right in (
        ("f1", "female", 0.9),
        ("f2", "female", 0.9),
        ("m1", "male", 0.5),
        ("m2", "male", 0.5),
    ):
        n_right = round(right * n_per_speaker)
        for i in range(n_per_speaker):
            true = CLASSES[i % 4]
            pred = true if i < n_right else CLASSES[(i + 1) % 4]
            rows.append(
                {
                    "corpus": "c",
                    "utt_id": f"{spk}_{i}",
                    "speaker": spk,
                    "fold": 0,
                    "gender": gender,
                    "emotion_true": true,
                    "emotion_pred": pred,
                }
            )
    return pd.DataFrame(rows)


def _random_table(seed: int = 0, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    speakers = rng.choice(["s1", "s2", "s3", "s4", "s5"], n)
    true = rng.choice(CLASSES, n)
    pred = np.where(rng.random(n) < 0.6, true, rng.choice(CLASSES, n))
    val = rng.normal(size=n)
    return pd.DataFrame(
        {
            "corpus": "c",
            "utt_id": [f"u{i}" for i in range(n)],
            "speaker": speakers,
            "fold": rng.integers(0, 3, n),
            "gender": np.where(np.isin(speakers, ["s1", "s2"]), "female", "male"),
            "emotion_true": true,
            "emotion_pred": pred,
            "valence_true": val,
            "valence_pred": val + rng.normal(scale=0.5, size=n),
        }
    )


def test_group_ua_equals_classification_metrics_on_subset() -> None:
    table = _random_table()
    rows = group_metrics(table, EMOTION, "speaker")
    assert [r["group"] for r in rows] == sorted(table["speaker"].unique())
    for r in rows:
        sub = table[table["speaker"] == r["group"]]
        ref = classification_metrics(sub["emotion_true"], sub["emotion_pred"], CLASSES)
        assert r["ua"] == pytest.approx(ref["ua"])
        assert r["wa"] == pytest.approx(ref["wa"])
        assert r["macro_f1"] == pytest.approx(ref["macro_f1"])
        assert r["n"] == len(sub)


def test_gender_gap_women_90_men_50() -> None:
    rows = group_metrics(_gender_table(), EMOTION, "gender")
    by = {r["group"]: r for r in rows}
    assert by["female"]["ua"] == pytest.approx(0.9)
    assert by["male"]["ua"] == pytest.approx(0.5)
    gap = largest_gap(rows)
    assert gap is not None
    assert gap["best"] == "female" and gap["worst"] == "male"
    assert gap["gap"] == pytest.approx(0.4)
    assert largest_gap(rows[:1]) is None


def test_speaker_rows_count_utterances_and_speakers() -> None:
    table = _gender_table(n_per_speaker=8)
    table = table.iloc[:-3]  # m2 keeps 5 utterances
    speakers = {r["group"]: r for r in group_metrics(table, EMOTION, "speaker")}
    assert {k: v["n"] for k, v in speakers.items()} == {"f1": 8, "f2": 8, "m1": 8, "m2": 5}
    assert all(v["n_speakers"] == 1 for v in speakers.values())
    genders = {r["group"]: r for r in group_metrics(table, EMOTION, "gender")}
    assert genders["female"]["n_speakers"] == 2 and genders["male"]["n"] == 13


def test_unlabelled_rows_skipped_and_missing_group_is_none() -> None:
    table = _gender_table(n_per_speaker=8)
    table.loc[table["speaker"] == "f1", "emotion_true"] = ""
    table.loc[table.index[:2], "emotion_pred"] = "not-a-class"  # unlabelled: never scored
    table.loc[table["speaker"] == "m1", "gender"] = np.nan
    rows = {r["group"]: r for r in group_metrics(table, EMOTION, "gender")}
    assert rows["female"]["n"] == 8 and rows["female"]["n_speakers"] == 1
    assert rows["(none)"]["n"] == 8 and rows["male"]["n"] == 8
    assert list(rows) == sorted(rows)


def test_min_utterances_drops_small_groups() -> None:
    table = _gender_table(n_per_speaker=8).iloc[:-5]  # m2 keeps 3
    names = [r["group"] for r in group_metrics(table, EMOTION, "speaker", min_utterances=4)]
    assert names == ["f1", "f2", "m1"]
    assert len(group_metrics(table, EMOTION, "speaker", min_utterances=3)) == 4


def test_continuous_task_gives_ccc_per_group() -> None:
    table = _random_table(seed=1)
    table.loc[table.index[:10], "valence_true"] = np.nan
    rows = group_metrics(table, VALENCE, "gender")
    labelled = table[table["valence_true"].notna()]
    for r in rows:
        sub = labelled[labelled["gender"] == r["group"]]
        assert set(r) == {"group", "n", "n_speakers", "ccc"}
        assert r["n"] == len(sub)
        assert r["ccc"] == pytest.approx(ccc(sub["valence_true"], sub["valence_pred"]))


def test_report_structure_missing_column_and_json() -> None:
    table = _random_table()
    report = group_report(table, [EMOTION, VALENCE], ["gender", "age"])
    assert list(report)[:3] == ["overall", "speaker", "gender"]
    assert report["missing"] == ["age"]
    assert "age" not in report
    pooled = classification_metrics(table["emotion_true"], table["emotion_pred"], CLASSES)
    assert report["overall"]["emotion"]["ua"] == pytest.approx(pooled["ua"])
    assert report["gender"]["valence"]["gap"]["metric"] == "ccc"
    assert len(report["speaker"]["emotion"]["groups"]) == 5
    back = json.loads(json.dumps(report))
    assert back["gender"]["emotion"]["gap"] == report["gender"]["emotion"]["gap"]


def test_report_keeps_speakers_of_two_corpora_apart() -> None:
    a, b = _gender_table(8), _gender_table(8)
    b["corpus"] = "d"
    report = group_report(pd.concat([a, b], ignore_index=True), [EMOTION], ["gender"])
    groups = report["speaker"]["emotion"]["groups"]
    assert len(groups) == 8 and groups[0]["group"] == "c/f1"
    female = report["gender"]["emotion"]["groups"][0]
    assert female["group"] == "female" and female["n_speakers"] == 4


def test_merge_meta_columns_order_and_two_corpora() -> None:
    preds = pd.DataFrame(
        {
            "corpus": ["b", "a", "b", "a", "a"],
            "utt_id": ["u1", "u1", "u2", "u3", "u2"],
            "speaker": "s",
            "fold": 0,
        }
    )
    metas = {
        "a": pd.DataFrame(
            {
                "utt_id": ["u1", "u2", "u3", "u1_aug0"],
                "gender": ["f", "m", "f", "f"],
                "age": [30, 40, np.nan, 30],
            }
        ),
        "b": pd.DataFrame({"utt_id": ["u2", "u1"], "gender": ["m", "f"]}),
    }
    out = merge_meta_columns(preds, metas, ["gender", "age"])
    assert len(out) == len(preds)
    assert out["utt_id"].tolist() == preds["utt_id"].tolist()
    assert out["corpus"].tolist() == preds["corpus"].tolist()
    assert out["gender"].tolist() == ["f", "f", "m", "f", "m"]
    assert out["age"].tolist() == ["", "30.0", "", "", "40.0"]
    assert all(isinstance(v, str) for v in out["age"])


def test_plot_groups_writes_png(tmp_path) -> None:
    report = group_report(_gender_table(8), [EMOTION], ["gender"])
    path = plot_groups(report, "emotion", tmp_path / "groups.png", chance=0.25)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = plot_groups(report, "nothing", tmp_path / "empty.png")
    assert empty.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
