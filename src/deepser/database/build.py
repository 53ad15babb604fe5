"""Build an H5 database (the format of :mod:`deepser.database.store`) from cached feature
shards: labels from the validated meta, folds by speaker, context windows."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from deepser import __version__
from deepser.corpus.meta import read_table
from deepser.database.folds import DEFAULT_FOLD_BY, assign_folds, group_labels
from deepser.database.store import DatabaseWriter
from deepser.database.windows import as_row, cut_windows, layout_shape, n_steps
from deepser.errors import DamagedFileError, rerun_recovery
from deepser.features.augment import is_augmented, source_id
from deepser.features.shards import FeatureShard
from deepser.files import config_hash, read_json, read_tsv, write_tsv
from deepser.hdf5 import H5File

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusInput:
    """One corpus's files as the database build reads them."""

    name: str
    meta: Path
    vocab: Path
    shards: tuple[Path, ...]
    rejected: Path | None = None


def resolve_tasks(refs: Sequence[str | int], columns: Sequence[str]) -> list[str]:
    """Task column names from names or 0-based indexes into the corpus's kept columns."""
    tasks = []
    for ref in refs:
        if isinstance(ref, int):
            if not 0 <= ref < len(columns):
                raise ValueError(f"task index {ref} out of range: columns are {list(columns)}")
            tasks.append(columns[ref])
        elif ref in columns:
            tasks.append(ref)
        else:
            raise ValueError(f"unknown task column {ref!r}: columns are {list(columns)}")
    return tasks


