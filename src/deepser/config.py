"""Cross-reference checks of the workflow config (the JSON schema checks each entry alone)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepser.features import resolve_spec


def column_names(corpus: Mapping[str, Any]) -> list[str]:
    """The label columns a corpus keeps, in config order."""
    return list(corpus["columns"])


def feature_spec(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The explicit spec of feature set ``name``."""
    return resolve_spec(config["feature_sets"][name])


def gain_config(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The gain config of feature set ``name`` (method ``none`` when absent)."""
    return dict(config["feature_sets"][name].get("gain") or {"method": "none"})


def needs_corpus_gain(config: Mapping[str, Any], name: str) -> bool:
    """Whether feature set ``name`` normalises with min/max statistics of the corpus."""
    gain = gain_config(config, name)
    return gain["method"] == "minmax" and gain.get("source", "corpus") == "corpus"


def check_config(config: Mapping[str, Any]) -> list[str]:
    """Return every problem that spans entries: unknown references, impossible parameters."""
    problems: list[str] = []
    corpora, fsets = config["corpora"], config["feature_sets"]
    for name, fset in fsets.items():
        try:
            resolve_spec(fset)
        except ValueError as exc:
            problems.append(f"feature_sets.{name}: {exc}")
        gain = fset.get("gain") or {}
        if gain.get("method") == "minmax":
            source = gain.get("source", "corpus")
            if source == "fixed" and not {"min", "max"} <= set(gain):
                problems.append(f"feature_sets.{name}.gain: source 'fixed' needs min and max")
            if source == "fixed" and {"min", "max"} <= set(gain) and not gain["max"] > gain["min"]:
                problems.append(f"feature_sets.{name}.gain: max must be greater than min")
            if source == "file" and not Path(gain.get("file", "")).is_file():
                problems.append(
                    f"feature_sets.{name}.gain: gain file {gain.get('file')!r} not found"
                )
    for name in corpora:
        if "/" in name or not name:
            problems.append(f"corpora.{name}: a corpus name cannot contain '/'")
    for name, db in config["databases"].items():
        where = f"databases.{name}"
        unknown = [c for c in db["corpora"] if c not in corpora]
        if unknown:
            problems.append(
                f"{where}.corpora: unknown corpus {', '.join(unknown)} "
                f"(known: {', '.join(corpora)})"
            )
            continue
        if db["feature_set"] not in fsets:
            problems.append(
                f"{where}.feature_set: unknown feature set {db['feature_set']!r} "
                f"(known: {', '.join(fsets)})"
            )
        if db["c_len"] > db["max_steps"]:
            problems.append(
                f"{where}: c_len ({db['c_len']}) is larger than max_steps ({db['max_steps']})"
            )
        first = column_names(corpora[db["corpora"][0]])
        for ref in db["tasks"]:
            if isinstance(ref, int) and not 0 <= ref < len(first):
                problems.append(
                    f"{where}.tasks: index {ref} out of range (columns: {', '.join(first)})"
                )
            task = first[ref] if isinstance(ref, int) and 0 <= ref < len(first) else ref
            for cname in db["corpora"]:
                if isinstance(task, str) and task not in corpora[cname]["columns"]:
                    problems.append(f"{where}.tasks: corpus {cname!r} has no column {task!r}")
        fold_by = db.get("fold_by", "speaker")
        for cname in db["corpora"]:
            if fold_by and fold_by not in corpora[cname]["columns"]:
                problems.append(
                    f"{where}.fold_by: corpus {cname!r} has no column {fold_by!r} "
                    f"(add it under corpora.{cname}.columns)"
                )
    return problems
