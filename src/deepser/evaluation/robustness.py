"""Robustness to degraded audio: a database's copy with every utterance transformed (noise,
telephone band, codec, gain, room), and each fold model evaluated on its own test speakers'
degraded utterances, with the drop from clean audio.

The degraded copy has the clean database's rows and folds and is built the same way (the same
feature spec, gain normalisation and windows, read from the clean database's attributes), so
only the audio differs. Normalisation statistics come from training as for clean audio: a
globally normalised model carries them; a speaker-normalised model adapts to each degraded
speaker's own statistics, as a deployed recogniser would."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.corpus.degrade import degrade, parse_condition, utterance_seed
from deepser.database.build import CorpusInput, build_database, read_corpus_tables
from deepser.database.normalise import SpeakerNorm
from deepser.database.store import read_database_attrs, read_info
from deepser.evaluation.predictions import predictions_table, read_predictions, write_predictions
from deepser.features.extraction import extract_shard
from deepser.files import write_json
from deepser.metrics import fold_metrics
from deepser.tasks import is_categorical
from deepser.training.record import read_training

log = logging.getLogger(__name__)


def build_degraded_database(
    clean_db: str | Path,
    corpora: Sequence[CorpusInput],
    db: Mapping[str, Any],
    condition: str,
    out: str | Path,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the copy of ``clean_db`` (built from ``corpora`` with database config ``db``)
    whose audio went through ``condition``; each utterance's transformation is seeded by its
    id, so the copy is the same on every run. ``corpora``' shards are ignored: the features are
    extracted again into temporary shards, one per clean shard."""
    cond = parse_condition(condition)
    attrs = read_database_attrs(clean_db)
    spec = dict(attrs["feature_spec"])

    def transform(y: np.ndarray, sample_rate: int, utt_id: str) -> np.ndarray:
        return degrade(y, sample_rate, cond, utterance_seed(utt_id, seed))

    with tempfile.TemporaryDirectory(prefix="deepser-degraded-", dir=Path(out).parent) as tmp:
        degraded = []
        for corpus in corpora:
            _, table = read_corpus_tables(corpus)
            gain = attrs["gain"][corpus.name]
            shards = []
            for k in range(len(corpus.shards)):
                rows = table[table["shard"] == k]
                path = Path(tmp) / f"{corpus.name}-shard-{k}.h5"
                extract_shard(
                    list(zip(rows["utt_id"], rows["audio"], strict=True)),
                    spec,
                    gain,
                    path,
                    on_bad_audio="skip",
                    transform=transform,
                )
                shards.append(path)
            degraded.append(
                CorpusInput(corpus.name, corpus.meta, corpus.vocab, tuple(shards), corpus.rejected)
            )
        built = build_database(degraded, db, out)
    folds = [f["groups"] for f in built.get("folds") or []]
    if folds != [f["groups"] for f in attrs.get("folds") or []]:
        Path(out).unlink(missing_ok=True)
        raise ValueError(
            f"the degraded copy ({condition}) lost speakers the clean database has (audio "
            "rejected after the transformation), so its folds differ; see the log"
        )
    log.info("%s: %s (%s)", out, cond.describe(), condition)
    return built


def _keys(table: pd.DataFrame) -> pd.Series:
    return table["corpus"].astype(str) + "\0" + table["utt_id"].astype(str)


def evaluate_robustness(
    fold_dirs: Sequence[str | Path],
    degraded: Mapping[str, str | Path],
    out_json: str | Path,
    out_predictions: str | Path,
) -> dict[str, Any]:
    """Each fold's model (``fold_dirs``: ``model.keras``, ``training.json``,
    ``predictions.csv``) on its test rows of every degraded database (``degraded``: condition
    -> path); clean figures from the same utterances' clean predictions. Writes
    ``robustness.json`` and the degraded predictions (with a ``condition`` column)."""
    from deepser.models.saving import load_model

    tables: dict[str, list[pd.DataFrame]] = {c: [] for c in degraded}
    clean: list[pd.DataFrame] = []
    tasks: list[dict[str, Any]] = []
    infos = {c: read_info(p) for c, p in degraded.items()}
    norms: dict[str, SpeakerNorm] = {}
    for fold_dir in map(Path, fold_dirs):
        trained = read_training(fold_dir / "training.json")
        tasks = trained.tasks
        fold = int(trained.test_fold)
        model = load_model(fold_dir / "model.keras")
        clean_fold = read_predictions(fold_dir / "predictions.csv", tasks)
        for condition, info in infos.items():
            norm = None
            if trained.normalisation == "speaker":
                if condition not in norms:  # one pass over the database per condition
                    norms[condition] = SpeakerNorm(info)
                norm = norms[condition]
            rows = info.fold_rows(fold)
            tables[condition].append(predictions_table(model, info, rows, tasks, fold, norm=norm))
        clean.append(clean_fold)
    clean_all = pd.concat(clean, ignore_index=True)
    results: dict[str, Any] = {"tasks": {}, "conditions": []}
    frames = []
    for condition, parts in tables.items():
        table = pd.concat(parts, ignore_index=True)
        frames.append(table.assign(condition=condition))
        both = set(_keys(table)) & set(_keys(clean_all))  # scored on the same utterances
        same = clean_all[_keys(clean_all).isin(both)]
        table = table[_keys(table).isin(both)]
        entry = {
            "condition": condition,
            "description": parse_condition(condition).describe(),
            "n": int(len(table)),
            "n_lost": int(len(clean_all) - len(table)),
            "tasks": {},
        }
        got = fold_metrics(table, tasks)["tasks"]
        ref = fold_metrics(same, tasks)["tasks"] if len(same) else {}
        for task in tasks:
            key = "ua" if is_categorical(task) else "ccc"
            name = task["name"]
            if key not in got.get(name, {}) or key not in ref.get(name, {}):
                continue
            entry["tasks"][name] = {
                key: got[name][key],
                "clean": ref[name][key],
                "drop": ref[name][key] - got[name][key],
            }
        results["conditions"].append(entry)
    write_json(out_json, results)
    all_rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_predictions(out_predictions, all_rows)
    return results


def robustness_rows(found: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The robustness table: one row per condition and task."""
    rows = []
    for entry in found.get("conditions", []):
        for task, m in entry["tasks"].items():
            key = "ua" if "ua" in m else "ccc"
            rows.append(
                {
                    "condition": entry["condition"],
                    "what": entry["description"],
                    "task": task,
                    key.upper(): f"{m[key]:.3f}",
                    "clean": f"{m['clean']:.3f}",
                    "drop": f"{m['drop']:+.3f}",
                    "n": entry["n"],
                }
            )
    return rows