def merge_vocab(name: str, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One vocabulary for a label over several corpora (first corpus's order, then new classes)."""
    types = {e["type"] for e in entries}
    if len(types) != 1:
        raise ValueError(f"label {name!r} is categorical in one corpus and continuous in another")
    if types == {"continuous"}:
        return {"type": "continuous"}
    classes: list[str] = []
    for entry in entries:
        classes += [c for c in entry["classes"] if c not in classes]
    return {"type": "categorical", "classes": classes}


def _label_value(value: Any, vocab: Mapping[str, Any]) -> float:
    if vocab["type"] == "continuous":
        return float(value)
    return float(vocab["classes"].index(str(value)))


def with_augmented_copies(table: pd.DataFrame, shard_of: Mapping[str, Any]) -> pd.DataFrame:
    """The meta rows plus one row per augmented copy found in the shards (same labels and
    speaker as its source; the training split keeps them out of validation and test)."""
    copies = [u for u in shard_of if is_augmented([u])[0]]
    if not copies:
        return table.copy()
    by_id = table.set_index("utt_id", drop=False)
    sources = [source_id(u) for u in copies]
    keep = [i for i, src in enumerate(sources) if src in by_id.index]
    extra = by_id.loc[[sources[i] for i in keep]].copy()
    extra["utt_id"] = [copies[i] for i in keep]
    return pd.concat([table, extra], ignore_index=True)


def build_database(
    corpora: Sequence[CorpusInput],
    db: Mapping[str, Any],
    out: str | Path,
    rejected_out: str | Path | None = None,
) -> dict[str, Any]:
    """Build the database ``out`` for the database config ``db``; return its summary attributes."""
    with ExitStack() as stack:
        tables, vocabs, shards = [], [], []
        for corpus in corpora:
            vocab, table = read_corpus_tables(corpus)
            table = table.assign(corpus=corpus.name)
            opened = [stack.enter_context(FeatureShard(p)) for p in corpus.shards]
            check_shards(corpus, table, opened)
            where = {u: s for s in opened for u in s.index}
            table = with_augmented_copies(table[table["utt_id"].isin(where.keys())], where)
            table["src"] = [where[u] for u in table["utt_id"]]
            del where
            tables.append(table)
            vocabs.append(vocab)
            shards += opened
        columns = list(vocabs[0])
        tasks = resolve_tasks(db["tasks"], columns)
        task_vocab = {}
        for task in tasks:
            missing = [c.name for c, v in zip(corpora, vocabs, strict=True) if task not in v]
            if missing:
                raise ValueError(f"task {task!r} is not a column of corpus {', '.join(missing)}")
            task_vocab[task] = merge_vocab(task, [v[task] for v in vocabs])
        rows = pd.concat(tables, ignore_index=True)
        tables.clear()  # the copies go: the build holds one table
        if rows.empty:
            raise ValueError("no utterance with features: nothing to build")
        multi = len(corpora) > 1

        def qualified(col: str) -> list[str]:
            if col not in rows:
                raise ValueError(f"column {col!r} is not in every corpus")
            return group_labels(rows["corpus"], rows[col], multi)

        speaker_col = "speaker" if all("speaker" in v for v in vocabs) else None
        rows["spk"] = qualified(speaker_col) if speaker_col else ""
        fold_by = db.get("fold_by", DEFAULT_FOLD_BY)
        folds_meta: list[dict[str, Any]] | None = None
        if fold_by:
            rows["group"] = qualified(fold_by)
            assignment = assign_folds(list(rows["group"]), db.get("n_folds"))
            rows["fold"] = rows["group"].map(assignment).astype(int)
            rows = rows.sort_values(["fold", "corpus", "group", "utt_id"], kind="stable")
            n_folds = max(assignment.values()) + 1
            folds_meta = [
                {"fold": k, "groups": sorted(g for g, f in assignment.items() if f == k)}
                for k in range(n_folds)
            ]
        else:
            rows["fold"] = -1
            rows = rows.sort_values(["corpus", "utt_id"], kind="stable")
        rows = rows.reset_index(drop=True)

        dim = feature_dims(shards)
        c_len, max_steps, layout = int(db["c_len"]), int(db["max_steps"]), db.get("layout", "2d")
        t_max = n_steps(max_steps, c_len)
        writer = DatabaseWriter(out, len(rows), layout_shape(layout, t_max, c_len, dim), len(tasks))
        try:
            labels = np.stack(
                [
                    rows[t].map(lambda v, voc=task_vocab[t]: _label_value(v, voc)).to_numpy(float)
                    for t in tasks
                ],
                axis=1,
            )
            columns = zip(
                rows["src"],
                rows["utt_id"],
                labels,
                rows["fold"],
                rows["spk"],
                rows["corpus"],
                strict=True,
            )
            for src, utt_id, label, fold, spk, corpus in tqdm(
                columns, total=len(rows), desc="database", unit="utt", mininterval=2.0, ascii=True
            ):
                windows, n_valid = cut_windows(src[utt_id], c_len, max_steps)
                writer.append(
                    as_row(windows, layout), label, n_valid, int(fold), utt_id, spk, corpus
                )
            augmented = is_augmented(rows["utt_id"])
            fold_bounds = None
            if folds_meta is not None:
                fold_bounds = []
                for entry in folds_meta:
                    idx = np.flatnonzero(rows["fold"].to_numpy() == entry["fold"])
                    fold_bounds.append((int(idx[0]), int(idx[-1]) + 1))
                    entry["n_utterances"] = int((~augmented[idx]).sum())
            first = shards[0].attrs
            attrs = {
                "feature_spec": first["feature_spec"],
                "gain": {c.name: s.attrs["gain"] for c, s in _shards_per_corpus(corpora, shards)},
                "window_spec": {
                    "c_len": c_len,
                    "max_steps": max_steps,
                    "layout": layout,
                    "n_steps": t_max,
                    "dims": dim,
                },
                "tasks": [{"name": t, **task_vocab[t]} for t in tasks],
                "fold_by": fold_by,
                "folds": folds_meta,
                "corpora": [c.name for c in corpora],
                "n_utterances": int((~augmented).sum()),
                "n_augmented": int(augmented.sum()),
                "speakers": sorted(set(rows["spk"])),
                "config_hash": config_hash(dict(db)),
                "deepser_version": __version__,
            }
            writer.finish(fold_bounds, attrs)
            feature_rejects = [
                {"corpus": corpus.name, **r}
                for corpus, shard in _shards_per_corpus(corpora, shards)
                for r in shard.attrs.get("rejected", [])
            ]
        except BaseException:
            writer.abort()
            raise
    if rejected_out is not None:
        write_rejected(corpora, feature_rejects, rejected_out)
    log.info("database %s: %d utterances, %s", out, len(rows), attrs["window_spec"])
    return attrs


def _corpus_file(corpus: CorpusInput, path: Path, kind: str) -> H5File:
    """A file of the corpus's prepared meta (``meta.tsv``, ``vocab.json``, ``rejected.tsv``, one
    job's outputs: the recovery deletes them together, so the workflow writes them again)."""
    outputs = [p for p in (corpus.meta, corpus.vocab, corpus.rejected) if p is not None]
    return H5File(
        path,
        kind,
        rerun_recovery(outputs, "prepares the corpus's meta again (prepare_meta)"),
        written_whole=True,
    )


def read_corpus_tables(corpus: CorpusInput) -> tuple[dict[str, Any], pd.DataFrame]:
    """A corpus's vocabulary (``vocab.json``) and normalised meta (``meta.tsv``), checked: a
    damaged file raises :class:`DamagedFileError` naming it and how to recover."""
    vocab_file = _corpus_file(corpus, Path(corpus.vocab), "vocabulary file")
    if not vocab_file.path.is_file():
        raise vocab_file.fail("file not found")
    try:
        vocab = read_json(corpus.vocab)
    except DamagedFileError:
        raise vocab_file.fail("not a valid JSON file") from None
    if not isinstance(vocab, dict) or not all(isinstance(v, dict) for v in vocab.values()):
        raise vocab_file.fail("not a JSON object of label vocabularies")
    meta_file = _corpus_file(corpus, Path(corpus.meta), "normalised meta file")
    if not meta_file.path.is_file():
        raise meta_file.fail("file not found")
    with meta_file.reading("it as a table"):
        table = read_table(corpus.meta, vocab)
        missing = [c for c in ("utt_id", *vocab) if c not in table]
        if missing:
            raise meta_file.fail(f"no column(s) {', '.join(missing)}")
    return vocab, table


def check_shards(corpus: CorpusInput, table: pd.DataFrame, shards: Sequence[FeatureShard]) -> None:
    """Each shard of the corpus holds every utterance the meta file puts in it (the ``shard``
    column; those its extraction rejected aside) and the attributes the database takes."""
    for shard in shards:
        missing = [k for k in ("feature_spec", "gain") if k not in shard.attrs]
        if missing:
            raise shard.file.fail(f"no {', '.join(missing)} attribute(s); not a complete shard")
    if "shard" not in table or table.empty or int(table["shard"].max()) >= len(shards):
        return
    per_shard = table.groupby("shard")["utt_id"]  # one pass, not one mask per shard
    for k, expected in per_shard:
        shard = shards[int(k)]
        rejected = {str(r.get("utt_id")) for r in shard.attrs.get("rejected", [])}
        missing = [u for u in expected if u not in shard.index and u not in rejected]
        if missing:
            raise shard.file.fail(
                f"missing {len(missing)} utterance(s) that {corpus.meta} puts in shard {k} of "
                f"corpus {corpus.name} (e.g. {missing[0]!r}), not rejected by its extraction"
            )


def feature_dims(shards: Sequence[FeatureShard]) -> int:
    """The feature dimension every (non-empty) shard shares; the shards share their spec too."""
    first = shards[0]
    for shard in shards[1:]:
        if shard.attrs["feature_spec"] != first.attrs["feature_spec"]:
            raise shard.file.fail(
                f"extracted with another feature spec than {first.path}: "
                f"{shard.attrs['feature_spec']} vs {first.attrs['feature_spec']}"
            )
    dims = {s.dims for s in shards if s.index}
    if len(dims) != 1:
        by_dim = {d: next(str(s.path) for s in shards if s.index and s.dims == d) for d in dims}
        raise ValueError(f"feature shards disagree on the feature dimension: {by_dim}")
    return dims.pop()


def _shards_per_corpus(corpora: Sequence[CorpusInput], shards: Sequence[FeatureShard]):
    """(corpus, opened shard) pairs; ``shards`` holds each corpus's shards in order."""
    i = 0
    for corpus in corpora:
        for shard in shards[i : i + len(corpus.shards)]:
            yield corpus, shard
        i += len(corpus.shards)


def write_rejected(
    corpora: Sequence[CorpusInput], feature_rejects: list[dict[str, Any]], out: str | Path
) -> None:
    """All rejected audio (meta stage and feature stage) of the database's corpora, one TSV."""
    frames = []
    for corpus in corpora:
        if corpus.rejected is not None and Path(corpus.rejected).stat().st_size:
            with _corpus_file(corpus, Path(corpus.rejected), "rejected-audio list").reading("it"):
                frames.append(read_tsv(corpus.rejected).assign(corpus=corpus.name))
    if feature_rejects:
        frames.append(pd.DataFrame.from_records(feature_rejects).astype(str))
    columns = ["corpus", "utt_id", "audio", "stage", "reason"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    write_tsv(out, table.reindex(columns=columns))
